"""Per-layer sensitivity of a compression setting, measured on the package through the
executor (``measure``), and the budgeted search over those measurements (``search``)."""

from .settings import CalibrationSettings, SensitivitySettings

__all__ = ["CalibrationSettings", "SensitivitySettings"]
