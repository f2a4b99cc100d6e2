"""Code run as it is, end to end on the local backend: scripts that never import Runyard.

Their metrics come from ``output_metrics:``, their files from ``outputs:``; a cancel reaches
them as KeyboardInterrupt; their thread pools follow ``resources.cpus``; a metric the search
reads but no run logs is said at once. One shared server (the session's), tiny scripts, few runs.
"""

from __future__ import annotations

import json

import pytest
from e2e_helpers import Yard, log_texts, wait_until

pytestmark = pytest.mark.slow

# A framework example's shape: argparse, prints per epoch, saves model.pt, no Runyard anywhere.
TRAIN_PY = """
import argparse
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--epochs", type=int, default=6)
args = parser.parse_args()
print(f"threads: {os.environ.get('OMP_NUM_THREADS')}", flush=True)
print(f"cores: {len(os.sched_getaffinity(0))} of {os.cpu_count()}", flush=True)
try:
    for epoch in range(1, args.epochs + 1):
        time.sleep(0.4 if args.x > 0.5 else 0.05)
        ppl = 100 * args.x + 10 / epoch
        print(f"| end of epoch {epoch:3d} | time: 0.1s | valid ppl {ppl:8.2f}", flush=True)
    with open("model.pt", "wb") as f:
        f.write(b"weights" * 100)
except KeyboardInterrupt:
    print("Exiting from training early", flush=True)
    with open("model.pt", "wb") as f:
        f.write(b"early" * 100)
"""

SWEEP_YML = """
project: e2e-unmod-{name}
command: python train.py --x {{x}}
params:
  x: {{uniform: [0.0, 1.0]}}
search:
  algorithm: tpe
  max_runs: 4
  parallel: 1
  metric: val_ppl
  mode: min
  seed: 7
early_stopping:
  algorithm: median
  n_startup_runs: 1
  n_warmup_steps: 1
  grace_period_s: 30
output_metrics:
  - 'end of epoch\\s+(?P<step>\\d+) .*valid ppl\\s+(?P<val_ppl>[\\d.]+)'
outputs: [model.pt, '!*.tmp']
resources:
  cpus: 1
"""


def test_a_sweep_of_an_unmodified_script_sorts_filters_drives_tpe_and_prunes(yard: Yard, make_project) -> None:
    project = make_project("sweep", SWEEP_YML.format(name="sweep"), TRAIN_PY)
    exp = yard.submit(project.path)
    ended = yard.wait_experiment(exp["id"], timeout_s=180)
    runs = yard.runs(exp["id"])
    assert len(runs) == 4, yard.describe(exp["id"])
    assert ended["warnings"] == [], ended["warnings"]  # the metric arrived: TPE learned from it
    for r in runs:
        assert r["metrics"]["val_ppl"]["count"] >= 1, yard.describe(exp["id"])
        texts = log_texts(yard.client, r["id"])
        assert "threads: 1" in texts  # OMP_NUM_THREADS follows cpus
        cores = next(t for t in texts if t.startswith("cores: "))
        assert cores.startswith("cores: 1 of"), cores  # pinned to one core by the local agent
    succeeded = [r for r in runs if r["status"] == "succeeded"]
    pruned = [r for r in runs if r["status"] == "pruned"]
    assert succeeded and pruned, yard.describe(exp["id"])
    for r in succeeded:
        assert r["metrics"]["val_ppl"]["count"] == 6
        assert r["metrics"]["val_ppl"]["last"] == pytest.approx(100 * r["params"]["x"] + 10 / 6, abs=0.01)
    for r in pruned:
        wait_until(lambda r=r: yard.client.get_run(r["id"])["tasks"][0]["status"] == "pruned", 30,
                   "the runner to report the pruned task")
        r = yard.client.get_run(r["id"])
        # The script ignores should_stop(): it was stopped at its next metric, not 30 s later, and the run's
        # duration lasts until its task ended (not only until the decision).
        assert r["ended_at"] - r["started_at"] < 20, yard.describe(exp["id"])
        assert r["ended_at"] >= r["tasks"][0]["ended_at"] - 0.001
        texts = log_texts(yard.client, r["id"])
        assert any(t.startswith("[runyard] the run was pruned by the early-stopping rule") for t in texts), texts
        assert "Exiting from training early" in texts  # SIGINT: the script's own except KeyboardInterrupt ran

    # Sorted and filtered on the metric read from the output, like an SDK metric.
    res = yard.cli("ls", "--project", "e2e-unmod-sweep", "--sort", "metrics.val_ppl.last asc", "--json")
    assert res.returncode == 0, res.stderr
    listed = [r["id"] for r in json.loads(res.stdout)["items"] if r["status"] == "succeeded"]
    by_value = sorted(succeeded, key=lambda r: r["metrics"]["val_ppl"]["last"])
    assert listed == [r["id"] for r in by_value]
    cut = by_value[0]["metrics"]["val_ppl"]["last"] + 0.001
    res = yard.cli("ls", "--project", "e2e-unmod-sweep", "--filter", f"metrics.val_ppl.last < {cut}", "--json")
    assert [r["id"] for r in json.loads(res.stdout)["items"]] == [by_value[0]["id"]]

    # outputs: model.pt kept for succeeded and pruned runs; `runyard download` fetches it.
    best = by_value[0]
    assert "[runyard] outputs kept: model.pt (700 B); 1 file, 700 B" in log_texts(yard.client, best["id"])
    res = yard.cli("download", str(best["id"]), "-o", str(project.out / "dl"))
    assert res.returncode == 0, res.stderr
    assert (project.out / "dl" / "model.pt").read_bytes() == b"weights" * 100
    for r in pruned:
        assert [a["path"] for a in yard.client.list_artifacts(r["id"])] == ["model.pt"]


FAILING_PY = """
open("model.pt", "wb").write(b"partial")
raise SystemExit("diverged")
"""

CANCEL_PY = """
import time
open("model.pt", "wb").write(b"first")
print("ready", flush=True)
try:
    time.sleep(120)
except KeyboardInterrupt:
    print("cleanup: saving the best model", flush=True)
    open("model.pt", "wb").write(b"best")
"""

ONE_YML = """
project: e2e-unmod-{name}
command: python train.py
outputs: model.pt
resources:
  cpus: 1
"""


def test_outputs_are_kept_for_failed_and_canceled_runs_and_cancel_is_a_keyboard_interrupt(yard: Yard,
                                                                                           make_project) -> None:
    failing = make_project("failing", ONE_YML.format(name="failing"), FAILING_PY)
    canceled = make_project("canceled", ONE_YML.format(name="canceled"), CANCEL_PY)
    exp_failed = yard.submit(failing.path)
    exp_canceled = yard.submit(canceled.path)
    [run_c] = wait_until(lambda: yard.runs(exp_canceled["id"]) or None, 60, "the run")
    wait_until(lambda: "ready" in log_texts(yard.client, run_c["id"]), 60, "the script to start")
    res = yard.cli("cancel", str(run_c["id"]))
    assert res.returncode == 0, res.stderr
    yard.wait_experiment(exp_failed["id"])
    yard.wait_experiment(exp_canceled["id"])

    [run_f] = yard.runs(exp_failed["id"])
    assert run_f["status"] == "failed"
    assert [a["path"] for a in yard.client.list_artifacts(run_f["id"])] == ["model.pt"]

    def kept() -> list[str] | None:
        texts = log_texts(yard.client, run_c["id"])
        return texts if any(t.startswith("[runyard] outputs kept") for t in texts) else None

    texts = wait_until(kept, 30, "the canceled run's outputs")
    assert "cleanup: saving the best model" in texts
    assert any(t.startswith("[runyard] the run was canceled by a user: sending SIGINT") for t in texts), texts
    assert not any("canceled by the backend" in t for t in texts)
    res = yard.cli("download", str(run_c["id"]), "model.pt", "-o", str(canceled.out))
    assert res.returncode == 0, res.stderr
    assert (canceled.out / "model.pt").read_bytes() == b"best"


SILENT_YML = """
project: e2e-unmod-silent
command: python train.py
params:
  x: {uniform: [0.0, 1.0]}
search:
  algorithm: tpe
  max_runs: 3
  parallel: 1
  metric: val_loss
output_metrics: ['valid loss (?P<valid_loss>[\\d.]+)']
resources:
  cpus: 1
"""

SILENT_PY = """
import time
print("valid loss 0.5", flush=True)  # the pattern names it valid_loss; the search reads val_loss
time.sleep(1.0)
"""


def test_a_metric_that_never_arrives_is_said_at_once(yard: Yard, make_project, page) -> None:  # noqa: ANN001
    project = make_project("silent", SILENT_YML, SILENT_PY)
    exp = yard.submit(project.path)
    warning = ("metric val_loss was never logged by any run: the tpe search is behaving as random search "
               "and there is no best run")

    def warned() -> dict | None:
        e = yard.client.get_experiment(exp["id"])
        return e if e["warnings"] else None

    seen = wait_until(warned, 60, "the experiment's warning")
    assert seen["warnings"] == [warning]
    assert seen["status"] == "running"  # said while it runs, not only at the end
    first = yard.runs(exp["id"])[0]
    assert first["tags"]["runyard.warning"] == "metric val_loss never logged"
    assert any(t.startswith("[runyard] warning: this run never logged metric val_loss")
               for t in log_texts(yard.client, first["id"]))
    # The experiment page opens with the warning as a banner (the page polls: it is there while the sweep runs).
    page.goto(f"{yard.url}/experiments/{exp['id']}")
    page.wait_for_selector('[data-testid="experiment-warnings"][role="alert"]', timeout=30_000)
    assert page.text_content('[data-testid="experiment-warning"]') == f"Warning: {warning}"
    res = yard.cli("follow", str(exp["id"]))
    assert f"Warning: {warning}." in res.stderr
