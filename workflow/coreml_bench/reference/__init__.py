"""Reference numbers: the benchmark tables Apple publishes for ``coremltools.optimize``."""

from .published import DEFAULT_PUBLISHED, PublishedRow, load_published

__all__ = ["DEFAULT_PUBLISHED", "PublishedRow", "load_published"]
