"""Golden files pin the command lines that run a task in a container and build its image, for every runtime.

They are pure functions (no runtime needed), so Apptainer, Singularity and enroot, which cannot be
installed on a development machine, are pinned here too. To accept an intended change, regenerate
the files and review the diff:

    RUNYARD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/containers/test_ctr_argv.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runyard.containers import (
    RUNTIMES,
    BuildPlan,
    ContainerCommand,
    Mount,
    build_plan,
    built_image_ref,
    gpu_env,
    process_env,
    pull_plan,
    run_argv,
)
from runyard.testing.golden import check_golden

GOLDEN = Path(__file__).parent / "golden"
KEY = "0123456789abcdef"
TAG = built_image_ref(KEY)
IMAGE_DIR = Path("/scratch/runyard/images")

# What each runtime runs after a build: podman/docker a tag, the others the file or directory build_plan writes.
BUILT = {"podman": TAG, "docker": TAG, "apptainer": f"{IMAGE_DIR}/runyard-build-{KEY}.sif",
         "singularity": f"{IMAGE_DIR}/runyard-build-{KEY}.sif", "enroot": f"{IMAGE_DIR}/runyard-build-{KEY}.sqsh",
         "charliecloud": f"{IMAGE_DIR}/runyard-build-{KEY}"}
RUN_ENV = ("RUNYARD_RUN_ID", "RUNYARD_SERVER", "RUNYARD_TOKEN", "RUNYARD_PARAMS")
# A worker of a PyTorch run: the variables runyard.launch gives its tasks, by name.
TORCH_ENV = (*RUN_ENV, "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "RUNYARD_ROLE",
             "RUNYARD_REPLICA_INDEX")
# The runner's environment for the task: the values never reach argv, only the runtime process's environment.
ENVIRON = {"PATH": "/usr/bin:/bin", "HOME": "/home/alice", "USER": "alice", "RUNYARD_RUN_ID": "42",
           "RUNYARD_SERVER": "http://login01:8765", "RUNYARD_TOKEN": "ryd_secret-token-value",
           "RUNYARD_PARAMS": '{"lr": 0.1}', "MASTER_ADDR": "node07", "MASTER_PORT": "29500", "WORLD_SIZE": "3",
           "RANK": "2", "LOCAL_RANK": "0", "RUNYARD_ROLE": "worker", "RUNYARD_REPLICA_INDEX": "1",
           "CUDA_VISIBLE_DEVICES": "2,3", "NVIDIA_VISIBLE_DEVICES": "2,3", "APPTAINERENV_STRAY": "from-the-host"}
SNAPSHOT = Mount("/scratch/runyard/runs/42/1/code", "/runyard/code")
ARGV = ("bash", "-c", "python train.py --lr 0.1")


def _mounts(runtime: str) -> tuple[Mount, ...]:
    # ch-run binds read-write only; every other runtime gets the data read-only.
    return (SNAPSHOT, Mount("/datasets/digits", "/data", read_only=runtime != "charliecloud"))


def _case(runtime: str, case: str) -> tuple[ContainerCommand, tuple[str, ...] | None]:
    # As the runner passes them: the run's variables, then gpu_env's (which hide every GPU when there are none).
    image = BUILT[runtime]
    name = "runyard-42-1-main-0"
    no_gpu = tuple(gpu_env(runtime, None))
    if case == "plain":
        return ContainerCommand(image=image, argv=ARGV, workdir="/runyard/code", name=name), None
    if case == "gpu":
        gpus = ("2", "3")
        names = (*RUN_ENV, *gpu_env(runtime, gpus))
        return ContainerCommand(image=image, argv=ARGV, workdir="/runyard/code", mounts=(SNAPSHOT,),
                                env_names=names, gpus=gpus, name=name), gpus
    if case == "mounts_env":
        return ContainerCommand(image=image, argv=ARGV, workdir="/runyard/code", mounts=_mounts(runtime),
                                env_names=(*RUN_ENV, *no_gpu), name=name, extra_args=("--log-level", "debug")
                                if runtime in ("podman", "docker") else ()), None
    if case == "distributed_worker":
        return ContainerCommand(image=image, argv=("bash", "-c", "torchrun --nproc-per-node 1 train.py"),
                                workdir="/runyard/code", mounts=(SNAPSHOT,), env_names=(*TORCH_ENV, *no_gpu),
                                name="runyard-42-1-worker-1"), None
    if case == "registry_image":  # a reference straight from a registry
        return ContainerCommand(image="ghcr.io/org/train:1.2" if runtime != "enroot" else "train",
                                argv=ARGV, workdir="/runyard/code", mounts=(SNAPSHOT,), env_names=RUN_ENV), None
    raise AssertionError(case)


CASES = ("plain", "gpu", "mounts_env", "distributed_worker", "registry_image")


def _render_run(runtime: str, case: str) -> str:
    cmd, gpus = _case(runtime, case)
    argv = run_argv(runtime, cmd)
    environ = {**ENVIRON, **gpu_env(runtime, gpus)}
    env = process_env(runtime, cmd, environ, image_env={"PATH": "/opt/conda/bin:/usr/bin:/bin", "LANG": "C.UTF-8"})
    added = {k: v for k, v in sorted(env.items()) if ENVIRON.get(k) != v or runtime == "charliecloud"}
    lines = [f"# run_argv({runtime!r}, <{case}>): one JSON string per argument", "argv:"]
    lines += [f"  {json.dumps(arg)}" for arg in argv]
    lines.append("# process_env: what the runtime process's environment adds or changes (charliecloud: all of it)")
    lines.append("env:")
    lines += [f"  {k}={json.dumps(v)}" for k, v in added.items()]
    removed = sorted(set(ENVIRON) - set(env))
    if removed:
        lines.append("env removed:")
        lines += [f"  {k}" for k in removed]
    return "\n".join(lines) + "\n"


def _render_build(runtime: str, builder: str) -> str:
    plan = build_plan(runtime, containerfile=Path("/scratch/runyard/builds/b1/Containerfile"),
                      context=Path("/scratch/runyard/builds/b1"), tag=TAG, image_dir=IMAGE_DIR, builder=builder,
                      build_options=("--build-arg", "PIP_INDEX_URL=http://pypi.internal/simple"),
                      bind_targets=("/runyard/code", "/data"))
    return _render_plan(plan, f"build_plan({runtime!r}, builder={builder!r})")


def _render_plan(plan: BuildPlan, title: str) -> str:
    lines = [f"# {title}: steps in order, one JSON string per argument"]
    for i, step in enumerate(plan.steps):
        lines.append(f"step {i + 1}:")
        lines += [f"  {json.dumps(arg)}" for arg in step]
    lines.append(f"image: {json.dumps(plan.image)}")
    lines.append(f"partial: {json.dumps(plan.partial)}")
    lines.append(f"temporary: {json.dumps(list(plan.temporary))}")
    for i, step in enumerate(plan.cleanup):
        lines.append(f"cleanup {i + 1}:")
        lines += [f"  {json.dumps(arg)}" for arg in step]
    return "\n".join(lines) + "\n"


def _check_golden(name: str, text: str, what: str) -> None:
    check_golden(GOLDEN / name, text, what, __file__)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_argv_matches_its_golden_file(runtime: str, case: str) -> None:
    text = _render_run(runtime, case)
    assert _render_run(runtime, case) == text  # pure: same input, same text
    _check_golden(f"ctr_run_{runtime}_{case}.txt", text, f"The container command line of {runtime} for {case!r}")


BUILDS = [(rt, "podman") for rt in RUNTIMES if rt != "docker"] + [("docker", "docker"), ("enroot", "docker"),
                                                                  ("charliecloud", "docker"), ("apptainer", "docker")]


@pytest.mark.parametrize(("runtime", "builder"), BUILDS)
def test_build_plan_matches_its_golden_file(runtime: str, builder: str) -> None:
    text = _render_build(runtime, builder)
    suffix = "" if builder == "podman" or runtime == builder else f"_with_{builder}"
    _check_golden(f"ctr_build_{runtime}{suffix}.txt", text, f"The build plan of {runtime} (builder {builder})")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pull_plan_matches_its_golden_file(runtime: str) -> None:
    plan = pull_plan(runtime, "ghcr.io/org/train:1.2", image_dir=IMAGE_DIR, bind_targets=("/runyard/code",))
    text = _render_plan(plan, f"pull_plan({runtime!r}, 'ghcr.io/org/train:1.2')")
    _check_golden(f"ctr_pull_{runtime}.txt", text, f"The pull plan of {runtime}")


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("case", CASES)
def test_no_value_of_a_passed_variable_reaches_argv(runtime: str, case: str) -> None:
    # argv is visible to every user of the machine (ps, /proc/PID/cmdline): the token must never be in it.
    cmd, _ = _case(runtime, case)
    argv = run_argv(runtime, cmd)
    assert not any(ENVIRON["RUNYARD_TOKEN"] in arg for arg in argv)
    assert not any("=" in arg and arg.split("=", 1)[0] in cmd.env_names for arg in argv)
    env = process_env(runtime, cmd, ENVIRON)
    # ...and the container still gets every passed value, through the runtime process's environment.
    prefix = {"apptainer": "APPTAINERENV_", "singularity": "SINGULARITYENV_"}.get(runtime, "")
    for name in cmd.env_names:
        if name in ENVIRON:
            assert env[prefix + name] == ENVIRON[name]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_runtime_binds_the_home_directory(runtime: str) -> None:
    cmd, _ = _case(runtime, "mounts_env")
    argv = run_argv(runtime, cmd)
    assert not any("/home" in arg for arg in argv)
    if runtime in ("apptainer", "singularity"):
        assert "--contain" in argv and "--no-home" in argv and "--cleanenv" in argv
    if runtime == "charliecloud":
        assert "--no-home" in argv and "--home" not in argv and "--private-tmp" in argv
    if runtime == "enroot":
        assert process_env(runtime, cmd, ENVIRON)["ENROOT_MOUNT_HOME"] == "no"


def test_the_image_comes_right_before_the_command_so_nothing_after_it_is_read_as_an_option() -> None:
    # A command argument that looks like an option ("--privileged") stays the command's: each runtime stops
    # reading its own options at the image (podman, docker, apptainer) or at "--" (enroot, charliecloud).
    for runtime in RUNTIMES:
        cmd = ContainerCommand(image=BUILT[runtime], argv=("--privileged", "-v", "/:/host"), workdir="/w")
        argv = run_argv(runtime, cmd)
        image_at = argv.index(BUILT[runtime])
        if runtime == "charliecloud":
            assert argv[image_at + 1] == "--" and argv[image_at + 2:] == ["--privileged", "-v", "/:/host"]
        elif runtime == "enroot":
            assert argv[image_at - 1] == "--" and argv[-3:] == ["--privileged", "-v", "/:/host"]
        else:
            assert argv[image_at + 1:] == ["--privileged", "-v", "/:/host"]
