"""community: an async backend for paid communities."""

__version__ = "0.1.0"
