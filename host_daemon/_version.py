"""The daemon's version, reported by ``probe`` and ``--version``."""

__version__ = "0.1.0"
