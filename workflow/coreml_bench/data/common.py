"""What every data kind shares: the error type and the image file suffixes."""

from __future__ import annotations

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG"}


class DataError(ValueError):
    """The evaluation data is missing or not in the layout the config says."""
