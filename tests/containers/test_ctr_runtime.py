"""The runtime helpers around run_argv: environments, GPUs, inspect, clean-up, checks, and what each runtime refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard.containers import (
    FILE_RUNTIMES,
    OCI_RUNTIMES,
    RUNTIMES,
    ContainerCommand,
    Mount,
    build_argvs,
    build_plan,
    check_argvs,
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

HEX64 = "e0e5cd0a3ab57e81d4ab64f3da7b06cc24e04146f1f3bce4869a46bd396a9c2e"
DIGEST = "sha256:9282d65c4a4e3b2b1de6bbfdb7cefbb7495fae6c705ce325544dc80336100d75"


def _cmd(image: str = "localhost/t:1", **kw: object) -> ContainerCommand:
    return ContainerCommand(image=image, argv=("true",), workdir="/w", **kw)  # type: ignore[arg-type]


def test_every_exported_name_exists() -> None:
    import runyard.containers as containers

    for name in containers.__all__:
        assert hasattr(containers, name), name
    assert sorted(containers.__all__) == sorted(set(containers.__all__))


def test_gpu_env_per_runtime() -> None:
    # Devices a container sees only some of are renumbered from 0; --nv and Charliecloud see host numbering.
    assert gpu_env("podman", ["2", "3"]) == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert gpu_env("docker", [5]) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert gpu_env("enroot", ["2", "3"]) == {"NVIDIA_VISIBLE_DEVICES": "2,3", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert gpu_env("apptainer", ["2", "3"]) == {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert gpu_env("charliecloud", ["1"]) == {"CUDA_VISIBLE_DEVICES": "1"}
    for runtime in RUNTIMES:  # no GPU: CUDA images' NVIDIA_VISIBLE_DEVICES=all must not expose every device
        assert gpu_env(runtime, None) == gpu_env(runtime, ()) == {"NVIDIA_VISIBLE_DEVICES": "void",
                                                                  "CUDA_VISIBLE_DEVICES": ""}


def test_process_env_passes_names_and_only_those_into_isolated_runtimes() -> None:
    environ = {"PATH": "/usr/bin", "HOME": "/root", "A": "1", "B": "2", "APPTAINERENV_LEAK": "x"}
    cmd = _cmd("/i.sif", env_names=("A", "MISSING"))
    env = process_env("apptainer", cmd, environ)
    assert env["APPTAINERENV_A"] == "1" and "APPTAINERENV_B" not in env and "APPTAINERENV_MISSING" not in env
    assert "APPTAINERENV_LEAK" not in env  # the host's own injections do not reach the container
    assert process_env("singularity", cmd, environ)["SINGULARITYENV_A"] == "1"
    assert process_env("podman", _cmd(env_names=("A",)), environ) == environ
    assert process_env("enroot", _cmd("/i.sqsh", env_names=("A",)), environ)["ENROOT_MOUNT_HOME"] == "no"
    ch = process_env("charliecloud", _cmd("/img", env_names=("A",)), environ, image_env={"LANG": "C.UTF-8"})
    assert ch == {"LANG": "C.UTF-8", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A": "1",
                  "USER": "runyard", "HOME": "/w"}
    ch = process_env("charliecloud", _cmd("/img"), {"USER": "alice"}, image_env={"PATH": "/opt/bin", "HOME": "/h"})
    assert ch == {"PATH": "/opt/bin", "HOME": "/h", "USER": "alice"}


def test_parse_environment_file() -> None:
    text = "PATH=/usr/local/bin:/usr/bin\nLANG='C.UTF-8'\n\nnot a line\n=x\nA=b=c\nEMPTY=\n"
    assert parse_environment_file(text) == {"PATH": "/usr/local/bin:/usr/bin", "LANG": "C.UTF-8", "A": "b=c",
                                            "EMPTY": ""}


def test_inspect_and_exists() -> None:
    assert image_exists_argv("podman", "localhost/t:1") == ["podman", "image", "exists", "localhost/t:1"]
    assert image_exists_argv("docker", "t:1") == ["docker", "image", "inspect", "--format", "{{.Id}}", "t:1"]
    for runtime in FILE_RUNTIMES:
        assert image_exists_argv(runtime, "/i.sif") is None and inspect_argv(runtime, "/i.sif") is None
    assert inspect_argv("podman", "t:1", executable="/usr/bin/podman") == [
        "/usr/bin/podman", "image", "inspect", "--format", "{{.Id}} {{json .RepoDigests}}", "t:1"]
    # What podman 4.3 prints (measured), and docker's form of the same.
    podman = f'{HEX64} ["localhost/t@{DIGEST}","localhost/u@{DIGEST}"]\n'
    assert parse_inspect("podman", podman) == {"id": f"sha256:{HEX64}", "digest": DIGEST}
    assert parse_inspect("docker", f"sha256:{HEX64} []\n") == {"id": f"sha256:{HEX64}", "digest": None}
    assert parse_inspect("docker", f"sha256:{HEX64} null\n")["digest"] is None
    for bad in ("", "Error: image not known", f"{HEX64} [", "xyz []"):
        with pytest.raises(ValueError, match="image inspect printed"):
            parse_inspect("podman", bad)


def test_cleanup() -> None:
    assert cleanup_argv("podman", "runyard-1-1-main-0") == ["podman", "rm", "-f", "--ignore", "-t", "0",
                                                             "runyard-1-1-main-0"]
    assert cleanup_argv("docker", "c1") == ["docker", "rm", "-f", "c1"]
    for runtime in FILE_RUNTIMES:
        assert cleanup_argv(runtime, "c1") is None
    with pytest.raises(ValueError, match="a container name must be"):
        cleanup_argv("podman", "--all")


def test_check_argvs() -> None:
    assert check_argvs("podman", None) == [["podman", "--version"]]
    assert check_argvs("enroot", None) == [["enroot", "version"]]
    assert check_argvs("charliecloud", "/img", argv=("python3", "-c", "pass")) == [
        ["ch-run", "--version"], ["ch-run", "--no-home", "--private-tmp", "--cd", "/", "/img", "--", "python3", "-c",
                                   "pass"]]
    podman = check_argvs("podman", "localhost/t:1")
    assert podman[1][:3] == ["podman", "run", "--rm"] and podman[1][-2:] == ["localhost/t:1", "true"]


def test_container_name() -> None:
    assert container_name("runyard", 42, 1, "worker", 0) == "runyard-42-1-worker-0"
    assert container_name("-x y/z") == "c-x_y_z"
    assert len(container_name("a" * 300)) == 128
    _cmd(name=container_name("runyard", 1, "ünïcode"))  # always a name the runtimes accept


@pytest.mark.parametrize(("runtime", "image", "needle"), [
    ("podman", "/images/t.sif", "podman runs images by reference, but got the path '/images/t.sif'"),
    ("docker", "./t", "docker runs images by reference"),
    ("apptainer", "localhost/t:1", "apptainer cannot read podman's or docker's local image store"),
    ("charliecloud", "sha256:" + HEX64, "charliecloud cannot read podman's or docker's local image store"),
    ("enroot", "ghcr.io/org/t:1", "enroot starts an image file or a container created by `enroot create`"),
])
def test_an_image_a_runtime_cannot_run_is_refused(runtime: str, image: str, needle: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        run_argv(runtime, _cmd(image))
    assert needle in str(info.value)


def test_charliecloud_refuses_a_read_only_mount_instead_of_binding_it_writable() -> None:
    cmd = _cmd("/img", mounts=(Mount("/data", "/data", read_only=True),))
    with pytest.raises(ValueError, match="charliecloud binds read-write only"):
        run_argv("charliecloud", cmd)


def test_apptainer_pulls_a_registry_reference() -> None:
    argv = run_argv("singularity", _cmd("python:3.11-slim"))
    assert "docker://python:3.11-slim" in argv


def test_executable_replaces_the_program() -> None:
    assert run_argv("podman", _cmd(), executable="/opt/podman/bin/podman")[0] == "/opt/podman/bin/podman"


def test_pull_never_only_for_images_that_exist_only_here() -> None:
    assert "--pull" in run_argv("podman", _cmd("localhost/t:1"))
    assert "--pull" in run_argv("docker", _cmd("sha256:" + HEX64))
    assert "--pull" not in run_argv("podman", _cmd("python:3.11"))


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"image": "--privileged"}, "image must not start with '-'"),
    ({"argv": ()}, "needs an argv"),
    ({"argv": ("a\x00b",)}, "without NUL"),
    ({"workdir": "relative"}, "workdir must be an absolute path"),
    ({"env_names": ("A=1",)}, "env_names must be variable names"),
    ({"env_names": ("A", "A")}, "lists a name twice"),
    ({"gpus": ("0,1",)}, "gpus must be device indices"),
    ({"name": "--rm"}, "a container name must be"),
    ({"extra_args": ("x\x00",)}, "without NUL"),
])
def test_container_command_refuses(kwargs: dict[str, object], needle: str) -> None:
    fields: dict[str, object] = {"image": "t:1", "argv": ("true",), "workdir": "/w", **kwargs}
    with pytest.raises(ValueError, match=None) as info:
        ContainerCommand(**fields)  # type: ignore[arg-type]
    assert needle in str(info.value)


@pytest.mark.parametrize(("source", "target", "needle"), [
    ("relative", "/t", "a mount's source must be an absolute path"),
    ("/a:b", "/t", "must not hold ':', ','"),
    ("/a", "/t,ro", "must not hold ':', ','"),
    ("/a\nb", "/t", "must not hold"),
])
def test_mount_refuses(source: str, target: str, needle: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        Mount(source, target)
    assert needle in str(info.value)


def test_unknown_runtime_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown container runtime 'rkt'. Known runtimes: podman, docker, apptainer"):
        run_argv("rkt", _cmd())


def test_build_plan_refusals_and_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the backend's image_dir"):
        build_plan("enroot", containerfile=tmp_path / "C", context=tmp_path, tag="localhost/x:1", image_dir=None)
    with pytest.raises(ValueError, match="built with podman or docker, but got builder 'buildah'"):
        build_plan("apptainer", containerfile=tmp_path / "C", context=tmp_path, tag="localhost/x:1",
                   image_dir=tmp_path, builder="buildah")
    for runtime in OCI_RUNTIMES:  # the runtime builds for itself: no image_dir needed, builder ignored
        plan = build_plan(runtime, containerfile=tmp_path / "C", context=tmp_path, tag="localhost/x:1",
                          image_dir=None, builder="docker")
        assert plan.steps == ((runtime, "build", "-f", str(tmp_path / "C"), "-t", "localhost/x:1", str(tmp_path)),)
        assert plan.image == "localhost/x:1" and plan.partial is None
    argvs = build_argvs("enroot", containerfile=tmp_path / "C", context=tmp_path, tag="localhost/x:1",
                        image_dir=tmp_path)
    assert argvs[-1] == ["enroot", "import", "-o", f"{tmp_path}/x-1.sqsh.partial", "podman://localhost/x:1"]
    assert image_file_stem("localhost/runyard-build:0123") == "runyard-build-0123"
    assert image_file_stem("localhost:5000/a/b") == "b"


def test_pull_plan_refusals_and_names(tmp_path: Path) -> None:
    for image in ("/images/x.sif", "localhost/t:1", "sha256:" + HEX64):
        with pytest.raises(ValueError, match="only registry images are pulled"):
            pull_plan("enroot", image, image_dir=tmp_path)
    with pytest.raises(ValueError, match="image must not start with '-'"):
        pull_plan("podman", "--privileged", image_dir=None)
    assert pull_plan("docker", "python:3.11", image_dir=None).steps == (("docker", "pull", "python:3.11"),)
    # enroot names the registry before '#'; a Docker Hub name has none.
    assert pull_plan("enroot", "nvcr.io/nvidia/pytorch:24.05-py3", image_dir=tmp_path).steps[0][-1] == \
        "docker://nvcr.io#nvidia/pytorch:24.05-py3"
    assert pull_plan("enroot", "python:3.11", image_dir=tmp_path).steps[0][-1] == "docker://python:3.11"
    # Two references that read alike still get two files.
    assert pulled_image_stem("a/b_c:1") != pulled_image_stem("a_b/c:1")
    assert pulled_image_stem("python:3.11-slim").startswith("python_3.11-slim-")
