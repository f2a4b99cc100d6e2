"""The xgboost flavor with the real XGBoost: each class round-trips through its JSON format, damaged files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from runyard import flavors
from runyard.errors import InvalidInput


@pytest.mark.parametrize("cls", [xgb.XGBClassifier, xgb.XGBRegressor, xgb.XGBRFClassifier])
def test_an_estimator_loads_back_into_its_own_class(cls, xy, tmp_path: Path) -> None:
    x, y = xy
    model = cls(n_estimators=4, max_depth=2).fit(x, y)
    meta = flavors.save(model, tmp_path / "m", input_example=x[:3])
    assert flavors.detect(model) == "xgboost"  # before sklearn: the wrappers are scikit-learn estimators too
    assert meta.format == "json" and meta.files == ("model.json",) and meta.details == {"class": cls.__name__}
    assert any(r.startswith("xgboost==") for r in meta.requirements)
    assert meta.signature["inputs"] == [{"name": None, "type": "float64", "shape": [-1, 4]}]
    assert meta.signature["outputs"][0]["name"] == "prediction"
    json.loads((tmp_path / "m" / "model.json").read_text())  # XGBoost's JSON, readable by anyone
    loaded = flavors.load(tmp_path / "m")
    assert type(loaded) is cls
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_booster_round_trips(xy, tmp_path: Path) -> None:
    x, y = xy
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=y), num_boost_round=3)
    meta = flavors.save(booster, tmp_path / "m", input_example=x[:2])
    assert meta.details == {"class": "Booster"}
    assert meta.signature["outputs"] == [{"name": "prediction", "type": "float32", "shape": [-1]}]
    loaded = flavors.load(tmp_path / "m")
    assert isinstance(loaded, xgb.Booster)
    np.testing.assert_array_equal(loaded.predict(xgb.DMatrix(x)), booster.predict(xgb.DMatrix(x)))


def test_a_truncated_model_json_is_refused_clearly(xy, tmp_path: Path) -> None:
    x, y = xy
    flavors.save(xgb.XGBClassifier(n_estimators=2).fit(x, y), tmp_path / "m")
    f = tmp_path / "m" / "model.json"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(InvalidInput, match="could not be loaded by XGBoost") as e:
        flavors.load(tmp_path / "m")
    assert "truncated" in e.value.hint


def test_a_class_name_outside_the_fixed_list_is_never_imported(xy, tmp_path: Path) -> None:
    x, y = xy
    flavors.save(xgb.XGBRegressor(n_estimators=2).fit(x, y), tmp_path / "m")
    meta_file = tmp_path / "m" / "runyard-model.json"
    data = json.loads(meta_file.read_text())
    data["details"]["class"] = "os.system"
    meta_file.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match=r"names the class 'os\.system'"):
        flavors.load(tmp_path / "m")


def test_an_unfitted_estimator_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Fit the model|Cannot save"):
        flavors.save(xgb.XGBClassifier(), tmp_path / "m")
