"""The distributed examples run with `runyard run`, as a user starts them: examples/ddp-digits and
examples/xgboost-dist, each with one param fixed (-p) so a single run trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dist_frameworks import require
from e2e_helpers import Yard, log_texts

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(("example", "module", "param", "n_tasks", "min_accuracy"), [
    ("ddp-digits", "torch", "lr=0.5", 2, 0.9),
    ("xgboost-dist", "xgboost", "max_depth=3", 3, 0.85),
])
def test_example_runs(yard: Yard, tmp_path: Path, example: str, module: str, param: str, n_tasks: int,
                      min_accuracy: float) -> None:
    require(module)
    project = shutil.copytree(EXAMPLES / example, tmp_path / example)
    res = yard.cli("run", project, "-p", param, "--wait", "--json", timeout_s=240)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    exp = yard.client.get_experiment(int(json.loads(res.stdout)["id"]))
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n".join(log_texts(yard.client, run["id"])[-30:])
    assert len(run["tasks"]) == n_tasks
    assert run["metrics"]["val/accuracy"]["last"] >= min_accuracy
