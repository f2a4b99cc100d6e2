"""The git state of a directory, recorded beside a snapshot and with an SDK run: commit, branch, dirty flag and
diff (:func:`git_info`)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runyard.errors import RunyardError

__all__ = ["GIT_DIFF_MAX_BYTES", "GitInfo", "git_info"]

GIT_DIFF_MAX_BYTES = 1024 * 1024
"""The recorded ``git diff`` is cut at this many bytes, with a note saying so."""


@dataclass(frozen=True)
class GitInfo:
    """The git state of a directory; every field is None outside a git work tree or without git.

    Attributes:
        commit: full hash of HEAD (None in a repository without commits).
        branch: current branch (None when HEAD is detached).
        dirty: whether the directory differs from HEAD (modified, staged or untracked files).
        diff: ``git diff HEAD`` limited to the directory, then the untracked files' names;
            cut at :data:`GIT_DIFF_MAX_BYTES` with a note.
    """

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    diff: str | None = None


_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}


def _git(directory: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    cmd = ["git", "-c", "core.quotepath=off", *args]
    try:
        # GIT_OPTIONAL_LOCKS=0: `git status` would otherwise refresh the index and take
        # index.lock, racing the user's own git commands.
        # https://git-scm.com/docs/git#Documentation/git.txt-codeGITOPTIONALLOCKScode
        proc = subprocess.run(cmd, check=False, cwd=directory, capture_output=True, timeout=120,
                              env={**os.environ, **_GIT_ENV}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise RunyardError(f"`{' '.join(cmd)}` in {directory} did not finish in 120 s.",
                           "Check the repository (`git status`), or snapshot a directory outside it.") from e
    if check and proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise RunyardError(f"`{' '.join(cmd)}` in {directory} failed with exit code {proc.returncode}: {tail}",
                           "Run the command yourself to see what git needs.")
    return proc


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _cap(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    cut = data[:limit]
    nl = cut.rfind(b"\n")
    if nl > 0:
        cut = cut[: nl + 1]
    head = cut.decode("utf-8", "ignore")
    return head + f"\n# [runyard: git diff truncated: kept {_human(len(cut))} of {_human(len(data))}]\n"


def git_info(directory: str | os.PathLike[str]) -> GitInfo:
    """The git commit, branch, dirty flag and diff of a directory, via the ``git`` CLI.

    ``dirty`` and ``diff`` cover only ``directory`` (the part of the repository the
    snapshot holds): ``git diff HEAD -- .`` followed by the names of untracked,
    not git-ignored files. The diff is cut at :data:`GIT_DIFF_MAX_BYTES`.

    Args:
        directory: any directory; need not be the repository root.

    Returns:
        The state; all fields None when ``directory`` is not in a git work tree, git
        refuses it (e.g. "dubious ownership"), or git is not installed.

    Raises:
        RunyardError: a git command hung for 120 s or failed inside a valid work tree.
    """
    d = Path(directory).expanduser().resolve()
    try:
        probe = _git(d, "rev-parse", "--is-inside-work-tree", check=False)
    except FileNotFoundError:
        return GitInfo()
    if probe.returncode != 0 or probe.stdout.strip() != b"true":
        return GitInfo()
    head = _git(d, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
    commit = head.stdout.decode().strip() if head.returncode == 0 else None
    ref = _git(d, "symbolic-ref", "--short", "-q", "HEAD", check=False)
    branch = ref.stdout.decode("utf-8", "replace").strip() if ref.returncode == 0 else None
    status = _git(d, "status", "--porcelain", "-z", "--untracked-files=normal", "--", ".")
    dirty = bool(status.stdout.strip(b"\0"))
    if commit is None:
        # No commit yet: diff the index and work tree against the empty tree.
        base = _git(d, "hash-object", "-t", "tree", "--stdin").stdout.decode().strip()
    else:
        base = commit
    diff = _git(d, "diff", base, "--no-color", "--no-ext-diff", "--no-textconv", "--", ".").stdout.decode("utf-8", "replace")
    untracked = _git(d, "ls-files", "--others", "--exclude-standard", "--full-name", "-z", "--", ".").stdout
    names = [n.decode("utf-8", "replace") for n in untracked.split(b"\0") if n]
    if names:
        diff += "# Untracked files (in the snapshot unless runyard ignores them):\n" + "".join(f"#   {n}\n" for n in names)
    return GitInfo(commit=commit, branch=branch, dirty=dirty, diff=_cap(diff, GIT_DIFF_MAX_BYTES))
