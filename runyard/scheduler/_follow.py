"""Following: poll the engines for dispatched runs, record outcomes runners could not report, stop jobs of ended runs."""

from __future__ import annotations

import logging
from typing import Any

from runyard.backends.base import EngineStatus
from runyard.errors import InvalidState, RunyardError
from runyard.scheduler._dispatch import engine_outcome
from runyard.scheduler._state import SchedulerState

__all__ = ["follow"]

log = logging.getLogger("runyard.scheduler")

_LOST_GRACE_S = 10.0  # a job the engine reports ended gets this long for its runner's own report
_FOLLOW_EVERY_S = 0.25  # engines are polled at most this often (runners report their runs' ends themselves)
_REQUEUE_AFTER_S = 5.0  # a run left starting without a job id this long was left by a crashed server


def follow(state: SchedulerState, all_rows: list[dict[str, Any]]) -> bool:
    """Poll engines for active runs (and runs canceled/failed in the last minutes); true when a run ended here.

    At most every ``_FOLLOW_EVERY_S``: runners report their own ends (and wake the
    scheduler), so polling on every wake-up (one per run that ends) would only cost.
    This is also the reconciliation after a restart: runs left starting/running by a
    previous server are followed by their stored job ids like any other.
    """
    store = state.store
    now = state.clock.time()
    if now - state.followed_at < _FOLLOW_EVERY_S:
        return False
    state.followed_at = now
    changed = False
    # Ended runs whose job may still run and must be stopped (a succeeded or pruned run's
    # job ends by itself: polling those, every pass for 10 minutes, would cost O(runs)).
    rows = [r for r in all_rows if r["status"] in ("starting", "running")
            or (r["status"] in ("canceled", "failed") and (r["ended_at"] or 0) > now - 600)]
    by_backend: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["engine_job_id"] and row["backend"]:
            by_backend.setdefault(row["backend"], []).append(row)
        elif row["status"] == "starting" and not row["engine_job_id"] and now - row["created_at"] > _REQUEUE_AFTER_S:
            # Left between compare-and-set and storing the job id by a crashed server: the
            # submit may or may not have reached the engine. Queue it again under the same
            # attempt: the next submit reuses the attempt's job id (the local backend's submit
            # is idempotent per attempt), where a new attempt would start a second copy.
            try:
                store.set_run_status(row["id"], "queued", expect=["starting"],
                                     message="requeued: the server stopped while submitting it", full=False)
                changed = True
            except InvalidState:
                pass
    for name, group in by_backend.items():
        try:
            backend = state.backends.get(name)
            states = backend.poll([r["engine_job_id"] for r in group])
        except RunyardError as e:
            log.warning("poll of backend %s failed: %s", name, e.message)
            continue
        for row in group:
            job = row["engine_job_id"]
            engine_state = states.get(job)
            if engine_state is None:
                continue
            if row["status"] in ("canceled", "pruned", "failed", "succeeded"):
                state.reasons.pop(job, None)
                if not engine_state.status.terminal and row["status"] in ("canceled", "failed"):
                    backend.cancel(job)  # the runner also stops it at its next heartbeat
                continue
            outcome = engine_outcome(engine_state)
            if outcome is None:
                state.ended_seen.pop(job, None)
                _note_reason(state, row["id"], job, engine_state.reason)
                continue
            state.reasons.pop(job, None)
            if engine_state.status is EngineStatus.LOST and engine_state.no_record and row["status"] == "starting":
                # It waited in a local agent that died: it never started (a started job has a
                # record, whose process a new agent adopts). Queue it again, same attempt.
                try:
                    store.set_run_status(row["id"], "queued", expect=["starting"],
                                         message="requeued: the local agent stopped before it started", full=False)
                    changed = True
                except InvalidState:
                    pass
                continue
            first = state.ended_seen.setdefault(job, now)
            if engine_state.status is not EngineStatus.LOST and now - first < _LOST_GRACE_S:
                continue  # give the runner time to report the status itself
            status, message = outcome
            try:
                store.set_run_status(row["id"], status, message=message, exit_code=engine_state.exit_code, full=False)
                changed = True
            except InvalidState:
                pass
            state.ended_seen.pop(job, None)
    return changed


def _note_reason(state: SchedulerState, run_id: int, job: str, reason: str) -> None:
    """Store the engine's reason ("pending: Resources") as the run's message when it changes.

    An empty reason (the job started) is not stored: the runner's running report clears
    the message (one write per run fewer).
    """
    if reason == state.reasons.get(job, ""):
        return
    if not reason:
        state.reasons.pop(job, None)
        return
    state.reasons[job] = reason
    try:
        state.store.set_run_message(run_id, reason, statuses=["starting", "running"])
    except RunyardError as e:
        log.warning("run %s: storing the engine's reason failed: %s", run_id, e.message)
