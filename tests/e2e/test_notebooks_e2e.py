"""Notebooks as parameterised runs, end to end: ``notebook:`` in runyard.yml, papermill on the local agent.

The notebooks do not import Runyard: the run's params reach their ``parameters`` cell, their
cells' output is the run's log, and the executed notebook and its HTML are the run's artifacts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import Yard, log_texts, wait_until

pytest.importorskip("papermill", reason="the notebooks extra (pip install 'runyard[notebooks]')")

pytestmark = pytest.mark.slow


def notebook(*cells: tuple[str, list[str]]) -> str:
    """A notebook's JSON with one code cell per ``(source, tags)``."""
    return json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": [{"cell_type": "code", "id": f"c{i}", "execution_count": None, "metadata": {"tags": tags},
                   "outputs": [], "source": src} for i, (src, tags) in enumerate(cells)],
    })


TRAIN = notebook(
    ("lr = 0.5\nlabel = 'default'", ["parameters"]),
    ("import time\nprint(f'training with lr={lr} label={label}', flush=True)\ntime.sleep(0.3)\n"
     "if lr > 3:\n    raise ValueError(f'lr {lr} is too large')\nprint('loss', 1 / lr)", []),
    ("{'scaled': lr * 10}", []),  # a result, shown as Out[...] in Jupyter
)

SWEEP_YML = """
project: e2e-notebook
notebook: train.ipynb
params:
  lr: [1, 2, 3, 4]
  label: sweep
search:
  parallel: 2
resources:
  cpus: 0.1
"""


def test_notebook_sweep_keeps_executed_notebooks_with_their_params(yard: Yard, make_project) -> None:
    project = make_project("nb-sweep", SWEEP_YML, "", **{"train.ipynb": TRAIN})
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=180)
    runs = {r["params"]["lr"]: r for r in yard.runs(exp["id"])}
    assert sorted(runs) == [1, 2, 3, 4], yard.describe(exp["id"])
    for lr, run in runs.items():
        # Every run, the failed one too, keeps its executed notebook and the HTML of it.
        paths = {a["path"] for a in yard.client.list_artifacts(run["id"])}
        assert {"notebook/train.ipynb", "notebook/train.html"} <= paths, (lr, paths)
        dest = project.out / f"run-{lr}"
        yard.client.download_artifact(run["id"], "notebook/train.ipynb", dest / "train.ipynb")
        executed = json.loads((dest / "train.ipynb").read_text())
        injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert injected and f"lr = {lr}" in "".join(injected[0]["source"]), injected
        # The cells' output is the run's log, as they print it.
        logs = log_texts(yard.client, run["id"])
        assert f"training with lr={lr} label=sweep" in logs, logs
        if lr <= 3:
            assert run["status"] == "succeeded", yard.describe(exp["id"])
            assert f"loss {1 / lr}" in logs
            assert f"{{'scaled': {lr * 10}}}" in logs  # results are outputs too
        else:
            # A cell that raises fails the run, and the run's message names the cell and the error.
            assert run["status"] == "failed", yard.describe(exp["id"])
            assert "the cell starting `import time` raised ValueError: lr 4 is too large" in run["status_message"], run["status_message"]
        yard.client.download_artifact(run["id"], "notebook/train.html", dest / "train.html")
        assert f"training with lr={lr} label=sweep" in (dest / "train.html").read_text()


LIVE = notebook(
    ("wait_for = ''", ["parameters"]),
    ("import os, time\nprint('first cell done', flush=True)", []),
    ("deadline = time.time() + 60\nwhile not os.path.exists(wait_for) and time.time() < deadline:\n"
     "    time.sleep(0.05)\nprint('second cell done')", []),
)


def test_cell_output_reaches_the_log_while_the_notebook_runs(yard: Yard, make_project, tmp_path: Path) -> None:
    go = tmp_path / "nb-live-out" / "go"  # in the project's E2E_OUT directory
    yml = f"project: e2e-notebook-live\nnotebook: live.ipynb\nparams:\n  wait_for: {json.dumps(str(go))}\n"
    make_project("nb-live", yml, "", **{"live.ipynb": LIVE})
    exp = yard.submit(tmp_path / "nb-live")
    run_id = wait_until(lambda: next(iter(yard.runs(exp["id"])), None), 60, "the run")["id"]
    wait_until(lambda: "first cell done" in log_texts(yard.client, run_id), 60, "the first cell's output")
    assert yard.client.get_run(run_id)["status"] == "running"  # streamed, not written at the end
    go.write_text("")
    run = yard.wait_run(run_id, timeout_s=60)
    assert run["status"] == "succeeded", run["status_message"]
    assert "second cell done" in log_texts(yard.client, run_id)


def test_a_notebook_without_parameters_cell_is_refused_at_submission(yard: Yard, make_project) -> None:
    plain = notebook(("lr = 0.5", []), ("print(lr)", []))
    project = make_project("nb-noparams", SWEEP_YML, "", **{"train.ipynb": plain})
    res = yard.cli("run", project.path, "--json")
    assert res.returncode != 0
    assert "has no cell tagged `parameters`" in res.stderr and "lr" in res.stderr, res.stderr
    assert "Tag the cell" in res.stderr


def test_a_missing_notebook_is_refused_at_submission(yard: Yard, make_project) -> None:
    project = make_project("nb-missing", SWEEP_YML, "")
    res = yard.cli("run", project.path, "--json")
    assert res.returncode != 0
    assert "train.ipynb does not exist" in res.stderr, res.stderr


def _module(args: list[str], cwd: Path, params: dict, *, hide: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m runyard.notebook`` as the runner starts it, outside any run; ``hide`` makes an import fail."""
    code = "import runpy, sys\n"
    if hide:
        code += f"sys.modules[{hide!r}] = None\n"
    code += "sys.argv = ['runyard.notebook', *sys.argv[1:]]\nrunpy.run_module('runyard.notebook', run_name='__main__')\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env["RUNYARD_PARAMS"] = json.dumps(params)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_compute_side_refuses_what_submission_cannot_see(tmp_path: Path) -> None:
    (tmp_path / "plain.ipynb").write_text(notebook(("lr = 0.5", []), ("print(lr)", [])))
    res = _module(["plain.ipynb"], tmp_path, {"lr": 2})
    assert res.returncode == 2
    assert "no cell tagged `parameters`" in res.stderr, res.stderr
    # papermill missing where the run executes: the fix is the extra.
    (tmp_path / "train.ipynb").write_text(TRAIN)
    res = _module(["train.ipynb"], tmp_path, {"lr": 2}, hide="papermill")
    assert res.returncode == 2
    assert "needs papermill" in res.stderr and "pip install 'runyard[notebooks]'" in res.stderr, res.stderr
    (tmp_path / "broken.ipynb").write_text("{not json")
    res = _module(["broken.ipynb"], tmp_path, {})
    assert res.returncode == 2 and "cannot be read as a notebook" in res.stderr, res.stderr


def test_outside_a_run_the_executed_notebook_lands_beside_it(tmp_path: Path) -> None:
    (tmp_path / "train.ipynb").write_text(TRAIN)
    res = _module(["train.ipynb"], tmp_path, {"lr": 2})
    assert res.returncode == 0, res.stderr
    assert "training with lr=2 label=default" in res.stdout
    assert (tmp_path / "train.out.ipynb").exists() and (tmp_path / "train.out.html").exists()


def test_submission_for_the_local_backend_needs_papermill_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runyard.errors import InvalidInput
    from runyard.notebook import check_submission

    (tmp_path / "train.ipynb").write_text(TRAIN)
    check_submission(tmp_path, "train.ipynb", ["lr"], local=True)  # all there: accepted
    monkeypatch.setitem(sys.modules, "papermill", None)  # as if it were not installed
    with pytest.raises(InvalidInput) as e:
        check_submission(tmp_path, "train.ipynb", ["lr"], local=True)
    assert "runs need papermill" in e.value.message and e.value.hint == "pip install 'runyard[notebooks]'"
    check_submission(tmp_path, "train.ipynb", ["lr"], local=False)  # another backend's machines may have it
    (tmp_path / "cells.ipynb").write_text('{"cells": 3}')
    with pytest.raises(InvalidInput, match="not a notebook"):
        check_submission(tmp_path, "cells.ipynb", [], local=False)
