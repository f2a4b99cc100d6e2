"""The Runyard server: the REST API, the scheduler that runs inside it, and the web UI's static files."""

from runyard.server._app import create_app

__all__ = ["create_app"]
