"""A task's commands inside its image: ``image:`` and ``build:`` in ``runyard.yml``.

The runner stays outside the container. For a launch with a ``container`` it:

1. makes sure the image is on this machine (:meth:`TaskContainer.prepare`): a reference the
   runtime already has is used as is, one it lacks is pulled; a ``build:`` is built once per
   build key (``runyard.containers.build_key``: the Containerfile, the files it copies, the
   runtime and the build flags) under a lock, so that the runs of a sweep that start together
   build it once and the others wait, then reuse it. Runtimes that run image files
   (apptainer, singularity, enroot, charliecloud) get the OCI image converted by the backend's
   ``builder`` into ``image_dir``, once per image id. Builds, pulls and conversions run as
   steps of the task: their output is the run's log, and a failed build fails the run with its
   last lines;
2. starts each setup step and the command through the runtime
   (:meth:`TaskContainer.command`), with what it needs mounted and nothing else:

   - the run's working directory (the snapshot) at ``/runyard/work``, the working directory;
   - Runyard's own Python package, read-only, at ``/runyard/sdk`` (on ``PYTHONPATH``), so that
     code calling ``runyard.log`` works in an image that has Python but not Runyard;
   - the spool directory at ``/runyard/spool`` when the backend's jobs cannot reach the server;
   - the host's network, so the SDK inside reaches the server at the address it was given;
   - the GPUs the run holds.

   The run's variables go in by name (never their values on a command line, which any
   account can read); host paths are translated;
3. records the image it ran (reference, id, build key, runtime, and the host it was built on)
   as the run's ``runyard.image*`` tags, which ``runyard diff`` compares and ``runyard rerun``
   pins, and removes what a killed runtime process could leave (a stopped container).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runyard import config
from runyard.containers import (
    EXECUTABLES,
    FILE_RUNTIMES,
    BuildPlan,
    BuildSpec,
    ContainerCommand,
    Mount,
    build_key,
    build_plan,
    built_image_ref,
    cleanup_argv,
    container_name,
    containerfile_text,
    gpu_env,
    image_exists_argv,
    inspect_argv,
    is_path_image,
    parse_environment_file,
    parse_inspect,
    process_env,
    run_argv,
)
from runyard.records.compute import RunLaunch, TaskSlot

__all__ = ["GUEST_SDK", "GUEST_SPOOL", "GUEST_WORK", "ImageStepFailed", "TaskContainer", "describe_tags", "home_key", "owner_key"]

GUEST_WORK = "/runyard/work"
GUEST_SDK = "/runyard/sdk"
GUEST_SPOOL = "/runyard/spool"
_HOST = socket.gethostname()

# The job's variables that make sense inside: the run's own (launch.env, the distributed plan's),
# Runyard's, and a few that describe the task rather than the host.
_INSIDE_NAMES = ("PYTHONUNBUFFERED", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "TZ", "LANG")
_INSIDE_PREFIXES = ("RUNYARD_", "LC_")
# Host paths: meaningless inside (or replaced by the guest paths above).
_HOST_ONLY = ("RUNYARD_LOCAL_HOME", "RUNYARD_HOME", "RUNYARD_DATABASE_URL", "RUNYARD_SPOOL_DIR", "RUNYARD_BLOB_CACHE")


class ImageStepFailed(Exception):
    """A build, pull or conversion step failed (``rc``), or the image cannot be had (``rc`` None)."""

    def __init__(self, what: str, rc: int | None, message: str = "") -> None:
        super().__init__(message or what)
        self.what = what
        self.rc = rc
        self.message = message


@dataclass
class _Prepared:
    image: str  # what the runtime runs: a reference, an id or a path
    tags: dict[str, str] = field(default_factory=dict)


class TaskContainer:
    """How one task's processes run in its image.

    Args:
        launch: the run's launch; ``launch.container`` holds the image and the backend's settings.
        slot: the task (a distributed run's role may have an image of its own).
        gpus: the GPU indices the task holds (``CUDA_VISIBLE_DEVICES``), or None.
        spool: the spool directory, when the task writes there instead of calling the server.
        task_env_names: the task's own variables beyond the launch's (a distributed plan's).
    """

    def __init__(self, launch: RunLaunch, slot: TaskSlot, *, gpus: Sequence[str] | None = None,
                 spool: Path | None = None, task_env_names: Collection[str] = ()) -> None:
        c = dict(launch.container or {})
        self.launch = launch
        self.slot = slot
        self.runtime = str(c.get("runtime") or "podman")
        self.executable = str(c.get("command") or EXECUTABLES.get(self.runtime, self.runtime))
        self.builder = str(c.get("builder") or "podman")
        self.options = tuple(str(o) for o in c.get("options") or ())
        self.build_options = tuple(str(o) for o in c.get("build_options") or ())
        own = (c.get("roles") or {}).get(slot.role)  # a distributed run's role with an image of its own
        self.ref: str | None = own or c.get("image")
        self.build = BuildSpec.from_dict(c["build"]) if c.get("build") and not own else None
        self.own_image = bool(own)
        self.image_dir = Path(c.get("image_dir") or config.home() / "images").expanduser()
        self.gpus = tuple(gpus) if gpus else None
        self.spool = spool
        self.task_env_names = frozenset(task_env_names)  # the task's own (a distributed plan's RANK, MASTER_ADDR, ...)
        self._n = 0
        self._names: list[str] = []
        self._pidfile: Path | None = None
        # Variables the runtime's own process needs beyond the task's (rootless podman as a pool
        # account: its XDG_RUNTIME_DIR); they go through ``env`` (``_wrap``), as the task may run through sudo.
        self.runtime_env: dict[str, str] = {}
        self.prepared: _Prepared | None = None

    # ------------------------------------------------------------------ prepare
    def prepare(self, rundir: Path, step: Callable[[list[str], str], int],
                capture: Callable[[list[str]], tuple[int, str]], note: Callable[[str], None],
                stopped: Callable[[], bool] = lambda: False, lock_dir: Path | None = None) -> dict[str, str]:
        """Make the image ready on this machine; returns the tags that record it.

        The tags are ``runyard.image*``; a task of a distributed run's role that names an image of its
        own records it as ``runyard.image.<role>*`` (the run's other tasks record the top-level one).

        Args:
            rundir: the task's working directory (the snapshot: a build's context).
            step: runs a logged step ``(argv, what) -> exit code`` (stoppable, as the task).
            capture: runs a short command and returns its exit code and output (not logged).
            note: writes a line of the run's log.
            stopped: whether the task was stopped (ends a wait for another run's build).
            lock_dir: where build locks go (default: ``RUNYARD_HOME/locks``).

        Raises:
            ImageStepFailed: a step failed, or the image is not here and cannot be had.
        """
        tags = self._prepare(rundir, step, capture, note, stopped, lock_dir)
        if not self.own_image:
            return tags
        prefix = f"runyard.image.{self.slot.role}"
        return {prefix + key[len("runyard.image"):]: value for key, value in tags.items()}

    def _prepare(self, rundir: Path, step: Callable[[list[str], str], int],
                 capture: Callable[[list[str]], tuple[int, str]], note: Callable[[str], None],
                 stopped: Callable[[], bool], lock_dir: Path | None) -> dict[str, str]:
        """:meth:`prepare`, with the tags under ``runyard.image``."""
        locks = Path(lock_dir) if lock_dir is not None else config.home() / "locks"
        tags: dict[str, str] = {"runyard.image.runtime": self.runtime}
        file_runtime = self.runtime in FILE_RUNTIMES
        ref = self.ref
        if self.build is None and ref is not None and is_path_image(ref):
            path = (rundir / ref).resolve() if ref.startswith("./") else Path(ref)
            if not path.exists():
                raise ImageStepFailed("image", None, f"the image {ref} does not exist on {_HOST} "
                                      f"(looked for {path}). Put it there, or name an image by reference")
            tags.update({"runyard.image": ref, "runyard.image.id": _fingerprint(path)})
            self.prepared = _Prepared(str(path), tags)
            return tags
        oci = self.builder if file_runtime else self.runtime  # who builds, pulls and keeps OCI images
        oci_exe = self.builder if file_runtime else self.executable
        try:
            if self.build is not None:
                text = containerfile_text(self.build, ref, rundir)
                context = (rundir / self.build.context).resolve() if self.build.containerfile else rundir
            elif file_runtime:  # an OCI reference for a runtime of image files: converted by a build of just FROM
                text, context = f"FROM {ref}\n", rundir
            else:
                text, context = "", rundir
        except ValueError as e:
            raise ImageStepFailed("image build", None, str(e)) from None
        if not text:  # a reference podman or docker runs as it is: pulled when it is not here
            assert ref is not None
            if not self._exists(capture, oci, oci_exe, ref):
                if _local_only(ref):
                    raise ImageStepFailed("image", None, f"the image {ref} is not on {_HOST}, and it cannot be pulled "
                                          f"(it names no registry). Build it there ({oci} build -t {ref} ...), "
                                          "or describe it with build: in runyard.yml")
                with _locked(locks, "pull-" + hashlib.sha256(ref.encode()).hexdigest()[:16], stopped):
                    if not self._exists(capture, oci, oci_exe, ref):
                        note(f"[runyard] pulling image {ref} on {_HOST}")
                        if step(self._wrap(_with_executable([oci, "pull", ref], oci, oci_exe)), "image pull") != 0:
                            raise ImageStepFailed("image pull", 1)
            tags["runyard.image"] = ref
            tags.update(self._ids(capture, oci, oci_exe, ref))
            self.prepared = _Prepared(ref, tags)
            return tags
        key = build_key(text, context, runtime=f"{self.runtime}/{oci}", build_options=self.build_options)
        tag = built_image_ref(key)
        image_dir = self.image_dir if file_runtime else None
        with _containerfile(text) as containerfile:
            plan = build_plan(self.runtime, containerfile=containerfile, context=context, tag=tag, image_dir=image_dir,
                              builder=self.builder, build_options=self.build_options,
                              bind_targets=(GUEST_WORK, f"{GUEST_SDK}/runyard", GUEST_SPOOL))
            if self.build is not None:
                tags["runyard.image.build"] = key
                if ref:
                    tags["runyard.image.base"] = ref
            with _locked(locks, f"build-{key}-{self.runtime}", stopped):
                if self._built(plan, capture, oci, oci_exe):
                    note(f"[runyard] image {plan.image} was built before on {_HOST}: reused")
                else:
                    what = "building image" if self.build is not None else f"converting image {ref} for {self.runtime} as"
                    note(f"[runyard] {what} {plan.image} on {_HOST} (build key {key}); its log follows")
                    t0 = time.monotonic()
                    self._run_plan(plan, step, capture, oci, oci_exe)
                    took = time.monotonic() - t0
                    note(f"[runyard] built image {plan.image} in {took:.1f}s")
                    tags["runyard.image.built_on"] = _HOST
                    tags["runyard.image.build_s"] = f"{took:.1f}"
        tags["runyard.image"] = ref if self.build is None and ref else tag
        tags.update(self._ids(capture, oci, oci_exe, tag))
        if file_runtime:
            tags["runyard.image.file"] = plan.image
        self.prepared = _Prepared(plan.image, tags)
        return tags

    def _built(self, plan: BuildPlan, capture: Callable[[list[str]], tuple[int, str]], oci: str, oci_exe: str) -> bool:
        if plan.partial is not None:  # a file runtime's image: the file (or directory) is there once finished
            return Path(plan.image).exists()
        return self._exists(capture, oci, oci_exe, plan.image)

    def _run_plan(self, plan: BuildPlan, step: Callable[[list[str], str], int],
                  capture: Callable[[list[str]], tuple[int, str]], oci: str, oci_exe: str) -> None:
        """Run ``plan``'s steps, then move its partial image into place (runyard.containers.BuildPlan)."""
        leftovers = [p for p in (plan.partial, *plan.temporary) if p]
        for path in leftovers:
            _remove(Path(path))
        if plan.partial is not None:
            Path(plan.partial).parent.mkdir(parents=True, exist_ok=True)
        try:
            for argv in plan.steps:
                argv = _with_executable(list(argv), oci, oci_exe)
                argv = _with_executable(argv, self.runtime, self.executable)
                rc = step(self._wrap(argv), "image build")
                if rc != 0:
                    raise ImageStepFailed("image build", rc)
            if plan.partial is not None:
                os.rename(plan.partial, plan.image)
        finally:
            for argv in plan.cleanup:
                with contextlib.suppress(Exception):
                    capture(self._wrap(_with_executable(list(argv), oci, oci_exe)))
            for path in plan.temporary:
                _remove(Path(path))
            if plan.partial is not None:
                _remove(Path(plan.partial))

    def _wrap(self, argv: list[str]) -> list[str]:
        """``argv`` with :attr:`runtime_env` set in front of it (``/usr/bin/env NAME=VALUE ...``)."""
        if not self.runtime_env:
            return argv
        return ["/usr/bin/env", *(f"{k}={v}" for k, v in sorted(self.runtime_env.items())), *argv]

    def _exists(self, capture: Callable[[list[str]], tuple[int, str]], runtime: str, tool: str, ref: str) -> bool:
        argv = image_exists_argv(runtime, ref, executable=tool)
        if argv is None:
            return Path(ref).exists()
        rc, _ = capture(self._wrap(argv))
        return rc == 0

    def _ids(self, capture: Callable[[list[str]], tuple[int, str]], runtime: str, tool: str, ref: str) -> dict[str, str]:
        """``runyard.image.id`` (and ``.digest``, the registry's, when the image came from one)."""
        argv = inspect_argv(runtime, ref, executable=tool)
        if argv is None:
            return {}
        rc, out = capture(self._wrap(argv))
        try:
            info = parse_inspect(runtime, out) if rc == 0 else {}
        except ValueError:
            info = {}
        tags = {}
        if info.get("id"):
            tags["runyard.image.id"] = str(info["id"])
        if info.get("digest"):
            tags["runyard.image.digest"] = str(info["digest"])
        return tags

    # ------------------------------------------------------------------ run
    def command(self, command: str | Sequence[str], env: Mapping[str, str], plain: Sequence[str] | None,
                rundir: Path) -> tuple[list[str], dict[str, str]]:
        """The runtime's argv that runs ``command`` in the image, and the environment to start it with.

        Args:
            command: the shell command (run by ``/bin/sh -c`` inside), or an argv.
            env: the task's environment as the runner made it.
            plain: ``command`` as an argv when it needs no shell.
            rundir: the task's working directory on this machine.
        """
        if self.prepared is None:
            raise RuntimeError("prepare() first")
        self._n += 1
        # Named by this Runyard home and server too: runs of two servers (or two tests) on one host have the
        # same ids, and podman's --replace would stop the other's container of the same name.
        name = container_name("runyard", owner_key(self.launch.server_url), self.launch.run_id, self.launch.attempt,
                              self.slot.label, self._n)
        self._names.append(name)
        inside = self.inside_env(env)
        sdk = self._sdk_source()
        mounts = [Mount(str(rundir), GUEST_WORK), Mount(str(sdk), f"{GUEST_SDK}/runyard",
                                                        read_only=self.runtime != "charliecloud")]
        if self.spool is not None:
            mounts.append(Mount(str(self.spool), GUEST_SPOOL))
        # mounts: in runyard.yml: the backend's path at its place in the working directory (the runner made
        # an empty directory there to bind onto, runyard.runner._outputs.make_mounts).
        mounts += [Mount(str(source), f"{GUEST_WORK}/{key}") for key, source in
                   (self.launch.task_io.get("mounts") or {}).items()]
        if isinstance(command, str):
            argv = tuple(plain) if plain is not None else ("/bin/sh", "-c", command)
            init = _catatonit() if plain is None and self.runtime == "podman" else None
            if init is not None:
                # podman's --init hands a signal to its child only: the shell, which waits for its command
                # and never passes SIGINT on. A second catatonit with -g hands it to the shell's whole
                # process group, so the program itself sees it (KeyboardInterrupt in Python).
                mounts.append(Mount(init, _GROUP_INIT, read_only=True))
                argv = (_GROUP_INIT, "-g", "--", *argv)
        else:
            argv = tuple(command)
        spec = ContainerCommand(image=self.prepared.image, argv=argv, workdir=GUEST_WORK, mounts=tuple(mounts),
                                env_names=tuple(sorted(inside)), gpus=self.gpus, name=name, extra_args=self.options)
        out = run_argv(self.runtime, spec, executable=self.executable)
        if self.runtime in ("podman", "docker") and out[1:2] == ["run"]:
            out[2:2] = ["--label", f"runyard.home={home_key()}"]  # the local agent removes what a killed runner left
        if self.runtime == "podman" and out[1:2] == ["run"]:
            # The container's processes are conmon's children, not podman's: system metrics follow conmon.
            self._pidfile = rundir / f".runyard-conmon-{self._n}.pid"
            out[2:2] = ["--conmon-pidfile", str(self._pidfile)]
            if _podman_init():  # a tiny init as PID 1 hands SIGTERM/SIGINT on (PID 1 itself ignores them)
                out[2:2] = ["--init"]
            if self.runtime_env and not os.path.exists("/dev/mqueue"):
                # Rootless podman cannot share a host IPC namespace without /dev/mqueue ("statfs
                # /dev/mqueue"): a private one, with a /dev/shm as large as --ipc host would give.
                i = out.index("--ipc")
                out[i:i + 2] = ["--shm-size", "1g"]
        image_env = None
        if self.runtime == "charliecloud":
            with contextlib.suppress(OSError, UnicodeDecodeError):
                image_env = parse_environment_file((Path(self.prepared.image) / "ch" / "environment").read_text())
        start = process_env(self.runtime, spec, {**env, **inside}, image_env=image_env)
        # Values that differ from the task's own (guest paths, renumbered GPUs; never secrets) also go
        # through ``env``: a process started through sudo takes its environment from the task's file.
        changed = [f"{k}={v}" for k, v in sorted({**inside, **self.runtime_env}.items()) if env.get(k) != v]
        if changed:
            out = ["/usr/bin/env", *changed, *out]
        return out, start

    def _sdk_source(self) -> Path:
        """Runyard's package as the container gets it: the installed one (bound read-only), or for
        Charliecloud, which binds read-write only, a copy of it in ``image_dir`` (made once per version)."""
        sdk = _sdk_dir()
        if self.runtime != "charliecloud":
            return sdk
        h = hashlib.sha256(str(sdk).encode())
        files = sorted(p for p in sdk.rglob("*.py") if "static" not in p.relative_to(sdk).parts)
        for p in files:
            st = p.stat()
            h.update(f"{p.relative_to(sdk)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        target = self.image_dir / f"sdk-{h.hexdigest()[:16]}" / "runyard"
        if not target.exists():
            tmp = target.with_name(f"runyard.tmp.{os.getpid()}")
            _remove(tmp)
            for p in files:
                dest = tmp / p.relative_to(sdk)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, dest)
            try:
                os.rename(tmp, target)
            except OSError:  # another runner made it first
                _remove(tmp)
        return target

    def sample_pid(self) -> int | None:
        """The process whose tree holds the container's processes, when it is not the runtime client's
        (podman's conmon); ``None``: sample the started process's tree (the other runtimes exec into it)."""
        path = self._pidfile
        if path is None:
            return None
        try:
            return int(path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def inside_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The variables the container gets: the run's own, Runyard's, the task's; host paths and GPU
        numbers translated."""
        own = set(self.launch.env) | self.task_env_names
        out = {k: v for k, v in env.items()
               if (k in own or k in _INSIDE_NAMES or k.startswith(_INSIDE_PREFIXES)) and k not in _HOST_ONLY}
        user_path = self.launch.env.get("PYTHONPATH")
        out["PYTHONPATH"] = GUEST_SDK + (os.pathsep + user_path if user_path else "")
        if self.spool is not None:
            out["RUNYARD_SPOOL_DIR"] = GUEST_SPOOL
        # The SDK's own directory (its spool while the server is away) stays with the run's files on
        # the host: the image's file system may be read-only, and a container's is thrown away.
        out["RUNYARD_HOME"] = f"{GUEST_WORK}/.runyard"
        if self.gpus:
            out.update(gpu_env(self.runtime, self.gpus))
        return out

    def cleanup(self, capture: Callable[[list[str]], tuple[int, str]]) -> None:
        """Remove the containers a killed runtime process may have left behind (nothing where none can be)."""
        if self._pidfile is not None:
            with contextlib.suppress(OSError):
                self._pidfile.unlink()
        for name in self._names:
            argv = cleanup_argv(self.runtime, name, executable=self.executable)
            if argv is not None:
                with contextlib.suppress(Exception):
                    capture(self._wrap(argv))


def _with_executable(argv: list[str], runtime: str, executable: str) -> list[str]:
    """``argv`` with the runtime's own name replaced by the configured executable."""
    if argv and argv[0] == runtime and executable != runtime:
        return [executable, *argv[1:]]
    return list(argv)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _local_only(ref: str) -> bool:
    """A reference no registry serves: ``localhost/...`` or an image id."""
    return ref.startswith("localhost/") or ref.startswith("sha256:") or bool(re.fullmatch(r"[0-9a-f]{12,64}", ref))


_GROUP_INIT = "/run/runyard-init"


def _catatonit() -> str | None:
    """The host's catatonit (a static binary, made to be bound into containers), or None."""
    for path in (shutil.which("catatonit"), "/usr/libexec/podman/catatonit", "/usr/lib/podman/catatonit"):
        if path and os.path.exists(path):
            return os.path.realpath(path)
    return None


def home_key() -> str:
    """12 hex digits naming this Runyard home (``RUNYARD_HOME``): the ``runyard.home`` label of its containers."""
    return hashlib.sha256(str(config.home().resolve()).encode()).hexdigest()[:12]


def owner_key(server_url: str) -> str:
    """12 hex digits naming this home and the server a run belongs to, in its containers' names."""
    return hashlib.sha256(f"{config.home().resolve()}|{server_url}".encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def _podman_init() -> bool:
    """Whether podman has its init (catatonit) here, for ``--init``."""
    return bool(shutil.which("catatonit")) or any(
        Path(p).exists() for p in ("/usr/libexec/podman/catatonit", "/usr/lib/podman/catatonit"))


def _sdk_dir() -> Path:
    import runyard

    return Path(runyard.__file__).resolve().parent


def _fingerprint(path: Path) -> str:
    """A file image's sha256; a directory image's listing hash (names, sizes, modes, times)."""
    h = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return "sha256:" + h.hexdigest()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            with contextlib.suppress(OSError):
                st = os.lstat(p)
                h.update(f"{os.path.relpath(p, path)}\0{st.st_size}\0{st.st_mode}\0{st.st_mtime_ns}\n".encode())
    return "listing:" + h.hexdigest()


@contextlib.contextmanager
def _locked(directory: Path, name: str, stopped: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """An exclusive lock between the runners of this machine (a build another run is doing is waited for).

    Raises:
        ImageStepFailed: the task was stopped while it waited.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stopped():
                    raise ImageStepFailed("image", None, "stopped while waiting for another run's image build") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _containerfile(text: str) -> Iterator[Path]:
    """The Containerfile in a directory of its own that any account may read (a build may run as a pool account)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="runyard-build-"))
    try:
        os.chmod(d, 0o755)
        path = d / "Containerfile"
        path.write_text(text)
        os.chmod(path, 0o644)
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            d.rmdir()


def describe_tags(tags: Mapping[str, str]) -> str:
    """One line for a run's image tags, e.g. ``localhost/runyard-build:ab12… (sha256:9f…, podman)``."""
    ref = tags.get("runyard.image")
    if not ref:
        return ""
    extra = [str(tags[k])[:19] for k in ("runyard.image.id", "runyard.image.runtime") if tags.get(k)]
    return f"{ref} ({', '.join(extra)})" if extra else str(ref)

