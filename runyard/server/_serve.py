"""Run the server with Uvicorn: one process, with the scheduler inside it."""

from __future__ import annotations

import logging

__all__ = ["auth_mode_for", "serve", "trusted_proxies"]


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


def trusted_proxies() -> list[str]:
    """RUNYARD_TRUSTED_PROXIES: the addresses (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed.

    Empty by default: the client address (what the sign-in limiter counts and the audit log
    records) is then the peer of the TCP connection, whatever headers it sends. Jobs on this
    machine connect from 127.0.0.1, so loopback is not trusted unless listed.
    """
    import ipaddress
    import os

    from runyard.errors import RunyardError

    entries = [e.strip() for e in os.environ.get("RUNYARD_TRUSTED_PROXIES", "").split(",") if e.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError as e:
            raise RunyardError(f"RUNYARD_TRUSTED_PROXIES holds {entry!r}, which is not an IP address or network.",
                               "List the reverse proxy's addresses, e.g. RUNYARD_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8.") from e
    return entries


def serve(host: str, port: int, *, log_level: str = "warning") -> None:
    """Serve in the foreground. Raises RunyardError before listening when the auth mode is refused."""
    import os

    import uvicorn

    mode = auth_mode_for(host)
    proxies = trusted_proxies()
    from runyard.server._guard import image_hosts

    image_hosts()  # a bad setting stops the start, before listening

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
    # X-Forwarded-For/-Proto only from RUNYARD_TRUSTED_PROXIES (uvicorn would trust 127.0.0.1 by default).
    # Idle keep-alive connections close after 5 s; an unfinished request's headers and the number of open
    # connections are bounded (over the limit the server answers 503 instead of running out of memory).
    uvicorn.run(create_app(auth_mode=mode), host=host, port=port, log_level=log_level, access_log=False, ws="none",
                timeout_graceful_shutdown=5, proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
                timeout_keep_alive=5, h11_max_incomplete_event_size=64 * 1024,
                limit_concurrency=int(os.environ.get("RUNYARD_MAX_CONNECTIONS", "2048")))
