"""What every flavor shares: runyard-model.json read defensively, detection, signatures, missing libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression

from runyard import flavors
from runyard.errors import InvalidInput
from runyard.flavors import MissingLibrary


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 2.0, 4.0])
    flavors.save(model, tmp_path / "m")
    return tmp_path / "m"


def _edit_meta(directory: Path, **changes: object) -> None:
    path = directory / "runyard-model.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_an_unknown_flavor_in_the_meta_is_refused_naming_the_known_ones(saved: Path) -> None:
    _edit_meta(saved, flavor="pickle")
    with pytest.raises(InvalidInput, match="names the flavor 'pickle', which runyard does not know. "
                                           "Known flavors: sklearn, xgboost, pytorch, onnx, files"):
        flavors.load(saved)


@pytest.mark.parametrize(("changes", "match"), [
    ({"files": ["../../etc/passwd"]}, "not a plain path inside"),
    ({"files": ["/etc/passwd"]}, "not a plain path inside"),
    ({"files": ["runyard-model.json"]}, "not a plain path inside"),
    ({"files": ["a\x00b"]}, "NUL"),
    ({"files": []}, "non-empty list"),
    ({"files": ["missing.skops"]}, "which is not a file"),
    ({"runyard_model": 99}, "this runyard reads version 1"),
    ({"signature": {"inputs": [{"name": "\ud800", "type": "f"}]}}, "unpaired surrogate"),
    ({"signature": {"inputs": [{"name": "x", "shape": [2**60]}]}}, "dimensions are integers"),
    ({"signature": {"inputs": [], "extra": 1}}, "unknown keys"),
    ({"requirements": ["numpy; import os"]}, None),  # markers are text: accepted, never run
    ({"requirements": ["rm -rf /"]}, "not a pip requirement"),
    ({"details": [1]}, "'details' must be an object"),
])
def test_a_doctored_meta_is_refused_clearly(saved: Path, changes: dict, match: str | None) -> None:
    _edit_meta(saved, **changes)
    if match is None:
        flavors.read_meta(saved)
        return
    with pytest.raises(InvalidInput, match=match):
        flavors.load(saved)


def test_a_meta_that_is_not_json_or_too_big_or_missing_is_refused(saved: Path, tmp_path: Path) -> None:
    meta = saved / "runyard-model.json"
    meta.write_text('{"flavor": "skl')
    with pytest.raises(InvalidInput, match="is not valid JSON"):
        flavors.load(saved)
    meta.write_text(" " * (1024 * 1024 + 1))
    with pytest.raises(InvalidInput, match="larger than"):
        flavors.load(saved)
    meta.write_text("[]")
    with pytest.raises(InvalidInput, match="must hold a JSON object"):
        flavors.load(saved)
    meta.unlink()  # a directory a killed save left: the meta is written last, so it has none
    with pytest.raises(InvalidInput, match="holds no runyard-model.json"):
        flavors.load(saved)
    with pytest.raises(InvalidInput, match="is not a directory"):
        flavors.load(tmp_path / "nowhere")


def test_saving_never_mixes_files_into_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    with pytest.raises(InvalidInput, match="not empty"):
        flavors.save(LinearRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "d")
    assert (tmp_path / "d" / "x").read_text() == "x"  # the caller's files are never touched
    with pytest.raises(InvalidInput, match="it is a file"):
        flavors.save(LinearRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "d" / "x")


def test_detect_names_the_flavor_or_says_none_knows_the_object(tmp_path: Path) -> None:
    assert flavors.detect(LinearRegression()) == "sklearn"
    assert flavors.detect(torch.nn.Linear(1, 1)) == "pytorch"
    assert flavors.detect({"w": torch.zeros(1)}) == "pytorch"
    assert flavors.detect(tmp_path) == "files"
    with pytest.raises(InvalidInput, match=r"No model flavor knows a builtins\.int"):
        flavors.detect(3)
    with pytest.raises(InvalidInput, match="Unknown model flavor 'tensorflow'. Known flavors: sklearn, xgboost"):
        flavors.save(LinearRegression(), tmp_path / "m", flavor="tensorflow")


@pytest.mark.parametrize(("signature", "match"), [
    ("x", "A signature is an object"),
    ({"inputs": "x"}, "must be a list"),
    ({"inputs": [{"name": "x" * 300}]}, "longer than 256"),
    ({"inputs": [{"name": "x", "type": "f\x00"}]}, "NUL"),
    ({"inputs": [{"name": "x", "shape": [True]}]}, "dimensions are integers"),
    ({"outputs": [3]}, "must be an object"),
])
def test_a_bad_signature_is_refused_before_anything_is_written(signature: object, match: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=match):
        flavors.save(LinearRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "m", signature=signature)
    assert not (tmp_path / "m").exists()


def test_bad_requirements_are_refused(tmp_path: Path) -> None:
    model = LinearRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(InvalidInput, match="must be a list of pip requirement strings"):
        flavors.save(model, tmp_path / "m", requirements="numpy")
    with pytest.raises(InvalidInput, match="not a pip requirement"):
        flavors.save(model, tmp_path / "m", requirements=["numpy\n--index-url http://evil"])


def test_signatures_are_inferred_from_arrays_frames_tensors_and_their_collections() -> None:
    assert flavors.infer_signature(np.zeros((8, 28, 28), np.uint8)) == {
        "inputs": [{"name": None, "type": "uint8", "shape": [-1, 28, 28]}], "outputs": []}
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert [(s["name"], s["shape"]) for s in flavors.infer_signature(frame)["inputs"]] == [("a", [-1]), ("b", [-1])]
    assert flavors.infer_signature(frame)["inputs"][0]["type"] == "int64"
    tensors = flavors.infer_signature((torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64)), input_name="input")
    assert tensors["inputs"] == [{"name": "input_0", "type": "float32", "shape": [-1, 3]},
                                 {"name": "input_1", "type": "int64", "shape": [-1]}]
    named = flavors.infer_signature({"ids": np.zeros((1, 5), np.int32)})
    assert named["inputs"] == [{"name": "ids", "type": "int32", "shape": [-1, 5]}]
    assert flavors.infer_signature("free text") is None
    assert flavors.infer_signature([[1.0, 2.0], [3.0, 4.0]])["inputs"] == [{"name": None, "type": "float64", "shape": [-1, 2]}]
    assert flavors.infer_signature([[1, "a"], [2]]) is None  # ragged: no signature rather than a wrong one


@pytest.mark.parametrize(("flavor", "module", "pip"), [
    ("sklearn", "skops", "runyard[models]"),
    ("xgboost", "xgboost", "runyard[xgboost]"),
    ("pytorch", "torch", "pip install torch"),
    ("onnx", "onnxruntime", "runyard[models]"),
])
def test_a_missing_library_names_the_pip_install(flavor: str, module: str, pip: str, tmp_path: Path) -> None:
    """In a fresh process where importing the library fails as if it were not installed."""
    code = f"""
import sys
sys.modules[{module!r}] = None  # what Python does for a package that is absent: the import raises ImportError
from runyard import flavors
try:
    flavors.flavor_module({flavor!r}).save(object(), {str(tmp_path / 'm')!r})
except flavors.MissingLibrary as e:
    print(type(e).__name__, "|", e.message, "|", e.hint)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}).stdout
    assert out.startswith("MissingLibrary |"), out
    assert f"needs the Python package {module!r}" in out and pip in out
    assert issubclass(MissingLibrary, ImportError)


def test_an_option_the_flavor_does_not_take_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="The sklearn flavor takes no format= option"):
        flavors.save(LinearRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "m", format="export")


def test_the_public_surface_and_a_light_import() -> None:
    assert sorted(flavors.__all__) == ["FLAVORS", "META_FILE", "MissingLibrary", "ModelMeta", "check_requirements",
                                       "check_signature", "detect", "flavor_module", "infer_signature", "load",
                                       "read_meta", "save"]
    for name in flavors.FLAVORS:
        module = flavors.flavor_module(name)
        assert name == module.NAME and {"NAME", "load", "matches", "save"} <= set(module.__all__)
    code = ("import sys, json; from runyard import flavors; [flavors.flavor_module(f) for f in flavors.FLAVORS]; "
            "print(json.dumps(sorted(m for m in ('numpy', 'torch', 'sklearn', 'xgboost', 'onnx', 'onnxruntime', 'skops') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}).stdout
    assert json.loads(out) == []  # libraries load when a model is saved or loaded, not at import
