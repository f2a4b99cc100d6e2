"""Ending: failed runs restart per ``max_restarts``; experiments whose search is exhausted and runs all ended finish."""

from __future__ import annotations

from typing import Any

from runyard.errors import InvalidState, RunyardError
from runyard.records.status import experiment_outcome
from runyard.scheduler._state import SchedulerState
from runyard.store import ACTIVE_STATUSES

__all__ = ["finish_experiments", "restart_failed"]


def restart_failed(state: SchedulerState, rows: list[dict[str, Any]]) -> bool:
    """Queue failed runs again (same id, attempt + 1) while ``max_restarts`` allows; ``rows`` shows them queued."""
    # Every failed run of a running experiment, however long ago it failed: after a long
    # outage a due restart must still happen, or the experiment would never finish.
    experiments = {e["id"]: e for e in state.running_experiments()}
    failed = [r for r in rows if r["status"] == "failed" and r["experiment_id"] in experiments]
    if not failed:
        return False
    changed = False
    for row in failed:
        exp = experiments.get(row["experiment_id"])
        if exp is None:
            continue
        spec = state.spec(exp)
        if row["attempt"] > spec.max_restarts:
            continue
        if row["engine_job_id"]:
            # Wait until the engine confirms the old attempt is gone.
            try:
                engine_state = state.backends.get(row["backend"]).poll([row["engine_job_id"]]).get(row["engine_job_id"])
            except RunyardError:
                continue
            if engine_state is not None and not engine_state.status.terminal:
                continue
        try:
            state.store.restart_run(row["id"], f"restarted after a failure (attempt {row['attempt'] + 1} of "
                                               f"{spec.max_restarts + 1})")
            changed = True
        except InvalidState:
            continue
        row.update(status="queued", attempt=row["attempt"] + 1, engine_job_id=None, ended_at=None)
        counts = exp["counts"]
        counts["failed"] = counts.get("failed", 0) - 1
        counts["queued"] = counts.get("queued", 0) + 1
    return changed


def finish_experiments(state: SchedulerState, rows: list[dict[str, Any]]) -> None:
    """End experiments whose search is exhausted, with no run active and no restart due (``experiment_outcome``)."""
    for exp in state.running_experiments():
        counts = exp["counts"]
        if any(counts.get(s, 0) for s in ACTIVE_STATUSES):
            continue
        spec = state.specs.get(exp["id"])
        search = state.searches.get(exp["id"])
        if spec is None or search is None:
            continue
        if not search.exhausted(state.history(exp["id"], spec)):
            continue
        if spec.max_restarts and any(
            r["attempt"] <= spec.max_restarts for r in rows if r["status"] == "failed" and r["experiment_id"] == exp["id"]
        ):
            continue  # a restart is still due
        _warn_metric_never_logged(state, exp["id"], spec, search)
        status, summary = experiment_outcome(counts)
        # Only a running experiment ends here: one a user canceled meanwhile stays canceled.
        state.store.set_experiment_status(exp["id"], status, summary, only_if="running")
        state.forget_experiment(exp["id"])


def _warn_metric_never_logged(state: SchedulerState, experiment_id: int, spec: Any, search: Any) -> None:
    """A search metric that no run logged is a mistake (a typo, a key logged under another name): say so."""
    metric = spec.search.metric
    if not metric:
        return
    rows = state.store.experiment_runs_brief(experiment_id, metric)
    if not rows or any(count for *_, count in rows):
        return
    from runyard.scheduler._missing_metric import experiment_warning

    text = experiment_warning(metric, spec)
    state.store.add_experiment_warning(experiment_id, text)
