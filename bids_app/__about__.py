"""Package metadata (kept import-light: no numerical packages imported here)."""

__version__ = "0.1.0"
__packagename__ = "strokedfc"
__url__ = "https://github.com/strokedfc/strokedfc"
