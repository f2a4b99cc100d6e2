"""Helpers shipped for tests: a live server in a subprocess, PostgreSQL test databases, a fake backend and clock.

The backend contract (a pytest plugin and ``BackendContract``) is ``runyard.testing.backend_contract``.
"""

from runyard.testing._postgres import postgres_url
from runyard.testing._ray import RayCluster
from runyard.testing._server import LiveServer, free_port
from runyard.testing._wait import pid_alive, wait_for
from runyard.testing.fake_backend import FakeBackend, FakeClock, FakeJob

__all__ = ["FakeBackend", "FakeClock", "FakeJob", "LiveServer", "RayCluster", "free_port", "pid_alive", "postgres_url",
           "wait_for"]
