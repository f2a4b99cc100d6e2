"""The REST API's routers, one module per resource, mounted under ``/api/v1`` by ``runyard.server._app``."""
