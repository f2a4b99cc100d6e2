"""Helpers shipped for tests: a live server in a subprocess, PostgreSQL test databases."""

from runyard.testing._server import LiveServer, free_port
from runyard.testing._postgres import postgres_url

__all__ = ["LiveServer", "free_port", "postgres_url"]
