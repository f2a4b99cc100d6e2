"""Where Runyard keeps things: home directory, database, artifact store, server address.

Everything is read from the environment at call time (never cached at import) so
tests and subprocesses can point Runyard elsewhere by setting variables:

- ``RUNYARD_HOME``: state directory, default ``~/.runyard``.
- ``RUNYARD_DATABASE_URL``: SQLAlchemy URL, default SQLite at ``$RUNYARD_HOME/runyard.db``.
- ``RUNYARD_ARTIFACTS_URL``: fsspec URL for artifacts and blobs, default ``$RUNYARD_HOME/artifacts``.
- ``RUNYARD_SERVER``: the server the CLI and SDK talk to; unset means the embedded local server.
- ``RUNYARD_MAX_UPLOAD_MB``: largest artifact or blob accepted in one upload (default 5120).
- ``RUNYARD_RUN_TOKEN_GRACE_S``: how long a run's token keeps working after the run ended (default 300).
- ``RUNYARD_MAX_METRIC_KEYS``: most distinct metric keys one run may hold (default 10000).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "artifacts_url",
    "database_url",
    "home",
    "max_metric_keys",
    "max_upload_bytes",
    "mask_url",
    "run_token_grace_s",
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


def run_token_grace_s() -> float:
    """Seconds a run's token stays valid after the run ended: its runner's and SDK's final flush."""
    return max(0.0, float(os.environ.get("RUNYARD_RUN_TOKEN_GRACE_S", "300")))


def max_metric_keys() -> int:
    """The most distinct metric keys one run may hold; a batch that would exceed it is refused whole."""
    return max(1, int(os.environ.get("RUNYARD_MAX_METRIC_KEYS", "10000")))


def mask_url(url: str) -> str:
    """Hide the password of a database or storage URL before it reaches a message."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
