"""A synchronous facade over asyncssh: run commands on a host and copy files to it.

Used by the SSH backend and by the Slurm backend's login-node mode. Backends are
synchronous (the scheduler calls them from its thread), asyncssh is asyncio: every
:class:`RemoteHost` of the process shares one event loop running in one daemon
thread, and each call blocks the caller until its coroutine finishes there.

``RemoteHost(host, port, user, key_file, known_hosts=...)``:

- ``run(cmd, timeout_s) -> CommandResult(exit_code, stdout, stderr)`` (a tuple);
- ``put(local_path, remote_path)`` / ``put_bytes(data, remote_path)`` by SFTP,
  atomically (written to a temporary name, then renamed);
- ``exists(remote_path)``, ``makedirs(remote_path)``;
- ``connect()`` to fail early, ``close()`` to drop the connection.

``RemoteBlobs(host, root)`` is a blob cache on the host for
``runyard.backends.kit.stage_snapshot``: one command lists the blobs it lacks, SFTP
sends them.

Connections: one per host, opened on first use, shared by all calls (asyncssh
multiplexes channels; at most ``max_channels`` at once, below sshd's
``MaxSessions`` default of 10). A connection found dropped (sshd restarted, the
network gone) is reopened on the next call; a call that met the drop on an
existing connection is retried once on a fresh one, so ``run`` must only be given
commands that are safe to run twice (the SSH backend's are). When connecting
fails, the next attempt waits with an exponential backoff (``min_backoff_s`` up to
``max_backoff_s``); calls made while waiting fail at once with
:class:`RemoteUnreachable` instead of stalling the scheduler.

Errors (all :class:`~runyard.errors.BackendError`):

    RemoteError                      anything else from SSH/SFTP
    ├── RemoteUnreachable            refused, timed out, no route, dropped
    ├── RemoteAuthError              key refused or unreadable
    ├── HostKeyMismatch              host key not the one in known_hosts
    └── RemoteTimeout                a command ran past its timeout

Operational traps:

- Host keys are checked against ``known_hosts`` (default ``~/.ssh/known_hosts``).
  Pass ``known_hosts=False`` only for throwaway test hosts: it accepts any key.
- Commands run through the login user's shell, non-interactively: ``~/.bashrc``
  may not be read, so ``PATH`` can differ from an interactive login. Pass
  absolute paths or set ``PATH`` in the command when it matters.
- ``run`` reads the whole output into memory: for large outputs write to a file
  on the host instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import shlex
import threading
import time
import uuid
import warnings
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from runyard.backends.kit import DirectoryBlobs
from runyard.errors import BackendError

with warnings.catch_warnings():
    # Recent cryptography releases (51 here) deprecate DSA, which asyncssh's crypto module
    # names when it is imported: a warning about asyncssh's code, shown on every CLI call and
    # an error under the test suite's filterwarnings, not about the keys anyone uses.
    warnings.filterwarnings("ignore", message="DSA is deprecated", category=Warning)
    import asyncssh

__all__ = [
    "CommandResult",
    "HostKeyMismatch",
    "RemoteAuthError",
    "RemoteBlobs",
    "RemoteError",
    "RemoteHost",
    "RemoteTimeout",
    "RemoteUnreachable",
]

log = logging.getLogger("runyard.backends.remote")

T = TypeVar("T")

# What "the connection is gone" looks like from a call on an established connection.
_DROPPED: tuple[type[BaseException], ...] = (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError,
                                             asyncssh.SFTPConnectionLost, BrokenPipeError, ConnectionResetError)


class RemoteError(BackendError):
    """An SSH or SFTP operation failed."""


class RemoteUnreachable(RemoteError, ConnectionError):
    """The host cannot be reached: connection refused, timed out, dropped, or no route."""


class RemoteAuthError(RemoteError):
    """The host refused the key, or the key file cannot be read."""


class HostKeyMismatch(RemoteError):
    """The host's key is not the one ``known_hosts`` lists for it (or it is not listed)."""


class RemoteTimeout(RemoteError, TimeoutError):
    """A command ran longer than its timeout (its channel was closed)."""


class CommandResult(NamedTuple):
    """What ``RemoteHost.run`` returns: unpack as ``code, out, err = host.run(...)``."""

    exit_code: int
    stdout: str
    stderr: str


# ------------------------------------------------------------------ the loop
class _LoopThread:
    """One asyncio loop in one daemon thread, shared by every RemoteHost of the process."""

    _lock = threading.Lock()
    _instance: _LoopThread | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="runyard-ssh-loop", daemon=True)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> _LoopThread:
        with cls._lock:
            if cls._instance is None or not cls._instance.thread.is_alive():
                cls._instance = _LoopThread()
            return cls._instance

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("RemoteHost's blocking methods cannot be called from its own event loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise


class RemoteHost:
    """One SSH host: commands and file copies over one shared, self-healing connection. Thread-safe.

    Args:
        host: name or address.
        port: SSH port.
        user: login name (default: the local user name).
        key_file: private key to log in with (default: ssh-agent and ``~/.ssh/id_*``).
        known_hosts: the known_hosts file to check the host key against; ``None``
            for ``~/.ssh/known_hosts``; ``False`` to accept any host key (tests only).
        connect_timeout_s: how long connecting may take.
        keepalive_s: keepalive interval; a connection that misses 3 is dropped.
        min_backoff_s / max_backoff_s: the wait before reconnecting after a failed
            connect, doubling from the first to the second.
        max_channels: at most this many commands/SFTP sessions at once.
    """

    def __init__(self, host: str, port: int = 22, user: str | None = None, key_file: str | os.PathLike[str] | None = None,
                 *, known_hosts: str | os.PathLike[str] | None | bool = None, connect_timeout_s: float = 10.0,
                 keepalive_s: float = 5.0, min_backoff_s: float = 0.5, max_backoff_s: float = 10.0,
                 max_channels: int = 8) -> None:
        self.host = host
        self.port = int(port)
        self.user = user
        self.key_file = None if key_file is None else str(Path(key_file).expanduser())
        self.known_hosts = known_hosts
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self._max_channels = max_channels
        self._loop = _LoopThread.get()
        # Loop-side state: touched only by coroutines on the loop thread.
        self._conn: Any = None
        self._sftp: Any = None
        self._conn_lock: asyncio.Lock | None = None
        self._channels: asyncio.Semaphore | None = None
        self._failures = 0
        self._retry_at = 0.0  # monotonic: no connect attempt before this
        self._last_error: RemoteError | None = None
        self._closed = False
        self.n_connects = 0  # connections opened so far (reconnects included)

    @property
    def label(self) -> str:
        """``user@host:port`` as shown in messages."""
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"RemoteHost({self.label!r})"

    # ---------------------------------------------------------------- public
    def connect(self) -> None:
        """Open the connection now (else the first call does).

        Raises:
            RemoteUnreachable, RemoteAuthError, HostKeyMismatch: see the module docs.
        """
        self._call(self._connection(force_try=True), self.connect_timeout_s + 5.0)

    def run(self, cmd: str | Sequence[str], timeout_s: float = 60.0, *,
            input: str | None = None,  # noqa: A002 - a public keyword, named like subprocess.run's
            check: bool = False) -> CommandResult:
        """Run ``cmd`` on the host through the login shell.

        Args:
            cmd: a shell command line, or an argv list (quoted with ``shlex.join``).
            timeout_s: the longest the command may run; its channel is closed then.
            input: text for the command's stdin.
            check: raise ``RemoteError`` for a non-zero exit code.

        Returns:
            ``(exit_code, stdout, stderr)``; ``exit_code`` is 128 + N when the command
            died of signal N, 255 when the channel closed without a status.

        Raises:
            RemoteUnreachable, RemoteAuthError, HostKeyMismatch: connecting failed.
            RemoteTimeout: the command ran longer than ``timeout_s``.
            RemoteError: ``check`` and a non-zero exit code (message holds stderr's tail).
        """
        line = cmd if isinstance(cmd, str) else shlex.join(cmd)
        result = self._call(self._with_retry(lambda conn: self._run(conn, line, timeout_s, stdin=input)),
                            timeout_s + self.connect_timeout_s + 10.0)
        if check and result.exit_code != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-10:])
            raise RemoteError(f"`{_short(line)}` on {self.label} exited with {result.exit_code}: {tail or '(no stderr)'}",
                              "Run the command by hand over ssh to see what is wrong on that host.")
        return result

    def put(self, local_path: str | os.PathLike[str], remote_path: str, *, mode: int | None = None,
            timeout_s: float = 600.0) -> None:
        """Copy a local file to ``remote_path`` (parents created), atomically; ``mode`` defaults to the local file's."""
        local = Path(local_path)
        if not local.is_file():
            raise RemoteError(f"Cannot copy {local} to {self.label}: no such file.", "Check the local path.")
        file_mode = mode if mode is not None else local.stat().st_mode & 0o777
        self._call(self._with_retry(lambda conn: self._put(conn, str(local), None, remote_path, file_mode)),
                   timeout_s)

    def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600, timeout_s: float = 120.0) -> None:
        """Write ``data`` to ``remote_path`` (parents created), atomically, with ``mode`` (default owner-only)."""
        self._call(self._with_retry(lambda conn: self._put(conn, None, bytes(data), remote_path, mode)), timeout_s)

    def exists(self, remote_path: str, *, timeout_s: float = 30.0) -> bool:
        """Whether ``remote_path`` exists on the host (file, directory or other)."""
        async def op(conn: Any) -> bool:
            sftp = await self._sftp_client(conn)
            return bool(await sftp.exists(remote_path))

        return self._call(self._with_retry(op), timeout_s)

    def makedirs(self, remote_path: str, *, timeout_s: float = 30.0) -> None:
        """Create ``remote_path`` and its parents when missing."""
        async def op(conn: Any) -> None:
            sftp = await self._sftp_client(conn)
            await sftp.makedirs(remote_path, exist_ok=True)

        self._call(self._with_retry(op), timeout_s)

    def close(self) -> None:
        """Drop the connection. Later calls reconnect; ``close`` is idempotent."""
        with contextlib.suppress(Exception):
            self._loop.call(self._drop(), 10.0)

    def __enter__(self) -> RemoteHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- plumbing
    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        try:
            return self._loop.call(coro, timeout_s)
        except TimeoutError as e:
            if isinstance(e, RemoteError):
                raise
            raise RemoteTimeout(f"An SSH operation on {self.label} did not finish within {timeout_s:g}s.",
                                f"Check the host and the network: `ssh -p {self.port} {self.label.rsplit(':', 1)[0]} true`.") from e

    async def _with_retry(self, op: Any) -> Any:
        """Run ``op(conn)``; when the connection turns out dropped, reconnect once and run it again."""
        conn = await self._connection()
        try:
            return await self._guarded(op, conn)
        except _DROPPED as e:
            log.info("connection to %s dropped (%s); reconnecting", self.label, e)
            await self._forget(conn)
        conn = await self._connection(force_try=True)
        try:
            return await self._guarded(op, conn)
        except _DROPPED as e:
            await self._forget(conn)
            raise RemoteUnreachable(f"The SSH connection to {self.label} dropped during the operation: {e}.",
                                    "Check that sshd is up on the host and the network is stable.") from e

    async def _guarded(self, op: Any, conn: Any) -> Any:
        if self._channels is None:
            self._channels = asyncio.Semaphore(self._max_channels)
        async with self._channels:
            return await op(conn)

    async def _connection(self, force_try: bool = False) -> Any:
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if self._conn is not None:
                await self._forget_locked(self._conn)
            now = time.monotonic()
            if not force_try and now < self._retry_at and self._last_error is not None:
                err = self._last_error
                raise type(err)(f"{err.message} (next attempt in {self._retry_at - now:.1f}s)", err.hint)
            try:
                self._conn = await self._open()
            except RemoteError as e:
                self._failures += 1
                delay = min(self.max_backoff_s, self.min_backoff_s * 2 ** (self._failures - 1))
                self._retry_at = time.monotonic() + delay
                self._last_error = e
                raise
            self._failures = 0
            self._retry_at = 0.0
            self._last_error = None
            self.n_connects += 1
            return self._conn

    async def _open(self) -> Any:
        where = f"{self.label}"
        ssh_cmd = f"ssh -p {self.port}{' -i ' + self.key_file if self.key_file else ''} {self.label.rsplit(':', 1)[0]} true"
        kwargs: dict[str, Any] = {
            "port": self.port,
            "connect_timeout": self.connect_timeout_s,
            "keepalive_interval": self.keepalive_s,
            "keepalive_count_max": 3,
        }
        if self.user:
            kwargs["username"] = self.user
        if self.known_hosts is False:
            kwargs["known_hosts"] = None
        elif self.known_hosts is not None and self.known_hosts is not True:
            path = Path(str(self.known_hosts)).expanduser()
            if not path.is_file():
                raise HostKeyMismatch(f"The known_hosts file {path} for {where} does not exist.",
                                      f"Create it with `ssh-keyscan -p {self.port} {self.host} > {path}` (check the key "
                                      "against the host's own), or point known_hosts at the right file.")
            try:
                kwargs["known_hosts"] = asyncssh.read_known_hosts(str(path))
            except (ValueError, OSError) as e:
                raise RemoteError(f"Cannot read the known_hosts file {path} for {where}: {e}.",
                                  f"Each line must be `[host]:port keytype key`; rebuild it with "
                                  f"`ssh-keyscan -p {self.port} {self.host} > {path}`.") from e
        if self.key_file is not None:
            if not Path(self.key_file).is_file():
                raise RemoteAuthError(f"The key file {self.key_file} for {where} does not exist.",
                                      "Point key_file at a private key the host accepts (ssh-keygen creates one; "
                                      "add its .pub to the host's ~/.ssh/authorized_keys).")
            try:
                kwargs["client_keys"] = [asyncssh.read_private_key(self.key_file)]
            except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, OSError) as e:
                raise RemoteAuthError(f"Cannot read the key file {self.key_file} for {where}: {e}.",
                                      "Use an unencrypted private key in OpenSSH or PEM format (or load it into ssh-agent "
                                      "and leave key_file unset).") from e
            kwargs["agent_path"] = None  # only the named key: a wrong key must fail, not be rescued by the agent
        try:
            return await asyncio.wait_for(asyncssh.connect(self.host, **kwargs), self.connect_timeout_s + 2.0)
        except asyncssh.PermissionDenied as e:
            raise RemoteAuthError(f"{where} refused the login{' with key ' + self.key_file if self.key_file else ''}: "
                                  f"{e.reason}.",
                                  f"Add the key's public half to ~{self.user or ''}/.ssh/authorized_keys on the host, or fix "
                                  f"user/key_file; try `{ssh_cmd}`.") from e
        except asyncssh.HostKeyNotVerifiable as e:
            known = self.known_hosts if isinstance(self.known_hosts, (str, os.PathLike)) else "~/.ssh/known_hosts"
            raise HostKeyMismatch(f"The host key of {where} does not match {known}: {e.reason}.",
                                  f"If the host was reinstalled, replace its line: `ssh-keygen -R '[{self.host}]:{self.port}' "
                                  f"-f {known}` then `ssh-keyscan -p {self.port} {self.host} >> {known}`; otherwise "
                                  "someone may be in the middle: do not connect.") from e
        except (TimeoutError, ConnectionRefusedError, asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as e:
            what = ("refused the connection" if isinstance(e, ConnectionRefusedError)
                    else "did not answer in time" if isinstance(e, asyncio.TimeoutError)
                    else f"cannot be reached ({type(e).__name__}: {e})")
            raise RemoteUnreachable(f"{where} {what}.",
                                    f"Is sshd running there and the port right? Try `{ssh_cmd}`.") from e

    async def _sftp_client(self, conn: Any) -> Any:
        if self._sftp is not None and self._sftp[0] is conn:
            return self._sftp[1]
        sftp = await conn.start_sftp_client()
        self._sftp = (conn, sftp)
        return sftp

    async def _run(self, conn: Any, line: str, timeout_s: float, stdin: str | None) -> CommandResult:
        try:
            proc = await conn.run(line, check=False, timeout=timeout_s, input=stdin)
        except asyncssh.TimeoutError as e:
            raise RemoteTimeout(f"`{_short(line)}` on {self.label} ran longer than {timeout_s:g}s.",
                                "The host may be overloaded; raise the timeout or check the host.") from e
        code = proc.exit_status
        if code is None or code < 0:
            signal_name = proc.exit_signal[0] if proc.exit_signal else None
            code = 128 + _signal_number(signal_name) if signal_name else 255
        return CommandResult(int(code), _text(proc.stdout), _text(proc.stderr))

    async def _put(self, conn: Any, local: str | None, data: bytes | None, remote_path: str, mode: int) -> None:
        sftp = await self._sftp_client(conn)
        parent = posixpath.dirname(remote_path)
        tmp = posixpath.join(parent, f".{posixpath.basename(remote_path)}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            if parent:
                await sftp.makedirs(parent, exist_ok=True)
            if local is not None:
                await sftp.put(local, tmp)
            else:
                async with sftp.open(tmp, "wb", asyncssh.SFTPAttrs(permissions=mode)) as f:
                    await f.write(data)
            await sftp.chmod(tmp, mode)
            await sftp.posix_rename(tmp, remote_path)
        except asyncssh.SFTPConnectionLost:
            raise
        except asyncssh.SFTPError as e:
            with contextlib.suppress(Exception):
                await sftp.remove(tmp)
            raise RemoteError(f"Cannot write {remote_path} on {self.label}: {e.reason}.",
                              "Check that the directory is writable by the login user and the disk is not full.") from e

    async def _forget(self, conn: Any) -> None:
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            if self._conn is conn:
                await self._forget_locked(conn)

    async def _forget_locked(self, conn: Any) -> None:
        if self._sftp is not None and self._sftp[0] is conn:
            self._sftp = None
        self._conn = None
        conn.close()

    async def _drop(self) -> None:
        if self._conn is not None:
            conn = self._conn
            await self._forget(conn)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5.0)


class RemoteBlobs(DirectoryBlobs):
    """A blob cache ``<root>/<aa>/<sha256>`` on an SSH host (``root`` relative to the login user's home unless absolute).

    Args:
        remote: the host.
        root: the cache's directory there.
        mode: the blobs' file mode.
        timeout_s: how long listing the missing blobs may take.
    """

    def __init__(self, remote: RemoteHost, root: str, *, mode: int = 0o644, timeout_s: float = 60.0) -> None:
        super().__init__(root, exists=remote.exists, write=lambda path, data, m: remote.put_bytes(data, path, mode=m))
        self.remote = remote
        self.mode = mode
        self.timeout_s = timeout_s

    def missing(self, digests: Sequence[str]) -> set[str]:
        """The digests whose blob is not in the cache: one command for all."""
        if not digests:
            return set()
        root = shlex.quote(self.root)
        script = f'mkdir -p {root} && cd {root} || exit 70\nwhile read -r p; do [ -f "$p" ] || echo "$p"; done\n'
        listing = "\n".join(f"{d[:2]}/{d}" for d in digests) + "\n"
        code, out, err = self.remote.run(script, timeout_s=self.timeout_s, input=listing)
        if code != 0:
            raise RemoteError(f"cannot use the blob cache {self.root} on {self.remote.label}: {err.strip()}",
                              "Check that the work directory is writable by the login user.")
        return {line.rsplit("/", 1)[-1] for line in out.split()}

    def put(self, digest: str, local_path: Path) -> None:
        """Send one blob by SFTP, atomically."""
        self.remote.put(local_path, self.path(digest), mode=self.mode)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _short(line: str, n: int = 120) -> str:
    return line if len(line) <= n else line[: n - 1] + "…"


def _signal_number(name: str) -> int:
    import signal

    try:
        return int(signal.Signals["SIG" + name if not name.startswith("SIG") else name])
    except KeyError:
        return 0
