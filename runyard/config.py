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
- ``RUNYARD_LOST_RUN_TIMEOUT_S``: an ad-hoc run (started by ``runyard.init()``, not by the
  scheduler) that sent no heartbeat for this long ends ``failed`` as lost (default 120).

The home holds the database, the artifacts and the credentials: it is created readable
by this account only (0700, whatever the umask), and :func:`secure_home` tightens one
found open to others when a server starts.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "artifacts_url",
    "database_url",
    "home",
    "lost_run_timeout_s",
    "make_private_dir",
    "make_private_file",
    "mask_url",
    "max_metric_keys",
    "max_upload_bytes",
    "run_token_grace_s",
    "secure_home",
]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def home() -> Path:
    """The state directory, created on first use (0700: this account only)."""
    path = Path(os.environ.get("RUNYARD_HOME") or Path.home() / ".runyard").expanduser()
    make_private_dir(path)
    return path


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a directory; created 0700 whatever the umask (its parents as the umask says).
    An existing one is left as it is (:func:`secure_home` tightens the server's)."""
    path = Path(path)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        return path
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            return path
    os.chmod(path, PRIVATE_DIR)  # the umask may have taken bits off (never adds any)
    return path


def make_private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty and 0600 if it does not exist (SQLite then gives its -wal and -shm the same mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return Path(path)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return Path(path)


def secure_home(path: Path | None = None, *, extra: Iterable[str | os.PathLike[str]] = (),
                traverse: bool = False) -> list[str]:
    """Take group and other permissions off the home, the files and directories directly in it,
    and ``extra`` (e.g. a database outside the home); returns what was changed, one line each.

    Only the top level is changed: what is below a 0700 directory is out of others' reach.
    Paths owned by another account are left alone.

    Args:
        traverse: leave the home and its ``agent`` directory 0711 (others may pass through to a
            path they know, never list them): for the local agent's jobs running as other accounts,
            whose work directories are below it. Never loosens anything.
    """
    path = path if path is not None else home()
    changed: list[str] = []
    # Bits others may keep: none, or for the home with ``traverse`` the search (x) bits.
    targets: list[tuple[Path, int]] = [(path, 0o011 if traverse else 0)]
    try:
        targets += [(child, 0o011 if traverse and child.name == "agent" else 0) for child in sorted(path.iterdir())]
    except OSError:
        pass
    targets += [(Path(p), 0) for p in extra]
    for target, keep in targets:
        try:
            st = target.lstat()
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid():
            continue
        mode = stat.S_IMODE(st.st_mode)
        new = mode & ~(0o077 & ~keep)
        if new == mode:
            continue
        try:
            os.chmod(target, new)
        except OSError:
            continue
        changed.append(f"{target}: {mode:04o} -> {new:04o}")
    return changed


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
