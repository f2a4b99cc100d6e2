"""The digits example from data to a model in production, end to end on the local backend.

Its data is pushed as a dataset (a second push of the same files makes no version and uploads nothing),
the sweep declares it in runyard.yml, every run stores its fitted model, the best run's model is
registered and ``production`` moved to it; a fresh process loads ``models:/…@production`` and
predicts, ``runyard lineage`` names the dataset version, the code snapshot and the params, and the
dataset version cannot be deleted while the model depends on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import Yard

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "e2e-digits-registry"


def _ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, f"exit {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def _digits_project(tmp_path: Path) -> Path:
    project = tmp_path / "digits-sweep"
    shutil.copytree(ROOT / "examples" / "digits-sweep", project, ignore=shutil.ignore_patterns("data", "__pycache__"))
    yml = (project / "runyard.yml").read_text()
    assert "datasets:" in yml and "train: digits" in yml, "the example declares its dataset"
    yml = yml.replace("project: digits", f"project: {PROJECT}").replace("max_runs: 12", "max_runs: 4")
    yml = yml.replace("command: python train.py", "command: python train.py --epochs 5 --epoch-seconds 0")
    (project / "runyard.yml").write_text(yml)
    return project


def test_digits_from_dataset_to_a_model_in_production(yard: Yard, tmp_path: Path) -> None:
    project = _digits_project(tmp_path)
    subprocess.run([sys.executable, "prepare_data.py"], cwd=project, check=True, capture_output=True)
    data = project / "data"

    first = json.loads(_ok(yard.cli("datasets", "push", data, "--name", "digits", "-p", PROJECT, "-m", "8x8 digits",
                                    "--json")))
    assert first["created"] and first["version"]["version"] == 1 and first["n_uploaded"] == 1
    again = json.loads(_ok(yard.cli("datasets", "push", data, "--name", "digits", "-p", PROJECT, "--json")))
    assert again["unchanged"] and not again["created"] and again["n_uploaded"] == 0 and again["bytes_uploaded"] == 0
    assert again["version"]["version"] == 1

    exp = yard.submit(project, "--wait")
    assert exp["status"] == "succeeded", yard.describe(exp["id"])
    runs = [r for r in yard.runs(exp["id"]) if r["status"] == "succeeded"]
    assert runs, yard.describe(exp["id"])
    for r in runs:  # every run read version 1, from the directory Runyard gave it
        used = yard.client.run_datasets(r["id"])
        assert [(u["name"], u["dataset"], u["version"]) for u in used] == [("train", "digits", 1)]
    best = max(runs, key=lambda r: r["metrics"]["val/accuracy"]["last"])

    registered = json.loads(_ok(yard.cli("models", "register", str(best["id"]), "models/digits", "--name", "digits",
                                         "-p", PROJECT, "--json")))
    assert registered["version"] == 1 and registered["flavor"] == "sklearn" and registered["run_id"] == best["id"]
    _ok(yard.cli("models", "alias", "digits", "production", "1", "-p", PROJECT))

    # A fresh process, with nothing but the server's address, loads the production model and predicts.
    script = (
        "import numpy as np, runyard\n"
        f"model = runyard.load_model('models:/{PROJECT}/digits@production')\n"
        f"with np.load({str(data / 'digits.npz')!r}) as d:\n"
        "    x, y = d['x'], d['y']\n"
        "print(float((model.predict(x) == y).mean()))\n"
    )
    env = {**os.environ, "RUNYARD_SERVER": yard.url, "RUNYARD_HOME": str(tmp_path / "fresh-home")}
    for var in ("RUNYARD_TOKEN", "RUNYARD_RUN_ID", "RUNYARD_PROJECT"):
        env.pop(var, None)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False)
    accuracy = float(_ok(res).strip().splitlines()[-1])
    assert accuracy > 0.8, res.stdout

    lineage = json.loads(_ok(yard.cli("lineage", f"models:/{PROJECT}/digits@production", "--json")))
    kinds = {n["kind"]: n for n in lineage["nodes"]}
    assert {"model_version", "run", "dataset_version", "snapshot"} <= set(kinds), lineage
    assert kinds["run"]["data"]["params"] == best["params"]
    assert kinds["snapshot"]["data"]["id"] == exp["snapshot_id"]
    text = _ok(yard.cli("lineage", f"models:/{PROJECT}/digits@production"))
    assert "digits:1" in text and exp["snapshot_id"][:12] in text and "lr" in text

    refused = yard.cli("datasets", "delete", "digits:1", "-p", PROJECT, "--force")
    assert refused.returncode != 0 and "digits" in refused.stderr + refused.stdout
    shown = json.loads(_ok(yard.cli("datasets", "show", "digits:1", "-p", PROJECT, "--json")))
    assert shown["version"] == 1 and shown["used_by_models"] == [{"project": PROJECT, "model": "digits", "version": 1}]
