"""Runyard's version string, importable without loading the SDK facade in ``runyard/__init__.py``."""

__version__ = "0.1.0"
