"""The audit log (admins): sign-ins, token changes, sharing and admin actions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from runyard.server._auth import require_admin
from runyard.store import AuditEvent

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditList(BaseModel):
    items: list[AuditEvent]


@router.get("", response_model=AuditList, dependencies=[Depends(require_admin)])
def list_audit(
    request: Request,
    limit: int = Query(100, ge=1, le=10000),
    action: str | None = Query(None, max_length=64, description="e.g. login, token.create, project.share"),
    actor: str | None = Query(None, max_length=128),
    since: float | None = Query(None, description="only events at or after this time (seconds since the epoch)"),
) -> AuditList:
    """Newest first."""
    return AuditList(items=request.app.state.auth.store.list_audit(limit=limit, action=action, actor=actor, since=since))
