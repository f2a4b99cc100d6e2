"""check_image: what an image value may be, and the message for what it may not (it reaches a runtime's argv)."""

from __future__ import annotations

import pytest

from runyard.containers import IMAGE_MAX, check_image, image_problem, is_image_id, is_path_image

HEX64 = "0123456789abcdef" * 4


@pytest.mark.parametrize("value", [
    "python",
    "python:3.11-slim",
    "library/python:3.11",
    "localhost/train:1",
    "localhost/runyard-build:0123456789abcdef",
    "localhost:5000/team/train:v2",
    "ghcr.io/org/x@sha256:" + HEX64,
    "ghcr.io/org/x:1.2@sha256:" + HEX64,
    "registry.example.com:443/a/b/c:latest",
    "Registry.Example.com/org/x:1",  # the host name is case-insensitive; only the path must be lowercase
    "[::1]:5000/x:1",
    "nvcr.io/nvidia/pytorch:24.05-py3",
    "a__b/c.d-e:TAG_1.x",
    "sha256:" + HEX64,
    "0123456789ab",  # a short image id
    HEX64,
    "/images/train.sif",
    "/images/train.sqsh",
    "/images/train",  # a directory image (Charliecloud)
    "./images/train.sqfs",
    "/images/trän.sif",  # non-ASCII is fine in a path
])
def test_accepted_values_come_back_as_they_are(value: str) -> None:
    assert check_image(value) == value
    assert image_problem(value)[0] is None


def test_paths_are_normalised() -> None:
    assert check_image("/images//train/./x.sif") == "/images/train/x.sif"
    assert check_image("./img//x/./y") == "./img/x/y"
    assert check_image("/images/train/") == "/images/train"


@pytest.mark.parametrize(("value", "needle"), [
    ("", "image must name an image, but it is empty. Name one, e.g. python:3.11-slim"),
    ("--privileged", "image must not start with '-', but got '--privileged': a container runtime would read it as an "
                     "option of its own."),
    ("-v/:/host", "must not start with '-'"),
    ("a b", "image must be one word without whitespace or control characters, but got 'a b', which holds whitespace "
            "at character 1. Remove it: the image is passed to the container runtime as one command-line argument"),
    ("python:3.11\n", "holds whitespace '\\n' at character 11"),
    ("x\x00", "holds a NUL character at character 1"),
    ("\ud800", "holds an unpaired surrogate '\\ud800' (not Unicode text) at character 0"),
    ("py\u202ethon", "holds a control or formatting character '\\u202e' at character 2"),
    ("py\x1bthon", "holds a control or formatting character '\\x1b' at character 2"),
    ("x" * 10_000, f"image must be at most {IMAGE_MAX} characters, but got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' "
                     "(10000 characters). Use a shorter image name or path."),
    ("Python:3.11", "image must have a lowercase repository path, but got 'Python:3.11'. Registries name repositories "
                    "in lowercase: write 'python:3.11'."),
    ("ghcr.io/Org/Train:1", "write 'ghcr.io/org/train:1'"),
    ("x@sha256:abc", "image must end in a digest sha256: and 64 lowercase hex digits after '@'"),
    ("x@md5:" + "a" * 32, "digest sha256:"),
    ("x@sha256:" + HEX64.upper(), "digest sha256:"),
    ("sha256:abc", "image must be sha256: followed by 64 lowercase hex digits, but got 'sha256:abc'"),
    ("https://ghcr.io/org/x", "must be a reference without a URL scheme"),
    ("docker://python:3.11", "must be a reference without a URL scheme"),
    ("ubuntu:", "image must be an image reference such as python:3.11-slim"),
    ("a:b:c", "must be an image reference"),
    ("x:" + "t" * 200, "must be an image reference"),  # a tag has at most 128 characters
    ("a" * 300 + ":1", "must have a repository name of at most 255 characters"),
    ("./../etc/x.sif", "image must be a path without '..' components"),
    ("/images/../../etc", "without '..'"),
    ("../x.sif", "image must be an absolute path or one starting with ./"),
    ("~/images/x.sif", "absolute path or one starting with ./"),
    ("train.sif", "image must be an absolute path or one starting with ./ for an image file, but got 'train.sif', "
                   "which reads as a registry reference."),
    ("images/train.sqsh", "Write ./images/train.sqsh for a file in the project"),
    ("/", "which is the whole file system"),
    ("./", "which is the whole working directory"),
])
def test_refused_values_name_the_problem_and_the_fix(value: str, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        check_image(value)
    message = str(info.value)
    assert message.startswith("image ")
    assert needle in message
    assert len(message) < 700  # a 10k value is shown shortened
    assert "\x00" not in message and "\ud800" not in message  # what cannot be printed is shown escaped


def test_a_non_string_is_refused() -> None:
    with pytest.raises(ValueError, match="image must be a string such as python:3.11-slim, but got int 3"):
        check_image(3)  # type: ignore[arg-type]


def test_kinds() -> None:
    assert is_path_image("/x.sif") and is_path_image("./x") and not is_path_image("python:3.11")
    assert is_image_id("sha256:" + HEX64) and is_image_id("0123456789ab") and not is_image_id("python")
    assert not is_image_id("0123456789a")  # 11 digits: shorter than any runtime's short id
