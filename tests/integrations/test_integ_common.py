"""What the integrations share, without any framework: imports stay optional, params and metrics are made loggable."""

from __future__ import annotations

import enum
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from integration_helpers import points

import runyard
from runyard.integrations import MissingFramework
from runyard.integrations._common import RunRef, flatten_params, numeric_metrics, require

FRAMEWORKS = ("torch", "lightning", "pytorch_lightning", "transformers", "keras", "tensorflow", "xgboost", "lightgbm")


def test_importing_runyard_and_the_package_imports_no_framework() -> None:
    code = textwrap.dedent(f"""
        import sys
        import runyard, runyard.integrations
        runyard.log  # the SDK's facade
        loaded = sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(("module", "extra"), [("lightning", "lightning"), ("pytorch_lightning", "lightning"),
                                               ("transformers", "transformers"), ("keras", "keras"),
                                               ("xgboost", "xgboost"), ("lightgbm", "lightgbm")])
def test_an_integration_without_its_framework_names_the_extra(module, extra) -> None:
    # A fresh interpreter where the framework cannot be imported (as if not installed).
    hidden = {"lightning": "lightning", "pytorch_lightning": "pytorch_lightning"}.get(module, module)
    code = textwrap.dedent(f"""
        import sys
        sys.modules[{hidden!r}] = None
        try:
            import runyard.integrations.{module}
        except ImportError as e:
            from runyard.integrations import MissingFramework
            assert isinstance(e, MissingFramework), repr(e)
            print(e)
        else:
            raise SystemExit("imported")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"runyard.integrations.{module} needs" in res.stdout and "which is not installed" in res.stdout
    assert f"Hint: pip install 'runyard[{extra}]'" in res.stdout


def test_require_passes_on_the_error_of_a_framework_that_is_installed_but_broken(monkeypatch, tmp_path) -> None:
    (tmp_path / "brokenframework").mkdir()
    (tmp_path / "brokenframework" / "__init__.py").write_text("import a_dependency_it_lacks\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="a_dependency_it_lacks") as e:
        require("brokenframework", "x", "runyard.integrations.x")
    assert not isinstance(e.value, MissingFramework)


class Color(enum.Enum):
    RED = "red"


def test_params_are_flattened_and_made_json_like() -> None:
    flat = flatten_params({
        "lr": np.float32(0.5), "n": np.int64(3), "flag": np.bool_(True), "nested": {"a": {"b": 1}, "empty": {}},
        "nan": float("nan"), "inf": -math.inf, "huge": 2**70, "color": Color.RED, "cls": int, "list": (1, "a", None),
        "mixed": [1, {"x": 1}], "none": None,
    })
    assert flat == {"lr": 0.5, "n": 3, "flag": True, "nested.a.b": 1, "nested.empty": {}, "nan": "nan", "inf": "-inf",
                    "huge": str(2**70), "color": "red", "cls": "<class 'int'>", "list": [1, "a", None],
                    "mixed": [1, "{'x': 1}"], "none": None}


def test_only_numbers_become_metrics() -> None:
    metrics = numeric_metrics({"loss": 0.5, "n": 3, "np": np.float64(0.25), "arr": np.array(2.0), "vec": np.ones(2),
                               "flag": True, "name": "x", "bytes": b"1", "none": None}, prefix="train/")
    assert metrics == {"train/loss": 0.5, "train/n": 3.0, "train/np": 0.25, "train/arr": 2.0}


def test_bad_params_are_reported_and_skipped_and_the_runs_own_values_win(server, client, capsys) -> None:
    run = runyard.init(project="integ-common", params={"lr": 0.1, "epochs": 3})
    ref = RunRef(None, None, "", "runyard.integrations.test")
    ref.log_params({"lr": 0.2, "epochs": 3.0, "ok": "fine", "nul\x00key": 1, "bad": "text\x00with nul",
                    "lone": "\ud800", "line\nbreak": 2, "": 3, "k" * 300: 4})
    ref.log({"loss": 1.0, "nul\x00metric": 2.0}, step=7)
    runyard.finish()
    record = client.get_run(run.id)
    assert record["params"] == {"lr": 0.1, "epochs": 3, "ok": "fine"}
    err = capsys.readouterr().err
    assert "runyard.integrations.test: param 'lr' is 0.2 in training but 0.1 in run" in err
    assert "the run keeps 0.1 (a param cannot change once recorded)" in err
    assert "param 'epochs'" not in err  # 3.0 is 3
    for name in ("'nul\\x00key'", "'bad'", "'lone'", "'line\\nbreak'", "''", repr("k" * 80)):
        assert f"runyard.integrations.test: param {name} is not recorded" in err, name
    assert points(client, run.id, "loss") == [(7, 1.0)]


def test_a_run_that_is_not_a_run_is_refused() -> None:
    with pytest.raises(TypeError, match=r"run= takes a runyard.Run \(from runyard.init\(\)\), but got str"):
        RunRef("run-1", None, "", "runyard.integrations.test")  # type: ignore[arg-type]


def test_without_a_run_nothing_is_started_to_ask_should_stop(server, client) -> None:
    ref = RunRef(None, "integ-common", "lazy", "runyard.integrations.test")
    assert ref.should_stop() is False and ref.peek() is None and runyard.active_run() is None
    ref.log({"x": 1.0}, step=0)  # the first point starts the run, which becomes the active run
    run = runyard.active_run()
    assert run is not None and ref.peek() is run
    runyard.finish()
    assert client.get_run(run.id)["name"] == "lazy"
