"""build_key: a build is reused until something it depends on changes; BuildSpec and containerfile_text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runyard.containers import BuildSpec, build_key, built_image_ref, containerfile_text, copy_sources

CONTAINERFILE = """\
FROM python:3.11-slim
WORKDIR /opt/app
COPY requirements.txt /opt/app/
RUN pip install -r requirements.txt
COPY src/ /opt/app/src/
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Containerfile").write_text(CONTAINERFILE)
    (tmp_path / "requirements.txt").write_text("numpy==2.0.0\n")
    (tmp_path / "train.py").write_text("print('train')\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("W = 1\n")
    return tmp_path


def _key(project: Path, text: str = CONTAINERFILE, **kw: object) -> str:
    return build_key(text, project, runtime=kw.pop("runtime", "podman"), **kw)  # type: ignore[arg-type]


def test_the_key_is_16_hex_digits_and_stable(project: Path) -> None:
    key = _key(project)
    assert len(key) == 16 and int(key, 16) >= 0
    assert _key(project) == key
    assert built_image_ref(key) == f"localhost/runyard-build:{key}"


def test_the_key_is_the_same_in_a_fresh_process(project: Path) -> None:
    # Nothing process-local (hash seeds, dict order, inode numbers) enters the key.
    code = ("import sys; from pathlib import Path; from runyard.containers import build_key; "
            "print(build_key(Path(sys.argv[1], 'Containerfile').read_text(), Path(sys.argv[1]), runtime='podman'))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(project)], capture_output=True, text=True, check=True,
                         env=env, timeout=60)
    assert out.stdout.strip() == _key(project)


def test_editing_code_the_image_does_not_copy_does_not_rebuild(project: Path) -> None:
    key = _key(project)
    (project / "train.py").write_text("print('changed')\n")
    (project / "notes.md").write_text("new file\n")
    assert _key(project) == key


def test_editing_a_copied_file_rebuilds(project: Path) -> None:
    key = _key(project)
    (project / "requirements.txt").write_text("numpy==2.1.0\n")
    changed = _key(project)
    assert changed != key
    (project / "requirements.txt").write_text("numpy==2.0.0\n")
    assert _key(project) == key  # back as it was: the same key, the old image is reused


def test_a_file_added_to_a_copied_directory_rebuilds(project: Path) -> None:
    key = _key(project)
    (project / "src" / "extra.py").write_text("X = 2\n")
    assert _key(project) != key


def test_the_executable_bit_of_a_copied_file_counts(project: Path) -> None:
    key = _key(project)
    (project / "requirements.txt").chmod(0o755)
    assert _key(project) != key


def test_the_containerfile_runtime_and_options_count(project: Path) -> None:
    key = _key(project)
    assert _key(project, CONTAINERFILE + "RUN echo hi\n") != key
    assert _key(project, runtime="docker") != key
    assert _key(project, build_options=["--build-arg", "X=1"]) != key
    assert _key(project, build_options=["--build-arg", "X=1"]) == _key(project, build_options=("--build-arg", "X=1"))


def test_globs_missing_sources_and_symlinks(project: Path) -> None:
    text = "FROM x\nCOPY *.txt /a/\nCOPY missing.cfg /b/\n"
    key = _key(project, text)
    (project / "extra.txt").write_text("1")
    assert _key(project, text) != key  # a new match of the glob
    key = _key(project, text)
    (project / "missing.cfg").write_text("now here")
    assert _key(project, text) != key  # a source that appears
    target = project / "real.txt"
    target.write_text("v1")
    (project / "link.txt").symlink_to("real.txt")
    key = _key(project, text)
    target.write_text("v2")
    assert _key(project, text) != key  # a copied symlink's target counts


def test_globs_match_dotfiles_as_the_builders_do(project: Path) -> None:
    # Python's glob skips dotfiles; the builders' Go filepath.Match does not: a copied .env must count.
    text = "FROM x\nCOPY *.env conf/[^x]*.cfg /a/\n"
    (project / "conf").mkdir()
    key = _key(project, text)
    (project / ".env").write_text("A=1")
    assert _key(project, text) != key
    key = _key(project, text)
    (project / "conf" / "x.cfg").write_text("excluded by [^x]")
    assert _key(project, text) == key
    (project / "conf" / "y.cfg").write_text("matched")
    assert _key(project, text) != key


def test_a_symlink_inside_a_copied_directory_counts_as_a_link(project: Path) -> None:
    # Not followed: it may point outside the context (or at itself), and COPY copies it as a link.
    (project / "src" / "loop").symlink_to("../src")
    key = _key(project)
    (project / "src" / "loop").unlink()
    (project / "src" / "loop").symlink_to("/etc")
    assert _key(project) != key


@pytest.mark.parametrize(("text", "sources"), [
    ("FROM x\nCOPY a b /dst/\n", [["a", "b"]]),
    ("FROM x\nADD --chown=1:1 --chmod=644 a /dst\n", [["a"]]),
    ("FROM x\nCOPY --from=builder /out /dst\n", []),  # another stage: nothing from the context
    ("FROM x\nCOPY --from builder /out /dst\n", []),
    ('FROM x\nCOPY ["with space.txt", "b", "/dst/"]\n', [["with space.txt", "b"]]),
    ("FROM x\nADD https://example.com/a.tgz /opt/\nADD git@github.com:o/r.git /src\n", [[], []]),
    ("FROM x\ncopy \\\n  a \\\n  # a comment between continued lines\n  b /dst/\n", [["a", "b"]]),
    ("# escape=`\nFROM x\nCOPY a `\n  b /dst/\n", [["a", "b"]]),
    ("FROM x\nCOPY <<EOF /etc/conf\nline\nEOF\n", [[]]),
    ("FROM x\nRUN echo COPY a /b\n", []),
])
def test_copy_sources_parse(text: str, sources: list[list[str]]) -> None:
    assert copy_sources(text) == sources


def test_sources_outside_the_context_do_not_read_outside(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret").write_text("1")
    text = f"FROM x\nCOPY ../{outside.name}/secret /a\n"
    key = _key(project, text)
    (outside / "secret").write_text("2")
    assert _key(project, text) == key  # the builder refuses such a source; its content is never read


def test_build_spec_round_trips_and_checks() -> None:
    spec = BuildSpec(containerfile="docker/Containerfile", context="docker")
    assert spec.to_dict() == {"containerfile": "docker/Containerfile", "context": "docker"}
    assert BuildSpec.from_dict(spec.to_dict()) == spec
    assert BuildSpec.from_dict("Containerfile") == BuildSpec(containerfile="Containerfile")
    steps = BuildSpec(steps=("pip install x",))
    assert BuildSpec.from_dict(steps.to_dict()) == steps
    for kwargs, needle in [
        ({}, "build needs a containerfile or steps"),
        ({"containerfile": "C", "steps": ("a",)}, "not both"),
        ({"containerfile": "../C"}, "build.containerfile must stay inside the project directory"),
        ({"containerfile": "/etc/C"}, "build.containerfile must be a file path relative to the project directory"),
        ({"containerfile": "--file=/etc/C"}, "build.containerfile must not start with '-'"),
        ({"containerfile": "C", "context": "../x"}, "build.context must stay inside"),
        ({"steps": ("a", " ")}, "build.steps[1] must be a non-empty shell command"),
        ({"steps": ("a\nb",)}, "build.steps[0] must be one line"),
        ({"steps": ("a\x00",)}, "build.steps[0] must not hold a NUL character"),
    ]:
        with pytest.raises(ValueError, match=None) as info:
            BuildSpec(**kwargs)  # type: ignore[arg-type]
        assert needle in str(info.value), (kwargs, str(info.value))
    with pytest.raises(ValueError, match="unknown keys stpes"):
        BuildSpec.from_dict({"stpes": ["a"]})


def test_containerfile_text(project: Path) -> None:
    assert containerfile_text(BuildSpec(containerfile="Containerfile"), None, project) == CONTAINERFILE
    steps = BuildSpec(steps=("pip install -r requirements.txt", "python -c 'import numpy'"))
    assert containerfile_text(steps, "python:3.11-slim", project) == (
        "FROM python:3.11-slim\nRUN pip install -r requirements.txt\nRUN python -c 'import numpy'\n")
    with pytest.raises(ValueError, match="the Containerfile's FROM names the base; remove image:"):
        containerfile_text(BuildSpec(containerfile="Containerfile"), "python:3.11", project)
    with pytest.raises(ValueError, match="build.steps need image: as the base"):
        containerfile_text(steps, None, project)
    with pytest.raises(ValueError, match="need a reference such as python:3.11-slim as the base"):
        containerfile_text(steps, "/images/x.sif", project)
    with pytest.raises(ValueError, match="does not exist in the project directory"):
        containerfile_text(BuildSpec(containerfile="Nope"), None, project)
    (project / "Escape").symlink_to("/etc/hostname")
    with pytest.raises(ValueError, match="leads outside the project"):
        containerfile_text(BuildSpec(containerfile="Escape"), None, project)
