"""Where Runyard keeps things: home directory, database, artifact store, server address.

Everything is read from the environment at call time (never cached at import) so
tests and subprocesses can point Runyard elsewhere by setting variables:

- ``RUNYARD_HOME``: state directory, default ``~/.runyard``.
- ``RUNYARD_DATABASE_URL``: SQLAlchemy URL, default SQLite at ``$RUNYARD_HOME/runyard.db``.
- ``RUNYARD_ARTIFACTS_URL``: fsspec URL for artifacts and blobs, default ``$RUNYARD_HOME/artifacts``.
- ``RUNYARD_SERVER``: the server the CLI and SDK talk to; unset means the embedded local server.
- ``RUNYARD_MAX_UPLOAD_MB``: largest artifact or blob accepted in one upload (default 5120).
- ``RUNYARD_LOST_RUN_TIMEOUT_S``: an ad-hoc run (started by ``runyard.init()``, not by the
  scheduler) that sent no heartbeat for this long ends ``failed`` as lost (default 120).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "artifacts_url",
    "database_url",
    "home",
    "lost_run_timeout_s",
    "max_upload_bytes",
    "mask_url",
]


def home() -> Path:
    """The state directory, created on first use."""
    path = Path(os.environ.get("RUNYARD_HOME") or Path.home() / ".runyard").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    url = os.environ.get("RUNYARD_DATABASE_URL")
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # psycopg 3 is our driver; the bare scheme would make SQLAlchemy look for psycopg2.
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    return f"sqlite:///{home() / 'runyard.db'}"


def artifacts_url() -> str:
    return os.environ.get("RUNYARD_ARTIFACTS_URL") or str(home() / "artifacts")


def max_upload_bytes() -> int:
    return int(float(os.environ.get("RUNYARD_MAX_UPLOAD_MB", "5120")) * 1024 * 1024)


DEFAULT_LOST_RUN_TIMEOUT_S = 120.0


def lost_run_timeout_s() -> float:
    """``RUNYARD_LOST_RUN_TIMEOUT_S`` (default 120 s); a value that is not a positive number means the default."""
    try:
        value = float(os.environ.get("RUNYARD_LOST_RUN_TIMEOUT_S") or DEFAULT_LOST_RUN_TIMEOUT_S)
    except ValueError:
        return DEFAULT_LOST_RUN_TIMEOUT_S
    return value if value > 0 else DEFAULT_LOST_RUN_TIMEOUT_S


def mask_url(url: str) -> str:
    """Hide the password of a database or storage URL before it reaches a message."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
