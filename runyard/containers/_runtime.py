"""Container runtimes' command lines: run a task's command in an image, build an image, check, clean up.

Every function here is pure: it returns argv lists (exec'd directly, so nothing is shell-quoted)
and environments; the backend or the task runner runs them. The task runner stays outside the
container and starts the command through the runtime's CLI.

What each runtime gets, and why (the same rules everywhere: the host's home directories stay
out, the host network is shared so distributed tasks meet at MASTER_ADDR & co., variables pass
by name only, so values such as the run's API token never show in ``ps``):

podman, docker
    ``<rt> run --rm --name N --network host --ipc host -i --workdir W -v SRC:DST[:ro] --env NAME
    [GPUs] [container_options] IMAGE ARGV``. ``--env NAME`` without a value takes the value from the
    runtime process's environment. ``--ipc host`` gives PyTorch's DataLoader workers the host's
    /dev/shm (the default is 64 MB). Podman adds ``--replace`` (a leftover container of the same
    name is removed), ``--security-opt label=disable`` (SELinux would deny bind mounts; a no-op
    elsewhere) and, for images built here (``localhost/``) or given by id, ``--pull never``. GPUs:
    CDI ``--device nvidia.com/gpu=<i>`` for podman, ``--gpus "device=<i>,..."`` for docker. No
    ``--init``: it is not available everywhere. PID 1 in the container ignores SIGTERM unless it
    handles it, so stopping goes through :func:`cleanup_argv` (kill at once) after a grace period.
apptainer, singularity
    ``apptainer exec --contain --cleanenv --no-home --pwd W --bind SRC:DST[:ro] [--nv] IMAGE ARGV``.
    ``--contain`` keeps the host's home, /tmp and working directory out; ``--cleanenv`` drops the
    host's environment, and the passed names come back through ``APPTAINERENV_<NAME>``
    (``SINGULARITYENV_`` for singularity) in the runtime process's environment, which
    :func:`process_env` builds. No ``--pid``: the runner's signals reach the command as without a
    container. An OCI reference is run as ``docker://REF`` (Apptainer pulls and caches it).
enroot
    ``enroot start --mount SRC:DST --env NAME -- IMAGE sh -c 'cd "$1" && shift && exec "$@"' ... W ARGV``:
    enroot has no working-directory flag, so a tiny ``sh`` changes into W first. The root file system
    is read-only (no ``--rw``; add it through container_options). ``ENROOT_MOUNT_HOME=no`` in the
    process environment keeps the home directory out. GPUs: ``NVIDIA_VISIBLE_DEVICES`` for enroot's
    NVIDIA hook (:func:`gpu_env`).
charliecloud
    ``ch-run --no-home --private-tmp --cd W -b SRC:DST IMAGE -- ARGV``. ``--private-tmp`` gives the
    container its own /tmp (a tmpfs) instead of the host's, which ch-run shares by default. ch-run passes its own environment
    through unchanged, so :func:`process_env` gives it exactly the passed names, the image's
    variables, ``USER`` (ch-run refuses to start without it), a PATH, and HOME (the working
    directory, as the host's home is not there). ``--no-home`` keeps Charliecloud before 0.31 from
    mounting the home directory; from 0.31 on that is the default, and ch-run prints "warning:
    deprecated --no-home is now default; ignoring" on the task's stderr (a line in its log, kept
    because the flag protects older installations). Bind targets must exist in the image
    (:func:`build_plan` creates them for images built here); ch-run cannot bind read-only (0.31
    reads ``SRC:DST:ro`` as a target named ``DST:ro``), so a read-only mount is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from runyard.containers._image import check_image, is_image_id, is_path_image

__all__ = ["FILE_RUNTIMES", "OCI_RUNTIMES", "RUNTIMES", "BuildPlan", "ContainerCommand", "Mount", "build_argvs",
           "build_plan", "check_argvs", "check_runtime", "cleanup_argv", "container_name", "gpu_env",
           "image_exists_argv", "image_file_stem", "inspect_argv", "parse_environment_file", "parse_inspect",
           "process_env", "pull_plan", "pulled_image_stem", "run_argv"]

RUNTIMES = ("podman", "docker", "apptainer", "singularity", "enroot", "charliecloud")
OCI_RUNTIMES = ("podman", "docker")
FILE_RUNTIMES = ("apptainer", "singularity", "enroot", "charliecloud")

EXECUTABLES = {"podman": "podman", "docker": "docker", "apptainer": "apptainer", "singularity": "singularity",
               "enroot": "enroot", "charliecloud": "ch-run"}
"""The command each runtime is called by (``executable=`` replaces it, e.g. with an absolute path)."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_GPU_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")  # an index, or a UUID such as GPU-1a2b...
_ENTER_WORKDIR = 'cd "$1" && shift && exec "$@"'


def check_runtime(runtime: str) -> str:
    """``runtime`` when it is one of :data:`RUNTIMES`.

    Raises:
        ValueError: naming the known runtimes.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown container runtime {runtime!r}. Known runtimes: {', '.join(RUNTIMES)}.")
    return runtime


def _check_container_path(value: str, what: str) -> None:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"{what} must be an absolute path, but got {value!r:.80}. Write it from /.")
    if any(ch in value for ch in ":,\x00\n\r"):
        raise ValueError(f"{what} must not hold ':', ',', NUL or a line break (runtimes split bind mounts on ':' "
                         f"and ','), but got {value!r:.80}. Mount a path without them, e.g. through a symbolic link.")


@dataclasses.dataclass(frozen=True)
class Mount:
    """A host directory or file bound into the container at ``target``.

    Raises:
        ValueError: a path that is not absolute, or holds ``:`` or ``,`` (separators of every
            runtime's bind syntax), NUL or a line break.
    """

    source: str
    target: str
    read_only: bool = False

    def __post_init__(self) -> None:
        _check_container_path(self.source, "a mount's source")
        _check_container_path(self.target, "a mount's target")


@dataclasses.dataclass(frozen=True)
class ContainerCommand:
    """One task's command in a container, as every runtime's :func:`run_argv` takes it.

    Attributes:
        image: a reference, an image id, or a path (:func:`check_image`).
        argv: the command inside, e.g. ``("bash", "-c", "python train.py --lr 0.1")``.
        workdir: the working directory inside the container (absolute).
        mounts: host paths bound in.
        env_names: variables passed BY NAME from the runtime process's environment
            (:func:`process_env`); their values never appear in argv.
        gpus: device indices (or UUIDs) for the container; None: no GPU.
        name: the container's name where the runtime has one (podman, docker), to clean up by.
        extra_args: the backend's ``container_options``, verbatim, after the runtime's own flags.

    Raises:
        ValueError: on construction, for an invalid image, an empty argv, a relative workdir, a bad
            variable or container name, a GPU id with a comma, or NUL in any argument.
    """

    image: str
    argv: tuple[str, ...]
    workdir: str
    mounts: tuple[Mount, ...] = ()
    env_names: tuple[str, ...] = ()
    gpus: tuple[str, ...] | None = None
    name: str | None = None
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in ("argv", "mounts", "env_names", "extra_args"):
            value = getattr(self, field)
            if not isinstance(value, tuple):
                object.__setattr__(self, field, tuple(value))
        if self.gpus is not None and not isinstance(self.gpus, tuple):
            object.__setattr__(self, "gpus", tuple(str(g) for g in self.gpus))
        object.__setattr__(self, "image", check_image(self.image))
        if not self.argv:
            raise ValueError("a container command needs an argv, but got none. Pass e.g. ('bash', '-c', CMD).")
        for arg in (*self.argv, *self.extra_args):
            if not isinstance(arg, str) or "\x00" in arg:
                raise ValueError(f"container arguments must be strings without NUL, but got {arg!r:.80}.")
        if not isinstance(self.workdir, str) or not self.workdir.startswith("/") or "\x00" in self.workdir:
            raise ValueError(f"workdir must be an absolute path inside the container, but got {self.workdir!r:.80}.")
        for name in self.env_names:
            if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
                raise ValueError(f"env_names must be variable names (letters, digits, '_', not starting with a "
                                 f"digit), but got {name!r:.80}. Pass the name only; its value comes from the "
                                 "runtime process's environment.")
        if len(set(self.env_names)) != len(self.env_names):
            raise ValueError(f"env_names lists a name twice: {', '.join(self.env_names)}. List each once.")
        for gpu in self.gpus or ():
            if not _GPU_RE.match(gpu):
                raise ValueError(f"gpus must be device indices or UUIDs, but got {gpu!r:.80}.")
        if self.name is not None and not _CONTAINER_NAME_RE.match(self.name):
            raise ValueError(f"a container name must be letters, digits, '_', '.' or '-' (at most 128, starting "
                             f"with a letter or digit), but got {self.name!r:.80}. Use container_name().")
        for m in self.mounts:
            if not isinstance(m, Mount):
                raise ValueError(f"mounts must be Mount values, but got {m!r:.80}.")


def container_name(*parts: object) -> str:
    """A container name from parts such as ``("runyard", run_id, attempt, role, rank)``: joined by
    ``-``, characters podman and docker refuse replaced by ``_``, at most 128 characters."""
    text = "-".join(str(p) for p in parts if p is not None and str(p) != "")
    text = re.sub(r"[^a-zA-Z0-9_.-]", "_", text)
    if not text or not text[0].isalnum():
        text = "c" + text
    return text[:128]


def _image_for(runtime: str, image: str) -> str:
    """The image argument a runtime understands, or ValueError when it cannot run that kind of image."""
    if runtime in OCI_RUNTIMES:
        if is_path_image(image):
            raise ValueError(f"{runtime} runs images by reference, but got the path {image!r}. Name the image by "
                             f"reference (e.g. python:3.11-slim), or use a runtime that runs image files "
                             f"({', '.join(FILE_RUNTIMES)}).")
        return image
    if is_path_image(image):
        return image
    if is_image_id(image) or image.startswith("localhost/"):
        raise ValueError(f"{runtime} cannot read podman's or docker's local image store, but got {image!r}. Build "
                         f"the image into the backend's image_dir (build_plan) and run the file it writes.")
    # A registry reference: apptainer pulls it itself; for enroot and charliecloud, pull_plan makes a file.
    if runtime in ("apptainer", "singularity"):
        return f"docker://{image}"  # pulled from the registry and cached as a SIF by the runtime
    if runtime == "enroot" and any(ch in image for ch in "/:@"):
        raise ValueError(f"enroot starts an image file or a container created by `enroot create`, but got the "
                         f"reference {image!r}. Import it into the backend's image_dir first (pull_plan) and run "
                         "the .sqsh file it writes.")
    return image  # enroot: a container's name; charliecloud: an image in ch-image's storage


def run_argv(runtime: str, cmd: ContainerCommand, *, executable: str | None = None) -> list[str]:
    """The command line that runs ``cmd`` with ``runtime`` (see the module docstring for each runtime).

    Args:
        runtime: one of :data:`RUNTIMES`.
        cmd: the command, image, working directory, mounts and variable names.
        executable: the runtime's program (e.g. an absolute path); default :data:`EXECUTABLES`.

    Raises:
        ValueError: an unknown runtime, an image kind the runtime cannot run, or a read-only
            mount for Charliecloud (ch-run binds read-write only).
    """
    check_runtime(runtime)
    exe = executable or EXECUTABLES[runtime]
    image = _image_for(runtime, cmd.image)
    gpus = cmd.gpus or ()
    out: list[str] = [exe]
    if runtime in OCI_RUNTIMES:
        out += ["run", "--rm"]
        if cmd.name is not None:
            out += ["--name", cmd.name]
            if runtime == "podman":
                out.append("--replace")
        out += ["--network", "host", "--ipc", "host"]
        if image.startswith("localhost/") or is_image_id(image):
            out += ["--pull", "never"]
        if runtime == "podman":
            out += ["--security-opt", "label=disable"]
        out += ["-i", "--workdir", cmd.workdir]
        for m in cmd.mounts:
            out += ["-v", f"{m.source}:{m.target}" + (":ro" if m.read_only else "")]
        for name in cmd.env_names:
            out += ["--env", name]
        if gpus and runtime == "podman":
            for gpu in gpus:
                out += ["--device", f"nvidia.com/gpu={gpu}"]
        elif gpus:
            out += ["--gpus", f'"device={",".join(gpus)}"']  # quoted: docker reads the value as CSV
        out += [*cmd.extra_args, image, *cmd.argv]
        return out
    if runtime in ("apptainer", "singularity"):
        out += ["exec", "--contain", "--cleanenv", "--no-home", "--pwd", cmd.workdir]
        for m in cmd.mounts:
            out += ["--bind", f"{m.source}:{m.target}" + (":ro" if m.read_only else "")]
        if gpus:
            out.append("--nv")
        out += [*cmd.extra_args, image, *cmd.argv]
        return out
    if runtime == "enroot":
        out.append("start")
        for m in cmd.mounts:
            out += ["--mount", f"{m.source}:{m.target}" + (":none:x-create=auto,rbind,ro" if m.read_only else "")]
        for name in cmd.env_names:
            out += ["--env", name]
        out += [*cmd.extra_args, "--", image, "sh", "-c", _ENTER_WORKDIR, "runyard-workdir", cmd.workdir, *cmd.argv]
        return out
    # charliecloud: --private-tmp keeps the host's /tmp out (ch-run shares it by default)
    out += ["--no-home", "--private-tmp", "--cd", cmd.workdir]
    for m in cmd.mounts:
        if m.read_only:
            raise ValueError(f"charliecloud binds read-write only (ch-run -b has no read-only form), but the mount "
                             f"of {m.source} at {m.target} is read-only. Mount it read-write, or use another runtime.")
        out += ["-b", f"{m.source}:{m.target}"]
    out += [*cmd.extra_args, image, "--", *cmd.argv]
    return out


def gpu_env(runtime: str, gpus: Sequence[str] | Sequence[int] | None) -> dict[str, str]:
    """Variables that select a task's GPUs: set them in the runtime process's environment and
    pass their names in ``env_names``, so the container (and enroot's NVIDIA hook) sees them.

    - podman, docker, enroot: only the chosen devices enter the container, renumbered from 0,
      so ``CUDA_VISIBLE_DEVICES`` counts from 0; enroot's hook chooses them by
      ``NVIDIA_VISIBLE_DEVICES`` (host indices).
    - apptainer, singularity (``--nv``) and charliecloud see every device under its host index:
      ``CUDA_VISIBLE_DEVICES`` names the host indices.
    - No GPUs (None or empty): ``NVIDIA_VISIBLE_DEVICES=void`` keeps NVIDIA's hooks from adding
      devices (CUDA images set ``all`` in their ENV) and ``CUDA_VISIBLE_DEVICES`` is empty.
    """
    check_runtime(runtime)
    chosen = [str(g) for g in gpus or ()]
    if not chosen:
        return {"NVIDIA_VISIBLE_DEVICES": "void", "CUDA_VISIBLE_DEVICES": ""}
    renumbered = ",".join(str(i) for i in range(len(chosen)))
    if runtime in OCI_RUNTIMES:
        return {"CUDA_VISIBLE_DEVICES": renumbered}
    if runtime == "enroot":
        return {"NVIDIA_VISIBLE_DEVICES": ",".join(chosen), "CUDA_VISIBLE_DEVICES": renumbered}
    return {"CUDA_VISIBLE_DEVICES": ",".join(chosen)}


def parse_environment_file(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (optionally single-quoted values), as Charliecloud's ``/ch/environment``
    and ``printenv`` write them; empty lines and lines without ``=`` or key are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key or not _ENV_NAME_RE.match(key):
            continue
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        out[key] = value
    return out


def process_env(runtime: str, cmd: ContainerCommand, environ: Mapping[str, str], *,
                image_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to start the runtime's process with, so the container gets ``cmd.env_names``.

    Args:
        runtime: one of :data:`RUNTIMES`.
        cmd: the command whose ``env_names`` pass in.
        environ: the runner's environment for the task (the values of the passed names, and what
            the runtime itself needs: PATH, HOME, XDG_RUNTIME_DIR for rootless podman, ...).
        image_env: charliecloud only: the image's own variables (:func:`parse_environment_file` of
            ``IMAGE/ch/environment``); ch-run has no other way to apply them.

    Returns:
        podman, docker, enroot: ``environ`` (``--env NAME`` picks the names from it), plus
        ``ENROOT_MOUNT_HOME=no`` for enroot. apptainer, singularity: ``environ`` without stray
        ``APPTAINERENV_``/``SINGULARITYENV_`` variables, plus ``<PREFIX>ENV_<NAME>`` for each name.
        charliecloud: only the image's variables, the passed names, ``USER``, and ``PATH`` and
        ``HOME`` (the working directory) unless the image or the names set them.
    """
    check_runtime(runtime)
    names = [n for n in cmd.env_names if n in environ]
    if runtime in OCI_RUNTIMES:
        return dict(environ)
    if runtime == "enroot":
        return {**environ, "ENROOT_MOUNT_HOME": "no"}
    if runtime in ("apptainer", "singularity"):
        out = {k: v for k, v in environ.items() if not k.startswith(("APPTAINERENV_", "SINGULARITYENV_"))}
        prefix = "APPTAINERENV_" if runtime == "apptainer" else "SINGULARITYENV_"
        out.update({f"{prefix}{n}": environ[n] for n in names})
        return out
    out = dict(image_env or {})
    out.setdefault("PATH", DEFAULT_PATH)
    out.update({n: environ[n] for n in names})
    out["USER"] = environ.get("USER") or environ.get("LOGNAME") or out.get("USER") or "runyard"
    out.setdefault("HOME", cmd.workdir)  # the host's home is not mounted; a writable one keeps tools' caches working
    return out


# --- images: exists, inspect, clean up, check ---------------------------------------------------


def image_exists_argv(runtime: str, image: str, *, executable: str | None = None) -> list[str] | None:
    """A command that exits 0 when ``image`` is present locally; None: check the path instead."""
    check_runtime(runtime)
    if runtime not in OCI_RUNTIMES or is_path_image(image):
        return None
    exe = executable or EXECUTABLES[runtime]
    if runtime == "podman":
        return [exe, "image", "exists", image]
    return [exe, "image", "inspect", "--format", "{{.Id}}", image]


# ``{{json .Id}}`` fails on podman 4.3 ("can't evaluate field Id in type interface {}"); the plain id is hex.
_INSPECT_FORMAT = "{{.Id}} {{json .RepoDigests}}"


def inspect_argv(runtime: str, image: str, *, executable: str | None = None) -> list[str] | None:
    """A command printing ``image``'s id and repository digests for :func:`parse_inspect`; None for file runtimes."""
    check_runtime(runtime)
    if runtime not in OCI_RUNTIMES or is_path_image(image):
        return None
    return [executable or EXECUTABLES[runtime], "image", "inspect", "--format", _INSPECT_FORMAT, image]


def parse_inspect(runtime: str, output: str) -> dict[str, str | None]:
    """``{"id": "sha256:<hex>", "digest": "sha256:<hex>" or None}`` from :func:`inspect_argv`'s output.

    Podman prints ids without ``sha256:``, docker with it; both come out with it. ``digest`` is the
    first repository digest (None for an image built or imported here, which has none).

    Raises:
        ValueError: output that is not what the format prints.
    """
    check_runtime(runtime)
    text = output.strip().splitlines()[0] if output.strip() else ""
    image_id, _, rest = text.partition(" ")
    try:
        digests = json.loads(rest) if rest.strip() else []
    except (json.JSONDecodeError, ValueError):
        raise ValueError(f"{runtime} image inspect printed {output[:200]!r}, not an id and a list of digests "
                         f"(the format {_INSPECT_FORMAT!r}). Is {runtime} podman or docker?") from None
    if not isinstance(image_id, str) or not re.fullmatch(r"(?:sha256:)?[a-f0-9]{64}", image_id):
        raise ValueError(f"{runtime} image inspect printed the id {image_id!r}, not 64 hex digits.")
    if not image_id.startswith("sha256:"):
        image_id = "sha256:" + image_id
    digest = None
    for entry in digests or []:
        if isinstance(entry, str) and "@" in entry:
            candidate = entry.rsplit("@", 1)[1]
            if re.fullmatch(r"sha256:[a-f0-9]{64}", candidate):
                digest = candidate
                break
    return {"id": image_id, "digest": digest}


def cleanup_argv(runtime: str, name: str, *, executable: str | None = None) -> list[str] | None:
    """A command that removes container ``name`` at once, running or not; None where nothing outlives the process.

    podman: ``rm -f --ignore -t 0`` (no error when it is gone). docker: ``rm -f`` (exits 1 with
    "No such container" when it is gone: treat that as done).
    """
    check_runtime(runtime)
    if runtime not in OCI_RUNTIMES:
        return None
    if not _CONTAINER_NAME_RE.match(name):
        raise ValueError(f"a container name must be letters, digits, '_', '.' or '-', but got {name!r:.80}.")
    exe = executable or EXECUTABLES[runtime]
    if runtime == "podman":
        return [exe, "rm", "-f", "--ignore", "-t", "0", name]
    return [exe, "rm", "-f", name]


def check_argvs(runtime: str, image: str | None, *, argv: Sequence[str] = ("true",),
                executable: str | None = None) -> list[list[str]]:
    """Commands for `runyard backends test`: the runtime's version, then (with an image) a
    trivial container that runs ``argv`` (default ``true``) in ``/``."""
    check_runtime(runtime)
    exe = executable or EXECUTABLES[runtime]
    version = [exe, "version"] if runtime == "enroot" else [exe, "--version"]
    out = [version]
    if image is not None:
        out.append(run_argv(runtime, ContainerCommand(image=image, argv=tuple(argv), workdir="/"), executable=exe))
    return out


# --- builds -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """The commands that build an image and leave it where :func:`run_argv` expects it.

    How the caller runs it:

    1. Remove ``partial`` and every ``temporary`` path left by an earlier, interrupted build.
    2. Run ``steps`` in order, streaming their output; stop at the first that fails.
    3. On success, rename ``partial`` to ``image`` (a file, or a directory for Charliecloud).
    4. Always: run ``cleanup`` (their failures do not matter) and remove ``temporary``.

    Attributes:
        steps: argvs, in order.
        image: what :func:`run_argv` takes afterwards: the tag, or the image file or directory.
        partial: where the steps write a file runtime's image (None for podman/docker), so a build
            that stops half-way never looks finished.
        temporary: files the steps write that are not needed afterwards.
        cleanup: argvs that undo what a step left in the builder (e.g. an export container).
    """

    steps: tuple[tuple[str, ...], ...]
    image: str
    partial: str | None = None
    temporary: tuple[str, ...] = ()
    cleanup: tuple[tuple[str, ...], ...] = ()


def image_file_stem(tag: str) -> str:
    """A file name for a built image: ``localhost/runyard-build:3f2a...`` -> ``runyard-build-3f2a...``."""
    name = tag.split("@", 1)[0]
    repo, _, version = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    stem = repo.rsplit("/", 1)[-1] + (f"-{version}" if version else "")
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", stem)


_ENV_TO_FILE = 'exec "$0" image inspect --format "$1" "$2" > "$3"'
_TOUCH_MISSING = 'for f; do [ -e "$f" ] || [ -L "$f" ] || : > "$f" || exit 1; done'


def build_plan(runtime: str, *, containerfile: Path, context: Path, tag: str, image_dir: Path | None,
               builder: str = "podman", build_options: Sequence[str] = (),
               bind_targets: Sequence[str] = ()) -> BuildPlan:
    """How to build ``tag`` from ``containerfile`` for ``runtime``.

    - podman, docker: ``<rt> build -f FILE -t TAG [build_options] CONTEXT``.
    - apptainer, singularity: build with ``builder``, ``<builder> save`` a docker archive,
      ``apptainer build --force <partial> docker-archive:<archive>``; the image is
      ``image_dir/<stem>.sif``.
    - enroot: build with ``builder``, then ``enroot import -o <partial> podman://TAG``
      (``dockerd://`` with docker); the image is ``image_dir/<stem>.sqsh``.
    - charliecloud: build with ``builder``, create a container from it, export its file system as
      a tar, unpack that into ``<partial>`` with ``tar``, write the image's variables to
      ``/ch/environment``, and create the mount points ch-run needs (``/dev``, ``/proc``, ``/sys``,
      ``/etc/passwd``, ... and ``bind_targets``); the image is the directory ``image_dir/<stem>``.

    Args:
        bind_targets: charliecloud: the container paths the runs will bind (e.g. their workdir).
        build_options: passed to the build verbatim (e.g. ``--build-arg X=1``); they are part of
            :func:`build_key`.

    Raises:
        ValueError: an unknown runtime or builder, or no ``image_dir`` for a file runtime.
    """
    check_runtime(runtime)
    if runtime in OCI_RUNTIMES:
        builder = runtime
    elif builder not in OCI_RUNTIMES:
        raise ValueError(f"images for {runtime} are built with podman or docker, but got builder {builder!r}. "
                         "Set the builder to podman or docker.")
    context_arg = str(context) if not str(context).startswith("-") else f"./{context}"  # never read as an option
    build = (builder, "build", "-f", str(containerfile), "-t", tag, *build_options, context_arg)
    if runtime in OCI_RUNTIMES:
        return BuildPlan(steps=(build,), image=tag)
    return _file_image_plan(runtime, build, tag, _image_dir(runtime, image_dir), image_file_stem(tag), builder,
                            bind_targets)


def pull_plan(runtime: str, image: str, *, image_dir: Path | None, puller: str = "podman",
              bind_targets: Sequence[str] = ()) -> BuildPlan:
    """How to fetch a registry image once and leave it where :func:`run_argv` expects it.

    - podman, docker: ``<rt> pull REF``; the image is REF.
    - apptainer, singularity: ``apptainer build --force <partial> docker://REF``, no podman needed;
      the image is ``image_dir/<stem>.sif`` (running ``docker://REF`` directly works too, through
      the runtime's own cache).
    - enroot: ``enroot import -o <partial> docker://[REGISTRY#]PATH[:TAG]`` (enroot's URI names the
      registry before ``#``), no podman needed; the image is ``image_dir/<stem>.sqsh``.
    - charliecloud: ``<puller> pull REF``, then as :func:`build_plan`; the image is ``image_dir/<stem>``.

    ``<stem>`` is the reference made a file name, with a hash of it so two references never share
    a file. A tag that moves upstream is not followed: remove the file (or pin a digest) to refresh.

    Raises:
        ValueError: an image that is a path, an id or a local (``localhost/``) one, an unknown
            runtime or puller, or no ``image_dir`` for a file runtime.
    """
    check_runtime(runtime)
    image = check_image(image)
    if is_path_image(image) or is_image_id(image) or image.startswith("localhost/"):
        raise ValueError(f"only registry images are pulled, but got {image!r}. A path is used as it is; an id or a "
                         "localhost/ image exists only where it was built (use build_plan).")
    if runtime in OCI_RUNTIMES:
        return BuildPlan(steps=((runtime, "pull", image),), image=image)
    directory = _image_dir(runtime, image_dir)
    stem = pulled_image_stem(image)
    if runtime in ("apptainer", "singularity"):
        target = posixpath.join(directory, f"{stem}.sif")
        return BuildPlan(steps=((runtime, "build", "--force", f"{target}.partial", f"docker://{image}"),),
                         image=target, partial=f"{target}.partial")
    if runtime == "enroot":
        target = posixpath.join(directory, f"{stem}.sqsh")
        return BuildPlan(steps=(("enroot", "import", "-o", f"{target}.partial", _enroot_uri(image)),),
                         image=target, partial=f"{target}.partial")
    if puller not in OCI_RUNTIMES:
        raise ValueError(f"charliecloud images are pulled with podman or docker, but got {puller!r}. Set the puller "
                         "to podman or docker.")
    return _file_image_plan(runtime, (puller, "pull", image), image, directory, stem, puller, bind_targets)


def pulled_image_stem(image: str) -> str:
    """A file name for a pulled reference: ``python:3.11-slim`` -> ``python_3.11-slim-<8 hex>``."""
    readable = re.sub(r"[^a-zA-Z0-9_.-]", "_", image.split("@", 1)[0])[:80]
    return f"{readable}-{hashlib.sha256(image.encode()).hexdigest()[:8]}"


def _enroot_uri(image: str) -> str:
    """``ghcr.io/org/x:1`` -> ``docker://ghcr.io#org/x:1`` (enroot separates the registry with ``#``)."""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return f"docker://{first}#{rest}"
    return f"docker://{image}"


def _image_dir(runtime: str, image_dir: Path | None) -> str:
    if image_dir is None:
        raise ValueError(f"{runtime} runs image files, so a build needs the backend's image_dir to write them to. "
                         "Set image_dir in the backend's configuration.")
    return str(image_dir).rstrip("/") or "/"


def _file_image_plan(runtime: str, first: tuple[str, ...], tag: str, base: str, stem: str, builder: str,
                     bind_targets: Sequence[str]) -> BuildPlan:
    """``first`` (a build or pull that leaves ``tag`` in ``builder``'s store), then its conversion for ``runtime``."""
    if runtime in ("apptainer", "singularity"):
        image = posixpath.join(base, f"{stem}.sif")
        archive = posixpath.join(base, f"{stem}.docker.tar")
        save = ((builder, "save", "--format", "docker-archive", "-o", archive, tag) if builder == "podman"
                else (builder, "save", "-o", archive, tag))
        convert = (runtime, "build", "--force", f"{image}.partial", f"docker-archive:{archive}")
        return BuildPlan(steps=(first, save, convert), image=image, partial=f"{image}.partial", temporary=(archive,))
    if runtime == "enroot":
        image = posixpath.join(base, f"{stem}.sqsh")
        scheme = "podman" if builder == "podman" else "dockerd"
        imp = ("enroot", "import", "-o", f"{image}.partial", f"{scheme}://{tag}")
        return BuildPlan(steps=(first, imp), image=image, partial=f"{image}.partial")
    image = posixpath.join(base, stem)
    partial = f"{image}.partial"
    archive = posixpath.join(base, f"{stem}.rootfs.tar")
    export_name = container_name("runyard-export", stem)
    targets = sorted({posixpath.normpath(t) for t in ("/dev", "/proc", "/sys", "/tmp", "/home", "/mnt", "/ch",
                                                       *bind_targets)})
    for t in targets:
        _check_container_path(t, "a bind target")
    files = [partial + f for f in ("/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf")]
    env_format = "{{range .Config.Env}}{{println .}}{{end}}"
    if builder == "podman":
        create: tuple[tuple[str, ...], ...] = ((builder, "create", "--replace", "--name", export_name, tag, "true"),)
    else:  # docker has no --replace, and its rm -f of a missing container may fail: remove a leftover first
        create = (("sh", "-c", '"$0" rm -f "$1" >/dev/null 2>&1; exit 0', builder, export_name),
                  (builder, "create", "--name", export_name, tag, "true"))
    steps = (
        first,
        *create,
        (builder, "export", "-o", archive, export_name),
        (builder, "rm", "-f", export_name),
        ("mkdir", "-p", partial),
        ("tar", "-x", "-f", archive, "-C", partial),
        ("mkdir", "-p", partial + "/etc", *(partial + t for t in targets)),
        ("sh", "-c", _TOUCH_MISSING, "runyard-touch", *files),
        ("sh", "-c", _ENV_TO_FILE, builder, env_format, tag, partial + "/ch/environment"),
    )
    return BuildPlan(steps=steps, image=image, partial=partial, temporary=(archive,),
                     cleanup=((builder, "rm", "-f", export_name),))


def build_argvs(runtime: str, *, containerfile: Path, context: Path, tag: str, image_dir: Path | None,
                builder: str = "podman", build_options: Sequence[str] = (),
                bind_targets: Sequence[str] = ()) -> list[list[str]]:
    """The steps of :func:`build_plan` as argv lists (see there for what to do around them)."""
    plan = build_plan(runtime, containerfile=containerfile, context=context, tag=tag, image_dir=image_dir,
                      builder=builder, build_options=build_options, bind_targets=bind_targets)
    return [list(step) for step in plan.steps]
