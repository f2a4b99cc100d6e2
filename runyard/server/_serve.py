"""Run the server with Uvicorn (one process; the scheduler inside it from the experiments issue)."""

from __future__ import annotations

import logging

__all__ = ["serve"]


def serve(host: str, port: int, *, log_level: str = "warning") -> None:
    import os

    import uvicorn

    if not os.environ.get("RUNYARD_PUBLIC_URL"):
        reach = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        os.environ["RUNYARD_PUBLIC_URL"] = f"http://{reach}:{port}"

    from runyard.server._app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One process: uvicorn's multi-worker mode leaves TCP_NODELAY unset (PERF.md, uvicorn#3149).
    uvicorn.run(create_app(), host=host, port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
