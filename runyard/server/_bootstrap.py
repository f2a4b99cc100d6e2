"""The first admin of a server that requires sign-in (one reachable from other machines).

Never a fixed default: the password comes from ``RUNYARD_ADMIN_PASSWORD``, or is
generated once. A generated password is written to
``$RUNYARD_HOME/initial-admin-password`` (mode 0600) and printed on the terminal
when there is one — never to a log.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys

from runyard import config
from runyard.store import AuthStore

__all__ = ["ensure_admin"]

log = logging.getLogger("runyard.server")


def ensure_admin(store: AuthStore) -> None:
    """Create the first admin when the server has no user (idempotent; safe on every start)."""
    if store.count_users() > 0:
        return
    username = os.environ.get("RUNYARD_ADMIN_USERNAME") or "admin"
    password = os.environ.get("RUNYARD_ADMIN_PASSWORD")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(18)
    from runyard.errors import Conflict

    try:
        store.create_user(username, password, is_admin=True)
    except Conflict:
        return  # another server process created it first
    store.audit("server", "user.create", target=username, detail={"is_admin": True, "first_admin": True})
    if not generated:
        log.warning("Created the first admin %r with the password from RUNYARD_ADMIN_PASSWORD.", username)
        return
    path = config.home() / "initial-admin-password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    log.warning("Created the first admin %r; its password is in %s (readable by this account only). "
                "Sign in with `runyard login URL`, change it with `runyard passwd`, then delete the file.", username, path)
    if sys.stderr.isatty():
        print(f"First admin: {username}  password: {password}  (shown once; also in {path})", file=sys.stderr, flush=True)
