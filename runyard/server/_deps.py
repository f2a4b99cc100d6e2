"""Request dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from runyard.store import Store

__all__ = ["get_store"]


def get_store(request: Request) -> Store:
    return request.app.state.store
