"""Run the server with Uvicorn: one process, with the scheduler inside it."""

from __future__ import annotations

import logging

__all__ = ["auth_mode_for", "serve"]


def auth_mode_for(host: str) -> str:
    """The auth mode a server listening on ``host`` runs in.

    Loopback: RUNYARD_AUTH (default ``auto``: single-user local mode until the first user).
    Any other address: ``required`` (the first admin is created at start); RUNYARD_AUTH=off
    is refused there, as anyone who reaches the port would be admin.
    """
    import os

    from runyard.errors import RunyardError
    from runyard.server._auth import check_mode, is_loopback

    mode = check_mode(os.environ.get("RUNYARD_AUTH") or "auto")
    if is_loopback(host):
        return mode
    if mode == "off":
        raise RunyardError(
            f"Refusing to serve on {host} without sign-in (RUNYARD_AUTH=off): anyone who reaches it would be admin.",
            "Unset RUNYARD_AUTH (sign-in is then required; set RUNYARD_ADMIN_PASSWORD for the first admin), "
            "or listen on 127.0.0.1.",
        )
    return "required"


def serve(host: str, port: int, *, log_level: str = "warning") -> None:
    """Serve in the foreground. Raises RunyardError before listening when the auth mode is refused."""
    import os

    import uvicorn

    mode = auth_mode_for(host)

    if not os.environ.get("RUNYARD_PUBLIC_URL"):
        reach = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        os.environ["RUNYARD_PUBLIC_URL"] = f"http://{reach}:{port}"

    import sys

    from runyard.server._app import create_app

    # A thread that wants the GIL back (a read finishing its query) waits at most 1 ms, not 5, for
    # a thread busy with Python work (an ingest batch): reads beside heavy ingest stay fast.
    sys.setswitchinterval(0.001)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One process: uvicorn's multi-worker mode leaves TCP_NODELAY unset (uvicorn#3149).
    # No WebSocket routes: ws="none" spares the start-up its protocol imports.
    uvicorn.run(create_app(auth_mode=mode), host=host, port=port, log_level=log_level, access_log=False, ws="none",
                timeout_graceful_shutdown=5)
