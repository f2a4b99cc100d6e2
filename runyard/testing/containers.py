"""Pytest fixtures for tests that run containers for real: podman, Charliecloud's ch-run, rootless podman.

Registered for the whole suite by ``tests/conftest.py`` (``pytest_plugins``); tests that use the podman or
Charliecloud fixtures run in ``make test``'s serial part (the ``engines`` marker). Session-scoped: the test
image, the wheels and the directory image are made once per machine and reused (``runyard.testing._images``).

- ``podman_image``: the name of the test image (``localhost/runyard-test-python:3.11``, the host's own Python
  with pip, sh, bash and a few coreutils; ``ENV PATH``, ``WORKDIR /``).
- ``wheelhouse``: a directory of the wheels of numpy and scikit-learn and their dependencies for that Python,
  to mount into a build (``podman build --volume DIR:/wheels:ro``, then
  ``python3 -m pip install --no-index --find-links /wheels numpy scikit-learn``).
- ``charliecloud_image_dir``: the test image exported as a directory for ``ch-run``, readable by the pool
  accounts, with the bind targets ``/runyard/work`` and ``/runyard/spool``.
- ``rootless_podman``: podman as the pool account ``runyard-job-1`` (``sudo -u``), with its own storage under
  a directory of its own and the test image loaded into it.

Without podman or ch-run, a test using these fails under CI (``CI=true``: CI must run them) and is skipped
with the reason elsewhere, as the PostgreSQL tests do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.testing._images import (
    IMAGE_NAME,
    ImageError,
    charliecloud_dir,
    ensure_image,
    podman_usable,
    wheelhouse_dir,
)

__all__ = ["POOL_ACCOUNT", "RootlessPodman", "ch_run", "charliecloud_image_dir", "podman_image", "rootless_as", "rootless_podman",
           "unavailable", "wheelhouse"]

POOL_ACCOUNT = "runyard-job-1"


def unavailable(what: str, reason: str) -> None:
    """Fail under CI (``CI=true``), skip loudly elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}. CI must run the {what} tests.")
    pytest.skip(f"SKIPPING {what.upper()} TESTS: {reason}")


@pytest.fixture(scope="session")
def podman_image() -> str:
    """The test image's name, built (~3 s) unless podman has it already."""
    problem = podman_usable()
    if problem:
        unavailable("podman", problem)
    try:
        return ensure_image(IMAGE_NAME)
    except ImageError as e:
        pytest.fail(f"the podman test image could not be built: {e}")


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """The wheels of numpy and scikit-learn (with scipy, joblib, threadpoolctl), downloaded once from PyPI."""
    try:
        return wheelhouse_dir()
    except ImageError as e:
        unavailable("container build", f"the wheels of numpy and scikit-learn could not be downloaded: {e}")
        raise  # unreachable: unavailable() fails or skips


@pytest.fixture(scope="session")
def charliecloud_image_dir(podman_image: str) -> Path:
    """The test image as a directory image for ``ch-run`` (exported from podman once, ~2 s)."""
    if shutil.which("ch-run") is None:
        unavailable("Charliecloud", "ch-run is not installed: run `bash scripts/test-setup.sh` "
                                    "(it installs charliecloud-runtime)")
    try:
        return charliecloud_dir(podman_image)
    except ImageError as e:
        pytest.fail(f"the Charliecloud directory image could not be made: {e}")


def ch_run(image_dir: Path, command: list[str], *, binds: dict[str, str] | None = None, user: str | None = None,
           cwd: str | None = None, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``ch-run`` the way Runyard starts it: a private /tmp, the binds ``{host: guest}`` (guest directories must
    exist in the image), ``USER`` set, only ``env`` (plus PATH and USER) in the environment; as ``user``
    through ``sudo -u`` when given."""
    args = ["ch-run", "--private-tmp"]
    for host, guest in (binds or {}).items():
        args += ["-b", f"{host}:{guest}"]
    if cwd:
        args += ["-c", cwd]
    args += [str(image_dir), "--", *command]
    name = user or "root"
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "USER": name, **(env or {})}
    if user:
        args = ["sudo", "-n", "-u", user, "env", "-i", *(f"{k}={v}" for k, v in base.items()), *args]
        base = {"PATH": os.environ.get("PATH", os.defpath)}
    return subprocess.run(args, env=base, capture_output=True, text=True, check=False, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class RootlessPodman:
    """Podman as a pool account: its own HOME (storage under ~/.local/share/containers) and XDG_RUNTIME_DIR."""

    def __init__(self, account: str, root: Path, *, storage_conf: str | None = None) -> None:
        self.account = account
        self.root = root
        self.home = root / "home"
        self.runtime_dir = root / "run"
        self.storage_conf = storage_conf  # CONTAINERS_STORAGE_CONF (the run_as pool's: scripts/setup-containers.sh)

    def env(self) -> dict[str, str]:
        env = {"HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.runtime_dir), "USER": self.account,
               "PATH": "/usr/local/bin:/usr/bin:/bin"}
        if self.storage_conf:
            env["CONTAINERS_STORAGE_CONF"] = self.storage_conf
        return env

    def command(self, *args: str) -> list[str]:
        """``sudo -u ACCOUNT env -i ... podman ARGS`` (cwd must be a directory the account may enter)."""
        return ["sudo", "-n", "-u", self.account, "env", "-i", *(f"{k}={v}" for k, v in self.env().items()),
                "podman", *args]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True, check=False, timeout=timeout,
                              cwd=self.root, stdin=subprocess.DEVNULL)

    def load(self, image: str) -> None:
        """Copy ``image`` from root's storage into the account's (``podman save`` | ``podman load``), unless it has it."""
        if self.run("image", "exists", image).returncode == 0:
            return
        archive = self.root / "image.tar"
        res = subprocess.run(["podman", "save", "-o", str(archive), image], capture_output=True, text=True,
                             check=False, timeout=300)
        if res.returncode != 0:
            raise ImageError(f"podman save {image} failed: {res.stderr}")
        archive.chmod(0o644)
        try:
            res = self.run("load", "-q", "-i", str(archive))
            if res.returncode != 0:
                raise ImageError(f"podman load as {self.account} failed ({res.returncode}): {res.stderr}")
        finally:
            archive.unlink()

    def stop(self) -> None:
        """Stop the account's podman processes of this storage, then remove it.

        Rootless podman leaves a pause process (``podman`` or ``catatonit -P``) holding the user namespace, and
        conmon runs ``podman container cleanup`` after a container ends, which may start a new one. Only
        processes of the account whose environment names this ``XDG_RUNTIME_DIR`` are ours; they are looked
        for until none is left.
        """
        marker = f"XDG_RUNTIME_DIR={self.runtime_dir}".encode()
        uid = _uid(self.account)
        deadline = time.monotonic() + 10
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 1.0:
            found = False
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    if os.stat(f"/proc/{entry}").st_uid != uid:
                        continue
                    with open(f"/proc/{entry}/environ", "rb") as fh:
                        if marker not in fh.read().split(b"\0"):
                            continue
                    with open(f"/proc/{entry}/stat", "rb") as fh:
                        if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                            continue  # ended, waiting for its parent to reap it
                    os.kill(int(entry), signal.SIGKILL)
                    found = True
                except (OSError, IndexError):
                    continue  # ended meanwhile
            if found:
                quiet_since = time.monotonic()
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)


def _uid(account: str) -> int:
    import pwd

    return pwd.getpwnam(account).pw_uid


@pytest.fixture(scope="session")
def rootless_podman(podman_image: str) -> Iterator[RootlessPodman]:
    """Rootless podman as ``runyard-job-1`` (scripts/test-setup.sh gives it /etc/subuid and /etc/subgid
    ranges), with the test image loaded into its own storage."""
    import pwd

    if os.geteuid() != 0:
        pytest.skip("rootless podman as a pool account needs root (sudo -u runyard-job-1)")
    try:
        pwd.getpwnam(POOL_ACCOUNT)
    except KeyError:
        unavailable("rootless podman", f"there is no account {POOL_ACCOUNT}: run `bash scripts/test-setup.sh`")
        raise
    for f in ("/etc/subuid", "/etc/subgid"):
        if not any(line.startswith(POOL_ACCOUNT + ":") for line in Path(f).read_text().splitlines()):
            unavailable("rootless podman", f"{f} has no range for {POOL_ACCOUNT}: run `bash scripts/test-setup.sh`")
    with rootless_as(POOL_ACCOUNT) as podman:
        podman.load(podman_image)
        yield podman


@contextlib.contextmanager
def rootless_as(account: str, *, storage_conf: str | None = None) -> Iterator[RootlessPodman]:
    """Podman as ``account`` (root only) with a HOME and XDG_RUNTIME_DIR of its own in a temporary
    directory, stopped (its pause process included) and removed afterwards. With ``storage_conf`` its
    images live where that file says (the run_as pool's storage keeps them between jobs)."""
    import pwd

    pw = pwd.getpwnam(account)
    root = Path(tempfile.mkdtemp(prefix="runyard-rootless-", dir="/var/tmp"))
    root.chmod(0o755)
    podman = RootlessPodman(account, root, storage_conf=storage_conf)
    for d in (podman.home, podman.runtime_dir):
        d.mkdir(mode=0o700)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    try:
        yield podman
    finally:
        podman.stop()
