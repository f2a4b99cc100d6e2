"""Job accounts of the local backend's ``run_as`` pool: checks, and the directories a job's account gets.

With ``run_as: {pool: runyard-job, size: N}`` every job runs as one of the accounts
``runyard-job-1`` .. ``runyard-job-N`` (``scripts/setup-job-accounts.sh N`` creates them):
the agent gives each project one account at a time (two projects' jobs never share a uid at
once; an account is free again once its project's jobs all ended), and starts the job's
processes with that uid and gid, supplementary groups cleared. That needs the agent to run
as root, or a sudoers rule that lets its account become the pool's accounts (and no other):
``scripts/setup-job-accounts.sh N --sudo-for AGENT`` writes it. Without either, ``check``
says so and submissions fail with the same message.

Without root, every step that needs a job's account is a ``sudo -n -u ACCOUNT -- ...`` call
(``runyard.runner._sudo``): the job's directory is made, filled (a tar stream) and at the
end removed as the account; its processes start and are signalled as the account; an
account's leftover processes are killed as the account (``kill -KILL -1``). ``<jobs_dir>``
is then mode 1733 (the agent's; the accounts may create their job's directory in it but
neither list it nor remove another's entry), and a job's directory that exists but is not
its account's is refused.

Directories: ``<jobs_dir>`` (mode 0711, owned by the agent: reachable, not listable) holds
``<jobs_dir>/<job_id>/`` (0700, owned by the job's account while it runs, the agent's after;
its ``HOME``) with the task's working directory ``<task>/`` inside. Before an account serves
another project, every process still running as it is killed. ``jobs_dir`` lies outside the server's home, which stays
unreadable to the accounts (0700): its database, artifacts and the agent's own files (the
task's output and exit-code files under ``agent/work/<job_id>/.runyard/``) are out of reach.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import signal
import stat
import tempfile
import time
from pathlib import Path

from runyard.errors import SubmitError

__all__ = ["account_ids", "chown_tree", "default_jobs_dir", "ensure_jobs_root", "job_home", "kill_account_processes",
           "pool_problem", "remove_job_home", "seal_job_home", "uses_sudo"]

SETUP = "scripts/setup-job-accounts.sh"


def default_jobs_dir(agent_dir: Path) -> str:
    """``/var/tmp/runyard-jobs-<8 hex of the agent directory>`` (one per Runyard home)."""
    digest = hashlib.sha256(str(Path(agent_dir).resolve()).encode()).hexdigest()[:8]
    base = "/var/tmp" if Path("/var/tmp").is_dir() else tempfile.gettempdir()
    return str(Path(base) / f"runyard-jobs-{digest}")


SUDO_CHECK_TTL_S = 300.0  # a working sudo rule is checked again after this (checks run per submission)
_sudo_ok: dict[tuple[int, tuple[str, ...]], float] = {}


def pool_problem(accounts: list[str]) -> tuple[str, str] | None:
    """Why jobs cannot run as ``accounts`` here: ``(problem, fix)``, or ``None`` when they can
    (this process is root, or ``sudo -n -u ACCOUNT true`` works for every account)."""
    missing = [a for a in accounts if not _exists(a)]
    if missing:
        return (f"The job account(s) {', '.join(missing)} of the run_as pool do not exist on this machine.",
                f"Create them as root: `{SETUP} {len(accounts)}` (or lower the pool's size).")
    if os.geteuid() == 0:
        return None
    key = (os.geteuid(), tuple(accounts))
    if time.monotonic() < _sudo_ok.get(key, 0.0):
        return None
    from runyard.runner import sudo_works

    for account in accounts:
        why = sudo_works(account)
        if why:
            me = _name(os.geteuid())
            return (f"run_as pool needs the local agent to run as root or to switch to {accounts[0]} .. {accounts[-1]} "
                    f"through sudo, but it runs as {me} (uid {os.geteuid()}) and `sudo -n -u {account} true` fails: {why}.",
                    f"Either run the server (and so its agent) as root, or give {me} the sudoers rule for the pool as root: "
                    f"`{SETUP} {len(accounts)} {accounts[0].rsplit('-', 1)[0]} --sudo-for {me}` (it writes "
                    f"/etc/sudoers.d/runyard-jobs: `{me} ALL=({','.join(accounts)}) NOPASSWD: ALL`); or set the local "
                    f"backend's run_as: shared (jobs then run as the server's account and can see each other).")
    _sudo_ok[key] = time.monotonic() + SUDO_CHECK_TTL_S
    return None


def uses_sudo() -> bool:
    """Whether this process switches accounts through sudo (it is not root)."""
    return os.geteuid() != 0


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def account_ids(name: str) -> tuple[int, int]:
    """``(uid, gid)`` of the account ``name``."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SubmitError(f"The job account {name} does not exist on this machine.",
                          f"Create the pool's accounts as root with `{SETUP} N`.") from None
    if entry.pw_uid == 0:
        raise SubmitError(f"The job account {name} is root.", "Give the pool accounts of their own (see docs/operating.md).")
    return entry.pw_uid, entry.pw_gid


def ensure_jobs_root(path: Path) -> Path:
    """Create ``path`` (owned by this process) or check an existing one is ours and not a link.

    Mode 0711 as root (it makes the jobs' directories itself); 1733 without (the accounts make
    their job's directory through sudo: they may create entries, not list nor remove others').
    """
    mode = 0o1733 if uses_sudo() else 0o711
    path.mkdir(mode=0o711, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise SubmitError(f"The jobs directory {path} is not a directory owned by uid {os.geteuid()}.",
                          "Remove it, or set the local backend's jobs_dir to a directory of the server's account.")
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
    return path


def job_home(jobs_dir: Path, job_id: str, uid: int, gid: int) -> Path:
    """``<jobs_dir>/<job_id>``: created 0700 and owned by the job's account (its HOME; the task's directory goes in it)."""
    root = ensure_jobs_root(jobs_dir)
    home = root / job_id
    home.mkdir(mode=0o700, exist_ok=True)
    os.lchown(home, uid, gid)
    os.chmod(home, 0o700)
    return home


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """Hand ``path`` and everything in it to ``uid:gid`` (links themselves, never what they point at)."""
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def seal_job_home(home: Path) -> None:
    """Take an ended job's directory back from its account (root's, 0700): a later project's job
    that runs as the same account cannot read what this one left."""
    with contextlib.suppress(OSError):
        st = os.lstat(home)
        if stat.S_ISDIR(st.st_mode):
            os.lchown(home, os.geteuid(), os.getegid())
            os.chmod(home, 0o700)


def remove_job_home(account: str, home: Path) -> None:
    """An ended job's directory, without root: removed as its account (``sudo -n -u ACCOUNT rm -rf``)."""
    from runyard.runner import sudo_remove

    sudo_remove(account, home)


def kill_account_processes(uid: int, account: str = "") -> int:
    """SIGKILL every process running as ``uid`` (what a job left behind, e.g. a daemon that left its
    process group), before the account serves another project. Returns how many were killed
    (without root: as the account through sudo, ``kill -KILL -1``)."""
    if uses_sudo() and account:
        from runyard.runner import sudo_kill_all

        first = [pid for pid in _processes_of(uid) if not _zombie(pid)]
        running = first
        for _ in range(5):  # a process may fork while kill runs: look again until none is left
            if not running:
                break
            sudo_kill_all(account)
            running = [pid for pid in _processes_of(uid) if not _zombie(pid)]
        return len(first)
    killed = 0
    for _ in range(5):  # a process may fork while we look: look again until none is left
        found = []
        try:
            names = os.listdir("/proc")
        except OSError:
            return killed
        for name in names:
            if name.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{name}").st_uid == uid:
                        found.append(int(name))
        if not found:
            break
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def _processes_of(uid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{name}").st_uid == uid:
                        found.append(int(name))
    return found
