"""The container test image, the wheels of the digits example, and a Charliecloud directory image, made once.

No registry is reachable where the tests run, so the test image is built from the host's own Python: the
interpreter of ``sys.base_prefix`` (the venv's base CPython), its standard library without the test suite,
IDLE and tkinter, the pip this Python runs, the shared libraries ``ldd`` lists for the interpreter and its
extension modules (and those manylinux wheels expect), the dynamic loader, ``/bin/sh``, bash and a few coreutils.
The rootfs is written as a tarball straight from the host's files and imported with ``podman import``; the image
is reused while it exists and its label names this recipe and this Python.

Run it by hand (``make test-images`` does)::

    python -m runyard.testing._images            # the podman image, the wheels, the Charliecloud directory
    python -m runyard.testing._images --image    # the podman image only

Everything is kept under ``RUNYARD_TEST_CACHE`` (default ``/var/cache/runyard-test`` for root, else
``~/.cache/runyard-test``), readable by the pool accounts so that ``ch-run`` can run the directory image as them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["CHARLIECLOUD_MOUNT_POINTS", "IMAGE_NAME", "ImageError", "cache_dir", "charliecloud_dir",
           "ensure_image", "image_exists", "podman_usable", "rootfs_tar", "wheelhouse_dir"]

PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
IMAGE_NAME = f"localhost/runyard-test-python:{PY_VERSION}"
IMAGE_PATH = "/usr/local/bin:/usr/bin:/bin"

# ch-run mounts onto directories that must already exist in the image: the run's work dir and spool.
CHARLIECLOUD_MOUNT_POINTS = ("runyard/work", "runyard/spool")

# The wheels the digits example installs in a build step (scipy, joblib and threadpoolctl come with them; skops
# stores its fitted model).
WHEELS = ("numpy", "scikit-learn", "skops")

# A few commands beside the shells, for tests and build steps.
_COMMANDS = ("sh", "bash", "ls", "cat", "mkdir", "rm", "env", "id", "true", "false", "sleep", "echo", "touch",
             "head", "stat", "pwd", "which")
# manylinux wheels (numpy, scipy, scikit-learn) expect the libraries of the manylinux policy from the system
# (PEP 600), though the interpreter does not link them: glibc's and GCC's runtime.
_WHEEL_SYSTEM_LIBS = ("libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                      "libutil.so.1", "libresolv.so.2", "libm.so.6", "libgomp.so.1")
# Parts of the standard library a job never needs here: its test suite, IDLE, tkinter, turtle, the build
# configuration (config-3.11-*: ~45 MB of static library), and site-packages (only pip is kept, for build steps).
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3/tests", "ensurepip/_bundled", "site-packages",
                "unittest/test", "ctypes/test", "distutils/tests", "sqlite3/test", "tkinter/test"}
_DYNLOAD_SKIP = re.compile(r"^_tkinter\.")
_OPT_PYC = re.compile(r"\.opt-[12]\.pyc$")  # bytecode for `python -O` only


class ImageError(RuntimeError):
    """The test image, the wheels or the directory image could not be made; the message says why and what to do."""


def cache_dir() -> Path:
    """Where the rootfs lock, the wheels and the Charliecloud directory image live."""
    env = os.environ.get("RUNYARD_TEST_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/runyard-test")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "runyard-test"


def _mkcache() -> Path:
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        d.chmod(0o755)  # the pool accounts read the Charliecloud directory image from here
    return d


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One maker at a time across pytest-xdist workers and concurrent `make` runs."""
    path = _mkcache() / f".{name}.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], *, timeout: float = 600, **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout, **kw)  # type: ignore[call-overload]
    if res.returncode != 0:
        raise ImageError(f"`{' '.join(cmd)}` failed ({res.returncode}):\n{res.stdout}{res.stderr}")
    return res


def podman_usable() -> str | None:
    """None when podman is installed and runs; else why not and how to fix it."""
    if shutil.which("podman") is None:
        return ("podman is not installed: run `bash scripts/test-setup.sh` (or `make system-test-deps`), "
                "which installs it and writes /etc/containers/containers.conf")
    res = subprocess.run(["podman", "info", "--format", "{{.Store.GraphDriverName}}"], capture_output=True,
                         text=True, check=False, timeout=60)
    if res.returncode != 0:
        return (f"`podman info` failed ({res.returncode}): {res.stderr.strip()}; "
                "run `bash scripts/test-setup.sh`, which writes a containers.conf that works on this machine")
    return None


# Bumped whenever rootfs_tar() changes what goes into the image: an image with another label is built again.
_RECIPE = "2"
_LABEL = "org.runyard.test-image"


def _fingerprint() -> str:
    return f"recipe-{_RECIPE},python-{sys.version.split()[0]},{sys.base_prefix}"  # no spaces: podman import --change


def image_exists(name: str = IMAGE_NAME) -> bool:
    return subprocess.run(["podman", "image", "exists", name], capture_output=True, check=False).returncode == 0


def _image_current(name: str) -> bool:
    """The image exists and was made by this recipe from this Python."""
    if not image_exists(name):
        return False
    res = subprocess.run(["podman", "image", "inspect", "--format", f'{{{{index .Labels "{_LABEL}"}}}}', name],
                         capture_output=True, text=True, check=False)
    return res.returncode == 0 and res.stdout.strip() == _fingerprint()


def _image_id(name: str) -> str:
    return _run(["podman", "image", "inspect", "--format", "{{.Id}}", name]).stdout.strip()


# --- the rootfs ---------------------------------------------------------------------------------------------

def _ldd(paths: list[str]) -> set[str]:
    """The absolute paths of the shared libraries the ELF files ``paths`` need (and the loader)."""
    libs: set[str] = set()
    for i in range(0, len(paths), 64):
        res = subprocess.run(["ldd", *paths[i:i + 64]], capture_output=True, text=True, check=False)
        for line in res.stdout.splitlines():
            m = re.search(r"=>\s+(/\S+)\s+\(", line) or re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                libs.add(m.group(1))
    return libs


def _system_lib(soname: str) -> str | None:
    """The host's 64-bit ``soname`` as the loader's cache knows it, or None."""
    res = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False)
    for line in res.stdout.splitlines():
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (/\S+)$", line)
        if m and m.group(1) == soname and "x86-64" in m.group(2):
            return m.group(3)
    return None


class _Tar:
    """A rootfs tarball written from host files: every entry owned by root, directories made on the way."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 (closed by close())
        self.seen: set[str] = set()

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = int(time.time())
        return info

    def dir(self, name: str, mode: int = 0o755) -> None:
        name = name.strip("/")
        if not name or name in self.seen:
            return
        self.dir(os.path.dirname(name))
        self.seen.add(name)
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if name in self.seen:
            return
        self.dir(os.path.dirname(name))
        self.seen.add(name)
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def file(self, name: str, host: str | Path) -> None:
        """The content of ``host`` (symlinks followed) at ``name``."""
        name = name.strip("/")
        if name in self.seen:
            return
        self.dir(os.path.dirname(name))
        self.seen.add(name)
        st = os.stat(host)
        info = self._info(name, tarfile.REGTYPE, stat.S_IMODE(st.st_mode) & 0o755 | 0o444)
        info.size = st.st_size
        with open(host, "rb") as fh:
            self.tar.addfile(info, fh)

    def data(self, name: str, content: bytes, mode: int = 0o644) -> None:
        import io

        name = name.strip("/")
        self.dir(os.path.dirname(name))
        self.seen.add(name)
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(content)
        self.tar.addfile(info, io.BytesIO(content))

    def host_path(self, path: str) -> None:
        """A host file at the same place in the image (the directories of its path resolved, as on a usrmerged
        system where /lib is a link to usr/lib)."""
        self.file(os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)), path)

    def close(self) -> None:
        self.tar.close()


def _pip_source() -> Path:
    """The directory of the pip this Python imports (a venv's own, or the one of its base)."""
    import importlib.util

    spec = importlib.util.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        raise ImageError(f"pip is not installed for {sys.executable}: install it with "
                         f"`{sys.executable} -m ensurepip` (the test image's build steps need it)")
    return Path(next(iter(spec.submodule_search_locations)))


def _site_packages(prefix: str) -> str:
    """Where this Python looks for packages when installed at ``prefix``: lib/python3.X/site-packages, or on
    Debian's python3 lib/python3.X/dist-packages."""
    import site

    for path in site.getsitepackages([prefix]):
        if path.startswith(prefix + "/lib/python3."):
            return path
    return f"{prefix}/lib/python{PY_VERSION}/site-packages"


def rootfs_tar(dest: Path, prefix: str | None = None) -> Path:
    """Write the test image's rootfs as a tarball at ``dest``, from the CPython installed at ``prefix``."""
    prefix = prefix or sys.base_prefix
    ver = PY_VERSION
    exe = Path(prefix) / "bin" / f"python{ver}"
    stdlib = Path(prefix) / "lib" / f"python{ver}"
    if not exe.is_file() or not (stdlib / "os.py").is_file():
        raise ImageError(f"no CPython {ver} at {prefix} (expected {exe} and {stdlib}/os.py); "
                         "run this with the tests' Python, e.g. .venv/bin/python -m runyard.testing._images")
    pip_dir = _pip_source()
    out = _Tar(dest)
    try:
        # A usrmerged layout, like the host's: /bin, /lib, /lib64 and /sbin point into /usr.
        for top in ("bin", "lib", "lib64", "sbin"):
            out.dir(f"usr/{top}")
            out.symlink(top, f"usr/{top}")
        out.dir("tmp", 0o1777)
        out.dir("var/tmp", 0o1777)
        for d in ("root", "etc", "dev", "proc", "sys", "home", "usr/local/lib", *CHARLIECLOUD_MOUNT_POINTS):
            out.dir(d, 0o700 if d == "root" else 0o755)
        out.data("etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"
                               b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        out.data("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        for f in ("etc/hosts", "etc/resolv.conf", "etc/hostname"):  # podman and ch-run bind the host's over these
            out.data(f, b"")
        out.symlink("etc/mtab", "/proc/mounts")  # podman makes it when missing, which fails in a read-only store

        # The interpreter: /usr/local/bin/python3.11 finds its stdlib at /usr/local/lib/python3.11.
        out.file(f"usr/local/bin/python{ver}", exe)
        for link in ("python3", "python"):
            out.symlink(f"usr/local/bin/{link}", f"python{ver}")
        elves = [str(exe)]

        def skip(rel: str) -> bool:
            return (rel in _STDLIB_SKIP or any(rel.startswith(s + "/") for s in _STDLIB_SKIP)
                    or rel.startswith("config-"))

        for root, dirs, files in os.walk(stdlib):
            rel_root = os.path.relpath(root, stdlib)
            rel_root = "" if rel_root == "." else rel_root
            dirs[:] = sorted(d for d in dirs if not skip(os.path.join(rel_root, d)))
            out.dir(f"usr/local/lib/python{ver}/{rel_root}")
            for f in sorted(files):
                if rel_root == "lib-dynload" and _DYNLOAD_SKIP.match(f) or _OPT_PYC.search(f):
                    continue
                host = os.path.join(root, f)
                if not os.path.isfile(host):
                    continue
                out.file(f"usr/local/lib/python{ver}/{rel_root}/{f}", host)
                if f.endswith(".so"):
                    elves.append(host)
        # pip alone in site-packages (the one this Python runs: a venv's, or the system's), with its metadata so
        # that `pip --version` and `pip list` know it.
        site = _site_packages("/usr/local").lstrip("/")
        out.dir(site)
        for entry in sorted(pip_dir.parent.iterdir()):
            if entry == pip_dir or re.match(r"pip-[\w.+]+\.(dist|egg)-info$", entry.name):
                for root, dirs, files in os.walk(entry):
                    dirs.sort()
                    rel = os.path.relpath(root, pip_dir.parent)
                    out.dir(f"{site}/{rel}")
                    for f in sorted(files):
                        if not _OPT_PYC.search(f):
                            out.file(f"{site}/{rel}/{f}", os.path.join(root, f))

        # Shells and coreutils.
        for cmd in _COMMANDS:
            path = shutil.which(cmd, path="/usr/bin:/bin")
            if path is None:
                raise ImageError(f"the host has no `{cmd}` to put in the test image (install coreutils/bash)")
            out.host_path(path)
            elves.append(path)
        for link in ("python3", "python", f"python{ver}"):  # for a PATH without /usr/local/bin (ch-run keeps the host's)
            out.symlink(f"usr/bin/{link}", f"/usr/local/bin/python{ver}")

        # Shared libraries: those of the prefix (libpython) go where the loader looks without the host's RUNPATH.
        libs = _ldd(elves)
        for name in _WHEEL_SYSTEM_LIBS:
            lib = _system_lib(name)
            if lib:
                libs.add(lib)
                libs |= _ldd([lib])
        for lib in sorted(libs):
            if lib.startswith(prefix.rstrip("/") + "/"):
                out.file(f"usr/lib/x86_64-linux-gnu/{os.path.basename(lib)}", lib)
            else:
                out.host_path(lib)
    finally:
        out.close()
    return dest


def ensure_image(name: str = IMAGE_NAME, *, rebuild: bool = False) -> str:
    """The test image, imported from a fresh rootfs tarball unless ``podman image exists`` finds it."""
    problem = podman_usable()
    if problem:
        raise ImageError(problem)
    with _locked("image"):
        if not rebuild and _image_current(name):
            return name
        old = _image_id(name) if image_exists(name) else None
        with tempfile.TemporaryDirectory(prefix="runyard-rootfs-", dir=_mkcache()) as tmp:
            tar = rootfs_tar(Path(tmp) / "rootfs.tar")
            _run(["podman", "import", "--change", f"ENV=PATH={IMAGE_PATH}", "--change", "WORKDIR=/",
                  "--change", f"LABEL={_LABEL}={_fingerprint()}",
                  str(tar), name])
        if old and old != _image_id(name):
            # The previous build, now untagged; kept if a container or another image still uses it.
            subprocess.run(["podman", "rmi", old], capture_output=True, check=False)
    _run(["podman", "run", "--rm", name, "python3", "-c", "import json, ssl, sqlite3, ctypes"], timeout=120)
    return name


# --- the wheels ---------------------------------------------------------------------------------------------

def wheelhouse_dir(*, download: bool = True) -> Path:
    """The wheels of :data:`WHEELS` (and their dependencies) for the host's Python, downloaded once per list."""
    d = _mkcache() / f"wheels-py{PY_VERSION}-{hashlib.sha256(' '.join(WHEELS).encode()).hexdigest()[:8]}"
    stamp = d / ".complete"
    if stamp.exists() or not download:
        return d
    with _locked("wheels"):
        if stamp.exists():
            return d
        tmp = Path(tempfile.mkdtemp(prefix="wheels-", dir=d.parent))
        try:
            _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                  "--only-binary=:all:", "--dest", str(tmp), *WHEELS], timeout=900)
            tmp.chmod(0o755)
            for f in tmp.iterdir():
                f.chmod(0o644)
            (tmp / ".complete").write_text(" ".join(sorted(f.name for f in tmp.glob("*.whl"))) + "\n")
            if d.exists():
                shutil.rmtree(d)
            tmp.rename(d)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return d


# --- the Charliecloud directory image -----------------------------------------------------------------------

def charliecloud_dir(name: str = IMAGE_NAME) -> Path:
    """The podman test image exported as a directory for ``ch-run``, with the bind targets ch-run needs."""
    d = _mkcache() / "charliecloud" / name.rsplit("/", 1)[-1].replace(":", "-")
    stamp = d / ".runyard-exported"  # the image id it was exported from
    ensure_image(name)
    image_id = _image_id(name)
    with _locked("charliecloud"):
        if stamp.exists() and stamp.read_text().strip() == image_id:
            return d
        d.parent.mkdir(parents=True, exist_ok=True)
        d.parent.chmod(0o755)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=d.parent))
        ctr = f"runyard-export-{os.getpid()}"
        try:
            _run(["podman", "create", "--name", ctr, name, "true"])
            try:
                tar = tmp / "image.tar"
                _run(["podman", "export", "-o", str(tar), ctr])
            finally:
                subprocess.run(["podman", "rm", "-f", ctr], capture_output=True, check=False)
            root = tmp / "root"
            root.mkdir()
            _run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(tar)])
            tar.unlink()
            for mp in CHARLIECLOUD_MOUNT_POINTS:
                (root / mp).mkdir(parents=True, exist_ok=True)
            root.chmod(0o755)
            (root / ".runyard-exported").write_text(image_id + "\n")
            if d.exists():
                d.rename(tmp / "old")  # removed with tmp
            root.rename(d)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return d


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runyard.testing._images", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", action="store_true", help="the podman test image only")
    p.add_argument("--rebuild", action="store_true", help="import the image again even if it exists")
    p.add_argument("--rootfs", metavar="TAR", help="only write the rootfs tarball to TAR")
    args = p.parse_args(argv)
    try:
        if args.rootfs:
            t0 = time.monotonic()
            rootfs_tar(Path(args.rootfs))
            print(f"{args.rootfs}: {os.path.getsize(args.rootfs) / 1e6:.0f} MB in {time.monotonic() - t0:.1f} s")
            return 0
        t0 = time.monotonic()
        print(f"{ensure_image(rebuild=args.rebuild)} ({time.monotonic() - t0:.1f} s)")
        if not args.image:
            t0 = time.monotonic()
            print(f"wheels: {wheelhouse_dir()} ({time.monotonic() - t0:.1f} s)")
            if shutil.which("ch-run"):
                t0 = time.monotonic()
                print(f"charliecloud: {charliecloud_dir()} ({time.monotonic() - t0:.1f} s)")
    except ImageError as e:
        print(f"runyard test images: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
