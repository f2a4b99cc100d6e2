"""Helpers shipped for tests: a live server in a subprocess, PostgreSQL test databases.

The backend contract (a pytest plugin and ``BackendContract``) is ``runyard.testing.backend_contract``.
"""

from runyard.testing._server import LiveServer, free_port
from runyard.testing._postgres import postgres_url
from runyard.testing._wait import pid_alive, wait_for

__all__ = ["LiveServer", "free_port", "pid_alive", "postgres_url", "wait_for"]
