"""Where the Slurm commands run: on this machine, or on a login node over SSH.

Both runners have the same methods, so the backend's code is the same for both:

- ``run(argv, timeout_s) -> (exit_code, stdout, stderr)``; a command that is not
  there gives exit code 127 and says so on stderr (as a shell would);
- ``write(path, data, mode)``: a file on the cluster's file system (atomically);
- ``makedirs(path)``, ``exists(path)``, and the spool's reading (``runyard.spool.SpoolReader``).

``LocalCommands`` uses ``subprocess`` and the local file system; ``SSHCommands``
uses ``runyard.backends._remote.RemoteHost`` (one shared connection) and reads
files with ``cat``/``tail``, so the login node needs nothing but a POSIX shell.
"""

from __future__ import annotations

import abc
import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runyard.backends.kit import BlobTarget, DirectoryBlobs, agent_environment
from runyard.errors import BackendError
from runyard.spool import SpoolReader

__all__ = ["Commands", "LocalCommands", "SSHCommands"]


class Commands(SpoolReader, abc.ABC):
    """The interface (local implementation of the file parts comes from ``SpoolReader``)."""

    where = "this machine"

    @abc.abstractmethod
    def run(self, argv: Sequence[str], timeout_s: float = 60.0) -> tuple[int, str, str]:
        """``(exit code, stdout, stderr)`` of ``argv``."""

    @abc.abstractmethod
    def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    @abc.abstractmethod
    def write(self, path: str, data: bytes, mode: int = 0o600) -> None:  # type: ignore[override]
        """Write ``data`` to ``path`` with ``mode``."""

    def blobs(self, root: str) -> BlobTarget:
        """The blob cache ``root`` on the cluster, for ``runyard.backends.kit.stage_snapshot``."""
        return DirectoryBlobs(root, exists=self.exists, write=self.write)

    def close(self) -> None:
        pass


class LocalCommands(Commands):
    where = "this machine"

    def run(self, argv: Sequence[str], timeout_s: float = 60.0) -> tuple[int, str, str]:
        try:
            # sbatch exports its own environment to the job (--export=ALL): give it the allow-list, never the server's.
            p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                               env=agent_environment())
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: command not found"
        except PermissionError as e:
            return 126, "", f"{argv[0]}: {e}"
        except subprocess.TimeoutExpired:
            raise BackendError(f"`{shlex.join(argv)}` did not finish within {timeout_s:g} s on {self.where}.",
                               "Is the Slurm controller overloaded or down? Try `scontrol ping`.") from None
        return p.returncode, p.stdout, p.stderr

    def makedirs(self, path: str) -> None:
        Path(path).expanduser().mkdir(parents=True, exist_ok=True)

    def write(self, path: str, data: bytes, mode: int = 0o600) -> None:  # type: ignore[override]
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)


class SSHCommands(Commands):
    """The Slurm commands of a login node, over one SSH connection."""

    def __init__(self, host: str, port: int = 22, user: str | None = None, key_file: str | None = None,
                 known_hosts: Any = None) -> None:
        from runyard.backends._remote import RemoteHost

        kwargs: dict[str, Any] = {}
        if known_hosts is not None:
            kwargs["known_hosts"] = known_hosts
        self.remote = RemoteHost(host, port, user, os.path.expanduser(key_file) if key_file else None, **kwargs)
        self.where = f"the login node {self.remote.label}"

    def run(self, argv: Sequence[str], timeout_s: float = 60.0) -> tuple[int, str, str]:
        r = self.remote.run(shlex.join(argv), timeout_s)
        return r.exit_code, r.stdout, r.stderr

    def makedirs(self, path: str) -> None:
        self.remote.makedirs(path)

    def blobs(self, root: str) -> BlobTarget:
        from runyard.backends._remote import RemoteBlobs

        return RemoteBlobs(self.remote, root, mode=0o444)

    def exists(self, path: str) -> bool:
        return self.remote.exists(path)

    def write(self, path: str, data: bytes, mode: int = 0o600) -> None:  # type: ignore[override]
        self.remote.put_bytes(data, path, mode=mode)

    # spool reading over SSH
    def list(self, directory: str) -> list[str]:
        code, out, _ = self.run(["sh", "-c", f"cd {shlex.quote(directory)} 2>/dev/null && ls -1 -- *.jsonl 2>/dev/null; true"])
        return [n for n in out.splitlines() if n.endswith(".jsonl")]

    def read_from(self, path: str, offset: int) -> bytes:
        code, out, _ = self.run(["sh", "-c", f"tail -c +{offset + 1} {shlex.quote(path)} 2>/dev/null; true"])
        return out.encode()

    def read_all(self, path: str) -> bytes | None:
        code, out, _ = self.run(["cat", path])
        return out.encode() if code == 0 else None

    def open_artifact(self, path: str) -> Any:
        import io

        code, out, err = self.run(["base64", path], timeout_s=600)
        if code != 0:
            raise BackendError(f"Cannot read the spooled artifact {path} on {self.where}: {err.strip()}.",
                               "Check the file on the cluster's shared file system.")
        import base64

        return io.BytesIO(base64.b64decode(out))

    def close(self) -> None:
        self.remote.close()
