"""Process identity and control on this machine: start times, liveness, flock, process-group signals.

Stdlib only (layer 0). A pid alone can name a recycled process, so a process is
known by its pid *and* its start time (``start_time``), read from one line of
``/proc/<pid>/stat`` as psutil's ``create_time()`` computes it (clock ticks since
boot plus the boot time from ``/proc/stat``). Where ``/proc`` is missing (not
Linux) start times are ``None`` and liveness is only ``os.kill(pid, 0)``: a
zombie there counts as alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["cmdline", "is_locked", "killpg", "locked", "pid_alive", "same_process", "start_time", "try_lock"]

_BOOT_TIME: list[float] = []  # read once: /proc/stat's btime


def _stat_fields(pid: int) -> list[bytes] | None:
    """``/proc/<pid>/stat`` after the command name (field 3, the state, is element 0), or ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()
    except OSError:
        return None


def _boot_time() -> float | None:
    if not _BOOT_TIME:
        try:
            with open("/proc/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        _BOOT_TIME.append(float(line.split()[1]))
                        break
        except (OSError, ValueError):
            return None
    return _BOOT_TIME[0] if _BOOT_TIME else None


def start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch, psutil's ``create_time()``), or ``None`` if unknown."""
    fields = _stat_fields(pid)
    boot = _boot_time()
    if fields is None or boot is None:
        return None
    try:
        ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
    except (IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK") + boot


def pid_alive(pid: int | None) -> bool:
    """``pid`` is a running process (a zombie, exited but not yet reaped, is not)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:
        return not os.path.isdir("/proc") or os.path.exists(f"/proc/{pid}")
    return not fields or fields[0] not in (b"Z", b"X")


def same_process(pid: int | None, started: float | None) -> bool:
    """``pid`` is alive and is still the process that started at ``started`` (``None``: any process)."""
    if not pid_alive(pid):
        return False
    if started is None:
        return True
    now = start_time(pid)  # type: ignore[arg-type]
    return now is None or abs(now - started) < 0.05


def cmdline(pid: int) -> list[str] | None:
    """The process's argv (``/proc/<pid>/cmdline``), ``None`` when it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def killpg(pgid: int, sig: int) -> None:
    """Signal a process group; a group that is gone (or not ours) is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created) for the block, waiting for it if held."""
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def try_lock(path: Path) -> int | None:
    """Take an exclusive ``flock`` on ``path`` (created, mode 0600) without waiting.

    Returns the open descriptor that holds it (closing it, or exiting, releases the
    lock), or ``None`` when another process holds it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_locked(path: Path) -> bool:
    """Whether some process holds an exclusive ``flock`` on ``path`` (the liveness test that survives pid reuse)."""
    try:
        fd = try_lock(path)
    except OSError:
        return False
    if fd is None:
        return True
    os.close(fd)  # closing releases the lock we just took
    return False
