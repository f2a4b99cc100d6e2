"""The files flavor: a file or a directory kept as is, and loading gives the directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runyard import flavors
from runyard.errors import InvalidInput


def test_a_directory_is_copied_with_its_tree_and_modes(tmp_path: Path) -> None:
    src = tmp_path / "tok"
    (src / "sub").mkdir(parents=True)
    (src / "vocab.txt").write_text("a\nb\n")
    (src / "sub" / "merges.txt").write_text("x y")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    os.symlink(src / "sub", src / "linked-dir")  # not followed
    meta = flavors.save(src, tmp_path / "m")
    assert flavors.detect(src) == "files"
    assert meta.files == ("run.sh", "vocab.txt", "sub/merges.txt")
    assert meta.requirements == () and meta.signature is None
    out = flavors.load(tmp_path / "m")
    assert out == tmp_path / "m"
    assert (out / "sub" / "merges.txt").read_text() == "x y"
    assert os.access(out / "run.sh", os.X_OK)
    assert not (out / "linked-dir").exists()


def test_a_single_file_keeps_its_name(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01")
    meta = flavors.save(str(tmp_path / "weights.bin"), tmp_path / "m", requirements=["numpy"])
    assert meta.files == ("weights.bin",) and meta.requirements == ("numpy",)
    assert (flavors.load(tmp_path / "m") / "weights.bin").read_bytes() == b"\x00\x01"


def test_missing_empty_and_already_saved_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        flavors.save(tmp_path / "nope", tmp_path / "a", flavor="files")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="holds no files"):
        flavors.save(tmp_path / "empty", tmp_path / "b")
    (tmp_path / "f.txt").write_text("x")
    flavors.save(tmp_path / "f.txt", tmp_path / "saved")
    with pytest.raises(InvalidInput, match="already holds a runyard-model.json"):
        flavors.save(tmp_path / "saved", tmp_path / "c")


def test_a_file_listed_in_the_meta_but_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    flavors.save(tmp_path / "f.txt", tmp_path / "m")
    (tmp_path / "m" / "f.txt").unlink()
    with pytest.raises(InvalidInput, match="lists 'f.txt', which is not a file"):
        flavors.load(tmp_path / "m")
