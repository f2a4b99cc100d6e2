"""Container images for runs: image references, builds, and each runtime's command lines (pure).

Responsibility: everything Runyard knows about container runtimes, as pure functions that return
values and argv lists; nothing here starts a process. The task runner (outside the container) and
the backends run what these functions return:

- :func:`check_image` validates ``image:`` of runyard.yml (an OCI reference, an image id, or a path
  to an image file or directory), refusing what a runtime's command line could misread.
- :class:`BuildSpec` is ``build:``; :func:`containerfile_text` the Containerfile it stands for;
  :func:`build_key` the cache key of a build (the Containerfile, the runtime, the build options and
  the files its COPY/ADD lines read); :func:`build_plan` / :func:`build_argvs` the commands that build
  it for a runtime and leave it where :func:`run_argv` expects it; :func:`pull_plan` fetches a
  registry image once into the image files the Slurm runtimes run.
- :class:`ContainerCommand` and :func:`run_argv` start a task's command in a container with podman,
  docker, apptainer, singularity, enroot or charliecloud; :func:`process_env` and :func:`gpu_env`
  give the runtime process the environment that carries variables (by name, never in argv) and
  selects GPUs; :func:`cleanup_argv`, :func:`image_exists_argv`, :func:`inspect_argv` /
  :func:`parse_inspect` and :func:`check_argvs` manage images and containers.

The per-runtime choices (flags, why each) are in ``_runtime.py``'s docstring and docs/containers.md.
"""

from runyard.containers._build import (
    BUILD_KEY_VERSION,
    BuildSpec,
    build_key,
    built_image_ref,
    containerfile_text,
    copy_sources,
    project_path_problem,
    step_problem,
)
from runyard.containers._image import (
    IMAGE_FILE_SUFFIXES,
    IMAGE_MAX,
    check_image,
    image_problem,
    is_image_id,
    is_path_image,
)
from runyard.containers._runtime import (
    EXECUTABLES,
    FILE_RUNTIMES,
    OCI_RUNTIMES,
    RUNTIMES,
    BuildPlan,
    ContainerCommand,
    Mount,
    build_argvs,
    build_plan,
    check_argvs,
    check_runtime,
    cleanup_argv,
    container_name,
    gpu_env,
    image_exists_argv,
    image_file_stem,
    inspect_argv,
    parse_environment_file,
    parse_inspect,
    process_env,
    pull_plan,
    pulled_image_stem,
    run_argv,
)

__all__ = [
    "BUILD_KEY_VERSION",
    "EXECUTABLES",
    "FILE_RUNTIMES",
    "IMAGE_FILE_SUFFIXES",
    "IMAGE_MAX",
    "OCI_RUNTIMES",
    "RUNTIMES",
    "BuildPlan",
    "BuildSpec",
    "ContainerCommand",
    "Mount",
    "build_argvs",
    "build_key",
    "build_plan",
    "built_image_ref",
    "check_argvs",
    "check_image",
    "check_runtime",
    "cleanup_argv",
    "container_name",
    "containerfile_text",
    "copy_sources",
    "gpu_env",
    "image_exists_argv",
    "image_file_stem",
    "image_problem",
    "inspect_argv",
    "is_image_id",
    "is_path_image",
    "parse_environment_file",
    "parse_inspect",
    "process_env",
    "pull_plan",
    "pulled_image_stem",
    "project_path_problem",
    "run_argv",
    "step_problem",
]
