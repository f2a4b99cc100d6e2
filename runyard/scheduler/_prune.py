"""Pruning: runs with new values of the search metric are judged by their experiment's pruner."""

from __future__ import annotations

from runyard.errors import InvalidState, RunyardError
from runyard.scheduler._state import SchedulerState
from runyard.search.base import RunRecord, RunState
from runyard.store import ACTIVE_STATUSES

__all__ = ["is_prunable", "prune"]


def is_prunable(state: SchedulerState, run_id: int) -> bool:
    """Whether the run belongs to an experiment that stops runs early."""
    run = state.store.find_run(run_id)
    if run is None or run.experiment_id is None:
        return False
    try:
        exp = state.store.get_experiment(run.experiment_id)
        return state.spec({"id": exp.id, "config": exp.config}).early_stopping is not None
    except RunyardError:
        return False


def prune(state: SchedulerState) -> bool:
    """Judge the runs noted with new metrics; a stop decision marks the run ``pruned`` (true when one was).

    The SDK's should_stop() then turns true, and the runner stops the task after the
    grace period (the scheduler does not cancel a pruned run's job).
    """
    with state.dirty_lock:
        dirty, state.metrics_dirty = state.metrics_dirty, set()
    if not dirty:
        return False
    store = state.store
    changed = False
    experiments = {e["id"]: e for e in state.running_experiments()}
    by_experiment: dict[int, list[tuple[int, int, str, float | None, int]]] = {}
    for run_id in dirty:
        experiment_id = state.experiment_of.get(run_id)
        if experiment_id is None:
            run = store.find_run(run_id)
            if run is None or run.experiment_id is None:
                continue
            experiment_id = state.experiment_of[run_id] = run.experiment_id
        exp = experiments.get(experiment_id)
        if exp is None:
            continue
        spec = state.spec(exp)
        metric = spec.search.metric
        if spec.early_stopping is None or not metric:
            continue
        rows = by_experiment.get(exp["id"])
        if rows is None:  # one light read per experiment per pass, however many of its runs logged
            rows = by_experiment[exp["id"]] = store.experiment_runs_brief(exp["id"], metric)
        mine = next((r for r in rows if r[0] == run_id), None)
        if mine is None or mine[2] != "running" or not mine[4]:
            continue
        pruner = state.pruners.get(exp["id"])
        if pruner is None:
            from runyard.search.pruners import make_pruner

            settings = spec.early_stopping.model_dump(exclude={"algorithm", "grace_period_s"})
            pruner = make_pruner(spec.early_stopping.algorithm, settings, spec.search.mode)
            state.pruners[exp["id"]] = pruner
        params = state.params_of(exp["id"], [r[0] for r in rows])
        record = RunRecord(number=mine[1], params=dict(params[run_id]), state=RunState.ACTIVE,
                           intermediate=state.intermediate(run_id, metric, mine[4]))
        peers = []
        for peer_id, number, status, value, count in rows:
            if peer_id == run_id or not count:
                continue
            peer_state = {"succeeded": RunState.COMPLETE, "pruned": RunState.PRUNED}.get(
                status, RunState.ACTIVE if status in ACTIVE_STATUSES else RunState.FAILED)
            peers.append(RunRecord(number=number, params=dict(params[peer_id]), state=peer_state, value=value,
                                   intermediate=state.intermediate(peer_id, metric, count)))
        from runyard.search.base import Decision

        if pruner.decide(record, peers) is Decision.STOP:
            step = max(record.intermediate) if record.intermediate else 0
            try:
                store.set_run_status(run_id, "pruned", expect=["running"],
                                     message=f"stopped early by the {spec.early_stopping.algorithm} rule at step {step}",
                                     full=False)
                changed = True
            except InvalidState:
                pass
    return changed
