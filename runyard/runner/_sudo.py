"""Running a task's processes as another account through ``sudo -n -u ACCOUNT`` (no root needed).

The local agent of a ``run_as`` pool that does not run as root switches accounts this
way, under a sudoers rule that lets it become the pool's accounts and nothing else
(``scripts/setup-job-accounts.sh N --sudo-for AGENT``). Every step that needs the
account goes through one ``sudo -n -u ACCOUNT -- ...`` call:

- :func:`install`: the task's files (materialised by the agent into a directory of its
  own, 0700) go into ``<home>/<label>/`` as a tar stream piped into ``tar -x`` run as the
  account, in the same call that creates ``<home>`` (0700, the account's; refused when it
  exists but is not the account's, e.g. made by another account ahead of the job). A
  file ``<home>/.runyard-env.<label>`` (0600) holds the task's environment as ``export``
  lines: secrets (the run's token) never appear in a command line, which every account
  can read in ``/proc/<pid>/cmdline``.
- :func:`argv`: a process is ``sudo -n -u ACCOUNT -- /usr/bin/env -i /bin/sh <env file>
  <argv>``: an empty environment (sudo's own ``env_reset`` result is dropped), then the
  file's exports, ``cd`` into the working directory, ``exec`` of the command. The output
  files and the exit-code file are descriptors 0-2 opened by the agent, which sudo hands
  on: they stay in the agent's directory, readable by a later agent, never by the accounts.
- :func:`kill_group`: signals go to the process group as the account (``kill -s SIG --
  -PGID``): sudo itself (root's) stays out of it and ends as its command ended.
- :func:`kill_all` (``kill -KILL -1`` as the account: every process it runs) and
  :func:`remove` (``rm -rf`` of the job's directory) when a job ended.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SudoAccount", "argv", "install", "kill_all", "kill_group", "remove", "sudo_kill_all", "sudo_kill_group",
           "sudo_remove", "sudo_works"]

SUDO_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# As the account: make <home> (0700) unless it is already the account's own directory, then
# <home>/<label> fresh, then unpack the stream (umask 077: nothing in it is readable by others).
# (The tasks of a distributed job share <home>: whichever comes first makes it.)
_INSTALL = ('umask 077\n'
            'mkdir -m 700 -- "$1" 2>/dev/null\n'
            'if [ -L "$1" ] || [ ! -d "$1" ] || [ ! -O "$1" ]; then\n'
            '  echo "runyard: $1 is not a directory of this account" >&2; exit 1\nfi\n'
            'cd -- "$1" && exec tar -x --no-same-owner --no-same-permissions -f -\n')


@dataclass(frozen=True)
class SudoAccount:
    """Run a task as ``account`` through sudo; its working directory is ``<home>/<task label>``."""

    account: str
    home: Path

    def env_file(self, label: str) -> Path:
        return self.home / f".runyard-env.{label}"


def _sudo(account: str, *args: str) -> list[str]:
    return [shutil.which("sudo", path=SUDO_PATH) or "sudo", "-n", "-u", account, "--", *args]


def _run(account: str, *args: str, stdin: bytes | None = None, timeout_s: float = 60.0) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(_sudo(account, *args), input=stdin, capture_output=True, timeout=timeout_s, check=False,
                          env={"PATH": SUDO_PATH, "LANG": "C"}, cwd="/")


def sudo_works(account: str) -> str:
    """``""`` when this process may run commands as ``account`` without a password, else sudo's answer."""
    if shutil.which("sudo", path=SUDO_PATH) is None:
        return "sudo is not installed"
    try:
        res = _run(account, "/bin/true", timeout_s=15.0)
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    if res.returncode == 0:
        return ""
    return (res.stderr.decode(errors="replace").strip().splitlines() or [f"sudo exited {res.returncode}"])[-1]


def install(target: SudoAccount, staged: Path, label: str, env: dict[str, str]) -> Path:
    """Hand the task's files (``staged``, the agent's) to the account: ``<home>/<label>/`` and its env file.

    Returns the working directory. Raises ``RuntimeError`` with sudo's or tar's message.
    """
    workdir = target.home / label
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(_sudo(target.account, "/bin/sh", "-c", _INSTALL, "runyard-install", str(target.home)),
                                stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/",
                                env={"PATH": SUDO_PATH, "LANG": "C"})
    finally:
        os.close(r)
    try:
        with os.fdopen(w, "wb") as stream, tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add(str(staged), arcname=label, filter=_plain)
            script = _env_script(env, workdir).encode()
            info = tarfile.TarInfo(target.env_file(label).name)
            info.size, info.mode = len(script), 0o600
            tar.addfile(info, io.BytesIO(script))
    except BrokenPipeError:
        pass  # the extraction failed: its message follows
    err = proc.stderr.read() if proc.stderr is not None else b""
    if proc.wait() != 0:
        raise RuntimeError(f"could not hand the task's files to {target.account} through sudo: "
                           f"{err.decode(errors='replace').strip() or f'exit code {proc.returncode}'}")
    return workdir


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _env_script(env: dict[str, str], workdir: Path) -> str:
    lines = [f"cd -- {shlex.quote(str(workdir))} || exit 126"]
    lines += [f"export {shlex.quote(f'{k}={v}')}" for k, v in env.items() if _ENV_NAME.match(k)]
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def argv(target: SudoAccount, label: str, command: list[str]) -> list[str]:
    """``command`` run as the account, in the environment and directory :func:`install` wrote down."""
    return _sudo(target.account, "/usr/bin/env", "-i", "/bin/sh", str(target.env_file(label)), *command)


def popen_env() -> dict[str, str]:
    """sudo's own environment (sudo resets it anyway; nothing of the caller's need reach it)."""
    return {"PATH": SUDO_PATH, "LANG": "C"}


def kill_group(account: str, pgid: int, sig: int) -> None:
    """Send ``sig`` to the process group ``pgid`` as ``account`` (nothing when the group is gone)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass  # only the account's processes are left in it
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        _run(account, "kill", "-s", signal.Signals(sig).name.removeprefix("SIG"), "--", f"-{pgid}", timeout_s=30.0)


def kill_all(account: str) -> None:
    """SIGKILL every process of ``account`` (what a job left running): ``kill -KILL -1`` as the account
    (procps' kill takes ``-1`` for "every process" in this form only, not after ``-s KILL --``)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        _run(account, "kill", "-KILL", "-1", timeout_s=30.0)


def remove(account: str, path: Path) -> bool:
    """``rm -rf path`` as ``account`` (a job's directory). True when it is gone."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        _run(account, "rm", "-rf", "--", str(path), timeout_s=300.0)
    return not os.path.lexists(path)


# The names ``runyard.runner`` gives them.
sudo_kill_group = kill_group
sudo_kill_all = kill_all
sudo_remove = remove
