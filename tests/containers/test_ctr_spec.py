"""image: and build: in runyard.yml: accepted forms, the stored config, and every refusal as the user sees it."""

from __future__ import annotations

import pytest

from runyard.containers import BuildSpec
from runyard.errors import SpecError
from runyard.spec import parse_spec, validate_config

BASE = "project: p\ncommand: python train.py\n"


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    return info.value.message


def test_no_image_means_no_container() -> None:
    spec = parse_spec(BASE)
    assert spec.image is None and spec.build is None and spec.build_spec() is None
    assert spec.image_for(None) is None and not spec.uses_build(None)
    assert "image" not in spec.to_config() and "build" not in spec.to_config()


def test_an_image_is_kept_in_the_stored_config() -> None:
    spec = parse_spec(BASE + "image: ghcr.io/org/train:1.2\n")
    assert spec.image_for(None) == "ghcr.io/org/train:1.2"
    config = spec.to_config()
    assert config["image"] == "ghcr.io/org/train:1.2"
    assert validate_config(config).to_config() == config


def test_a_path_image_is_normalised() -> None:
    assert parse_spec(BASE + "image: /images//train.sif\n").image == "/images/train.sif"


@pytest.mark.parametrize(("build", "expected"), [
    ("build: Containerfile\n", BuildSpec(containerfile="Containerfile")),
    ("build: {containerfile: docker/Containerfile, context: docker}\n",
     BuildSpec(containerfile="docker/Containerfile", context="docker")),
    ("image: python:3.11-slim\nbuild: {steps: [pip install numpy, pip install torch]}\n",
     BuildSpec(steps=("pip install numpy", "pip install torch"))),
    ("image: python:3.11-slim\nbuild: {steps: pip install numpy}\n", BuildSpec(steps=("pip install numpy",))),
])
def test_build_forms(build: str, expected: BuildSpec) -> None:
    spec = parse_spec(BASE + build)
    assert spec.build_spec() == expected
    assert spec.uses_build(None) and spec.uses_build("worker")
    config = spec.to_config()
    assert config["build"] == expected.to_dict()  # stored as BuildSpec writes it
    assert validate_config(config).build_spec() == expected


def test_a_role_image_overrides_the_top_level_one() -> None:
    spec = parse_spec(BASE + "image: python:3.11\nbuild: {steps: [pip install x]}\ndistributed:\n  framework: pytorch\n"
                      "  master: 1\n  worker: {replicas: 2, image: ghcr.io/org/gpu:1}\n")
    assert spec.image_for("master") == "python:3.11" and spec.uses_build("master")
    assert spec.image_for("worker") == "ghcr.io/org/gpu:1" and not spec.uses_build("worker")
    assert spec.image_for(None) == "python:3.11"
    config = spec.to_config()
    assert config["distributed"]["worker"]["image"] == "ghcr.io/org/gpu:1"
    assert validate_config(config).image_for("worker") == "ghcr.io/org/gpu:1"


@pytest.mark.parametrize(("text", "expected"), [
    ("image: --privileged\n",
     "runyard.yml:3: image must not start with '-', but got '--privileged': a container runtime would read it as an "
     "option of its own. Name an image, e.g. python:3.11-slim, ghcr.io/org/train:1.2, /images/train.sif or "
     "./images/train."),
    ("image: 'a b'\n",
     "runyard.yml:3: image must be one word without whitespace or control characters, but got 'a b', which holds "
     "whitespace at character 1. Remove it: the image is passed to the container runtime as one command-line "
     "argument, e.g. python:3.11-slim, ghcr.io/org/train:1.2, /images/train.sif or ./images/train."),
    ("image: Python:3.11\n",
     "runyard.yml:3: image must have a lowercase repository path, but got 'Python:3.11'. Registries name "
     "repositories in lowercase: write 'python:3.11'."),
    ("image: 3.11\n",
     "runyard.yml:3: image must be an image reference such as python:3.11-slim or ghcr.io/org/train:1.2, an image "
     "id, or a path to an image file or directory starting with / or ./, but got 3.11. Write e.g. "
     "`image: python:3.11-slim`, or remove image: to run without a container."),
    ("build: Containerfile\nimage: python:3.11\n",
     "runyard.yml:4: image is set to 'python:3.11' together with build.containerfile, but the Containerfile's FROM "
     "names the base; remove image:."),
    ("build:\n  steps: [pip install x]\n",
     "runyard.yml:4: build.steps need image: as the base they run on, but image: is not set. Add e.g. "
     "`image: python:3.11-slim`."),
    ("image: /images/base.sif\nbuild: {steps: [pip install x]}\n",
     "runyard.yml:3: image is '/images/base.sif', but build.steps build with podman or docker on top of image:, which "
     "needs a reference as the base. Name the base by reference, e.g. `image: python:3.11-slim`."),
    ("build: ../Containerfile\n",
     "runyard.yml:3: build.containerfile must stay inside the project directory, but got '../Containerfile', which "
     "climbs out with '..'. Keep it in the project, e.g. Containerfile or docker/train.Containerfile."),
    ("build: /etc/Containerfile\n",
     "runyard.yml:3: build.containerfile must be a file path relative to the project directory, but got the absolute "
     "path '/etc/Containerfile'. Build only from files in the project (its snapshot is what the builder sees), e.g. "
     "Containerfile or docker/train.Containerfile."),
    ("build:\n  containerfile: Containerfile\n  context: /srv\n",
     "runyard.yml:5: build.context must be a directory relative to the project directory, but got the absolute path "
     "'/srv'. Build only from files in the project (its snapshot is what the builder sees), e.g. . or docker."),
    ("build:\n  containerfile: Containerfile\n  steps: [a]\n",
     "runyard.yml:5: build.steps cannot go with containerfile: the Containerfile is the whole build. Move the steps "
     "into it as RUN lines, or remove containerfile."),
    ("image: x\nbuild:\n  steps: [a]\n  context: ctx\n",
     "runyard.yml:6: build.context goes with a containerfile only; steps run on image: without a context. Remove "
     "context, or write a Containerfile that COPYs from it."),
    ("build: {}\n",
     "runyard.yml:3: build needs a containerfile or steps, but got neither. Write e.g. `build: Containerfile` or "
     "`build: {steps: [pip install -r requirements.txt]}`."),
    ("image: x\nbuild:\n  steps:\n    - \"pip install a\\npip install b\"\n",
     "runyard.yml:6: build.steps[0] must be one line, but got 'pip install a\\npip install b', which has a line break. "
     "Write each command as its own list item (each becomes one RUN line), or join them with &&."),
    ("image: x\nbuild:\n  steps: ['  ']\n",
     "runyard.yml:5: build.steps[0] must be a non-empty shell command, but it is empty. Remove the item or write the "
     "command."),
    ("build: [Containerfile]\n",
     "runyard.yml:3: build must be a Containerfile path, or a mapping with containerfile (and context) or steps, but "
     "got ['Containerfile']. Write e.g. `build: Containerfile`, `build: {containerfile: docker/Containerfile, "
     "context: .}` or `build: {steps: [pip install -r requirements.txt]}` (steps run on image:)."),
    ("build: {stpes: [a]}\nimage: x\n",
     "runyard.yml:3: unknown key build.stpes. Valid keys in build: containerfile, context, steps. Did you mean "
     "'steps'?"),
    ("distributed:\n  framework: pytorch\n  worker: {replicas: 2, image: '-x'}\n",
     "runyard.yml:5: distributed.worker.image must not start with '-', but got '-x': a container runtime would read "
     "it as an option of its own. Name an image, e.g. python:3.11-slim, ghcr.io/org/train:1.2, /images/train.sif or "
     "./images/train."),
])
def test_refusals_name_the_field_the_rule_and_the_fix(text: str, expected: str) -> None:
    message = _error(BASE + text)
    assert expected in message.splitlines(), message


def test_a_nul_in_the_image_is_refused_before_the_image_rule() -> None:
    message = _error(BASE + 'image: "py\\0thon"\n')
    assert message.startswith("runyard.yml:3: image holds a NUL character at character 2")


def test_text_no_part_of_runyard_can_hold_is_refused_first() -> None:
    message = _error(BASE + 'image: "\\ud800"\n')
    assert message.startswith("runyard.yml:3: image holds an unpaired surrogate '\\ud800' at character 0")
    message = _error(BASE + 'image: x\nbuild: {steps: ["pip install a\\0b"]}\n')
    assert message == ("runyard.yml:4: build.steps[0] holds a NUL character at character 13, which databases cannot "
                       "store. Remove it: a command line cannot carry NUL characters (a program's arguments end at the "
                       "first one).")


def test_a_10k_image_is_shown_short() -> None:
    message = _error(BASE + f"image: {'x' * 10_000}\n")
    assert "runyard.yml:3: image must be at most 512 characters, but got 'xxxxxxxxxx" in message
    assert "...' (10000 characters). Use a shorter image name or path." in message
    assert len(message) < 400


def test_a_misplaced_build_key_points_at_build() -> None:
    message = _error(BASE + "containerfile: Containerfile\n")
    assert "'containerfile' belongs under build:." in message


def test_stored_configs_are_checked_too() -> None:
    with pytest.raises(SpecError, match="config: image must not start with '-'"):
        validate_config({"project": "p", "command": "x", "image": "--privileged"})
    with pytest.raises(SpecError, match="config: build.containerfile must stay inside the project directory"):
        validate_config({"project": "p", "command": "x", "build": {"containerfile": "../x"}})
