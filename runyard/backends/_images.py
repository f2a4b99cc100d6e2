"""What every backend that starts ``runyard.runner`` says about container images: its ``backends.yml`` settings.

A run with ``image:`` (or ``build:``) in its ``runyard.yml`` has its commands started inside a
container by the task runner, which stays outside (``runyard.runner._container``). The backend
only chooses *how*: the runtime (``container_runtime``), where file images go
(``image_dir``), extra flags, and whether a run may go without an image at all
(``require_image``). :func:`with_container` adds those settings to a run's launch.

Each backend's options model inherits :class:`ContainerOptions`, so the settings read the same
for ``local``, ``ssh`` and ``slurm`` entries::

    gpu-box:
      type: ssh
      hosts: [{host: gpu01}]
      container_runtime: podman
      require_image: true
    hpc:
      type: slurm
      container_runtime: apptainer
      image_dir: /shared/runyard/images
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.backends.options import rule as _rule
from runyard.errors import SpecError, SubmitError
from runyard.records.compute import CheckResult, RunLaunch

__all__ = ["ContainerOptions", "check_require_image", "container_checks", "with_container"]

Runtime = Literal["podman", "docker", "apptainer", "singularity", "enroot", "charliecloud"]




class ContainerOptions(BaseModel):
    """The container settings of a backend entry (docs/containers.md)."""

    container_runtime: Runtime | None = Field(None, description="the container runtime that runs a run's image", **_rule(
        "one of podman, docker, apptainer, singularity, enroot, charliecloud",
        "Use the runtime installed on the backend's machines, e.g. container_runtime: podman.",
        "podman on local and ssh, apptainer on slurm"))
    container_command: str | None = Field(None, description="the runtime's executable, if not on PATH", **_rule(
        "a command name or an absolute path", "Give e.g. container_command: /opt/apptainer/bin/apptainer.",
        "ch-run for charliecloud, else the runtime's name"))
    container_options: list[str] = Field(default_factory=list, description="extra flags for each container started",
                                         **_rule("a list of command-line flags", "Write e.g. container_options: "
                                                 "['--shm-size=8g'].", "[]"))
    build_options: list[str] = Field(default_factory=list, description="extra flags for each image build", **_rule(
        "a list of command-line flags", "Write e.g. build_options: ['--volume', '/data/wheels:/wheels:ro'].", "[]"))
    builder: Literal["podman", "docker"] = Field("podman", description="the OCI tool that builds and converts images "
                                                 "for apptainer, singularity, enroot and charliecloud", **_rule(
        "podman or docker", "Use the one installed where the runs' images are built.", "podman"))
    image_dir: str | None = Field(None, description="where built or converted image files go (apptainer, singularity, "
                                  "enroot, charliecloud); on a cluster, a directory every node sees", **_rule(
        "a directory path", "Give a shared directory, e.g. image_dir: /shared/runyard/images.", "RUNYARD_HOME/images"))
    test_image: str | None = Field(None, description="an image `runyard backends test` starts a container from, "
                                   "to check the runtime", **_rule(
        "an image reference or path", "Give an image the backend's machines have, e.g. test_image: python:3.11-slim.",
        "none (only the runtime's version is checked)"))
    require_image: bool = Field(False, description="refuse runs without image: (each job then sees only what is "
                                "mounted into its container)", **_rule(
        "true or false", "Write require_image: true to refuse runs that name no image.", "false"))


def check_require_image(options: Any, backend: str, spec: Any) -> None:
    """Raise SpecError at submission when ``backend`` requires an image and ``spec``'s runs have none."""
    if not getattr(options, "require_image", False):
        return
    roles = []
    if spec.distributed is not None:
        roles = list(spec.distributed.to_launch(spec.resources)["roles"])
    missing = [r for r in roles if not spec.image_for(r) and spec.build is None] if roles else []
    if (not roles and spec.image_for(None) is None and spec.build is None) or missing:
        where = f" (roles without one: {', '.join(missing)})" if missing else ""
        raise SpecError(f"Backend {backend!r} runs every job in a container, but this experiment names no image{where}.",
                        "Add `image: NAME` to runyard.yml (e.g. `image: python:3.11-slim`, or a `build:` section), "
                        "or pick another backend.")


def with_container(launch: RunLaunch, options: Any, *, default_runtime: str, backend: str = "") -> RunLaunch:
    """``launch`` with the backend's runtime settings added to its ``container`` (unchanged without one).

    Raises:
        SubmitError: the backend requires an image and the run has none.
    """
    if launch.container is None:
        if getattr(options, "require_image", False):
            raise SubmitError(f"Backend {backend or 'this backend'} runs every job in a container, but run "
                              f"{launch.run_id} names no image.", "Add `image: NAME` to runyard.yml, or pick another backend.")
        return launch
    runtime = options.container_runtime or default_runtime
    settings = {
        "runtime": runtime,
        "command": options.container_command,
        "options": list(options.container_options),
        "build_options": list(options.build_options),
        "builder": options.builder,
        "image_dir": options.image_dir,
    }
    return dataclasses.replace(launch, container={**launch.container, **settings})


def container_checks(options: Any, default_runtime: str, run: Callable[[Sequence[str]], tuple[int, str, str]],
                     where: str = "") -> list[CheckResult]:
    """``runyard backends test``'s container checks: the runtime answers, and starts ``test_image`` if one is set.

    Nothing is checked when the entry sets neither ``container_runtime`` nor ``require_image`` nor
    ``test_image`` (its runs may still name an image: the runtime is then the default one).

    Args:
        run: runs an argv where the backend's jobs run: ``(exit code, stdout, stderr)``.
    """
    if not (options.container_runtime or options.require_image or options.test_image):
        return []
    from runyard.containers import EXECUTABLES, check_argvs

    runtime = options.container_runtime or default_runtime
    exe = options.container_command or EXECUTABLES[runtime]
    at = f" on {where}" if where else ""
    results: list[CheckResult] = []
    for i, argv in enumerate(check_argvs(runtime, options.test_image)):
        argv = [exe, *argv[1:]] if argv and argv[0] == EXECUTABLES[runtime] else list(argv)
        code, out, err = run(argv)
        name = "container runtime" if i == 0 else "container start"
        if code == 0:
            first = (out.strip().splitlines() or ["ok"])[0]
            detail = f"{exe}: {first}" if i == 0 else f"started a container from {options.test_image}{at}"
            results.append(CheckResult(name, True, detail))
            continue
        why = "not found" if code == 127 else ((err or out).strip().splitlines() or [f"exit code {code}"])[-1]
        hint = (f"Install {runtime} on the backend's machines (docs/containers.md), or set container_command to its path."
                if i == 0 else f"Check that {options.test_image} exists there and that `{shlex_join(argv)}` works.")
        results.append(CheckResult(name, False, f"`{shlex_join(argv)}`{at}: {why}", hint))
        break
    return results


def shlex_join(argv: Sequence[str]) -> str:
    import shlex

    return shlex.join(argv)
