"""The server's backends (backends.yml) and who may use each: the policy of ``allow:``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from runyard.errors import Forbidden
from runyard.server._auth import principal, require_backends, require_user, sign_in_on
from runyard.server._deps import backend_entries

router = APIRouter(prefix="/backends", tags=["backends"])


class BackendInfo(BaseModel):
    name: str
    type: str
    policy: str = Field(description="who may submit runs to it, in words")
    allow: dict[str, Any] | None = Field(None, description="its allow: in backends.yml (null: none)")
    run_as: Any = Field(None, description="local only: the accounts its jobs run as (null: the server's)")
    admitted: bool | None = Field(None, description="whether the caller may submit to it in project (when asked)")
    options: dict[str, Any] | None = Field(None, description="its options (admins only)")


class BackendList(BaseModel):
    sign_in: bool = Field(description="whether the server requires sign-in (then local is for admins only "
                                      "unless opened by allow: with run_as:)")
    items: list[BackendInfo]


@router.get("", response_model=BackendList, dependencies=[Depends(require_user)])
def list_backends(request: Request, project: str | None = None) -> BackendList:
    """The configured backends with their policy; with ``project``, whether the caller may submit to
    each in that project (a project they may not see answers as a new one of their own)."""
    from runyard.backends.config import describe_policy

    sign_in = sign_in_on(request)
    admin = principal(request).is_admin
    items = []
    for entry in backend_entries(request).values():
        admitted = None
        if project is not None:
            try:
                require_backends(request, project, [entry.name], {entry.name: entry})
                admitted = True
            except Forbidden:
                admitted = False
        items.append(BackendInfo(name=entry.name, type=entry.type, policy=describe_policy(entry, sign_in),
                                 allow=dict(entry.allow) if entry.allow is not None else None,
                                 run_as=entry.options.get("run_as"), admitted=admitted,
                                 options=dict(entry.options) if admin else None))
    return BackendList(sign_in=sign_in, items=items)
