"""The sklearn flavor with the real scikit-learn and skops: round trips, signatures, and files it refuses."""

from __future__ import annotations

import collections
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from runyard import flavors
from runyard.errors import InvalidInput
from runyard.flavors import sklearn as sk_flavor


def test_a_pipeline_round_trips_and_predicts_the_same(xy, tmp_path: Path) -> None:
    x, y = xy
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    meta = flavors.save(model, tmp_path / "m", input_example=x[:5])
    assert meta.flavor == "sklearn" and meta.format == "skops" and meta.files == ("model.skops",)
    assert meta.details["class"] == "sklearn.pipeline.Pipeline"
    assert any(r.startswith("scikit-learn==") for r in meta.requirements)
    assert any(r.startswith("skops==") for r in meta.requirements)
    assert meta.signature == {"inputs": [{"name": None, "type": "float64", "shape": [-1, 4]}],
                              "outputs": [{"name": "prediction", "type": "int64", "shape": [-1]}]}
    on_disk = json.loads((tmp_path / "m" / "runyard-model.json").read_text())
    assert on_disk["flavor"] == "sklearn" and on_disk["library"] == "scikit-learn"
    loaded = flavors.load(tmp_path / "m")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_a_forest_needs_skops_untrusted_types_from_sklearn_and_loads(xy, tmp_path: Path) -> None:
    x, y = xy
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    flavors.save(model, tmp_path / "m")
    assert sio.get_untrusted_types(file=tmp_path / "m" / "model.skops")  # sklearn.tree._tree.Tree: on our allow-list
    np.testing.assert_array_equal(flavors.load(tmp_path / "m").predict(x), model.predict(x))


def test_a_dataframe_example_gives_named_typed_columns(xy, tmp_path: Path) -> None:
    x, y = xy
    frame = pd.DataFrame({"age": x[:, 0], "height": x[:, 1].astype(np.float32), "n": np.arange(60, dtype=np.int32),
                          "z": x[:, 3]})
    model = LogisticRegression().fit(frame, y)
    meta = flavors.save(model, tmp_path / "m", input_example=frame.head(3))
    assert meta.signature["inputs"] == [{"name": "age", "type": "float64", "shape": [-1]},
                                        {"name": "height", "type": "float32", "shape": [-1]},
                                        {"name": "n", "type": "int32", "shape": [-1]},
                                        {"name": "z", "type": "float64", "shape": [-1]}]
    np.testing.assert_array_equal(flavors.load(tmp_path / "m").predict(frame), model.predict(frame))


def test_a_given_signature_wins_and_requirements_are_added(xy, tmp_path: Path) -> None:
    x, y = xy
    model = LogisticRegression().fit(x, y)
    sig = {"inputs": [{"name": "x", "type": "float64", "shape": [-1, 4]}], "outputs": []}
    meta = flavors.save(model, tmp_path / "m", input_example=x[:2], signature=sig, requirements=["pandas>=2", "pandas>=2"])
    assert meta.signature == {"inputs": [{"name": "x", "type": "float64", "shape": [-1, 4]}], "outputs": []}
    assert meta.requirements[-1] == "pandas>=2" and meta.requirements.count("pandas>=2") == 1
    assert flavors.read_meta(tmp_path / "m") == meta


class Doubler:
    """A custom type a skops file can carry and the allow-list refuses."""

    def __init__(self) -> None:
        self.factor = 2


def _doctored_skops(tmp_path: Path, payload: object) -> Path:
    """A model directory whose model.skops holds ``payload`` (written by skops itself, as an attacker would)."""
    d = tmp_path / "evil"
    flavors.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), d)
    sio.dump(payload, d / "model.skops")
    return d


def test_a_skops_file_holding_os_system_is_refused_naming_the_type(tmp_path: Path) -> None:
    d = _doctored_skops(tmp_path, FunctionTransformer(os.system))
    with pytest.raises(InvalidInput, match=r"holds types runyard does not load.*posix\.system") as e:
        flavors.load(d)
    assert "trusted=" in e.value.hint


def test_a_skops_file_holding_a_custom_class_is_refused_unless_trusted(tmp_path: Path) -> None:
    d = _doctored_skops(tmp_path, {"model": Doubler()})
    name = f"{Doubler.__module__}.Doubler"
    with pytest.raises(InvalidInput, match=name.replace(".", r"\.")):
        flavors.load(d)
    loaded = sk_flavor.load(d, trusted=[name])  # the caller read the code and trusts it
    assert loaded["model"].factor == 2


def test_the_allow_list_keeps_file_and_code_parts_of_numpy_and_scipy_out() -> None:
    assert sk_flavor.refused_types(["numpy.load", "numpy.lib._npyio_impl.load", "scipy.io.loadmat", "numpy.f2py.run_main",
                                    "sklearn.tree._tree.Tree", "numpy.float64", "builtins.eval", "sklearnx.Evil",
                                    "numpy"]) == ["builtins.eval", "numpy", "numpy.f2py.run_main", "numpy.lib._npyio_impl.load",
                                                  "numpy.load", "scipy.io.loadmat", "sklearnx.Evil"]


def test_saving_a_model_that_could_not_be_loaded_back_fails_at_once(tmp_path: Path) -> None:
    model = FunctionTransformer(collections.OrderedDict)
    with pytest.raises(InvalidInput, match=r"loading will refuse.*collections\.OrderedDict"):
        flavors.save(model, tmp_path / "m", flavor="sklearn")
    assert not (tmp_path / "m").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="loading will refuse"):
        flavors.save(model, tmp_path / "empty", flavor="sklearn")
    assert (tmp_path / "empty").is_dir() and not list((tmp_path / "empty").iterdir())  # the caller's directory stays


def test_a_truncated_skops_file_is_refused_clearly(xy, tmp_path: Path) -> None:
    x, y = xy
    flavors.save(LogisticRegression().fit(x, y), tmp_path / "m")
    f = tmp_path / "m" / "model.skops"
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(InvalidInput, match="not a readable skops file"):
        flavors.load(tmp_path / "m")


def test_a_skops_file_with_a_damaged_schema_is_refused_clearly(xy, tmp_path: Path) -> None:
    x, y = xy
    flavors.save(LogisticRegression().fit(x, y), tmp_path / "m")
    f = tmp_path / "m" / "model.skops"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("schema.json", "{not json")
    with pytest.raises(InvalidInput, match="skops"):
        flavors.load(tmp_path / "m")


def test_an_unfitted_or_foreign_object_is_not_saved_as_sklearn(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="saves scikit-learn estimators"):
        flavors.save({"a": 1}, tmp_path / "m", flavor="sklearn")
