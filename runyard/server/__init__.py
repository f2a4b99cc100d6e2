"""The Runyard server: REST API (and, from later issues, scheduler and UI)."""

from runyard.server._app import create_app

__all__ = ["create_app"]
