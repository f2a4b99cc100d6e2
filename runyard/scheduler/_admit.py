"""Admitting: queued runs go, in submission order and within ``parallel``, to their backend (of several: the first with room)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from runyard import _failpoints
from runyard.backends.base import Backend, Resources
from runyard.errors import InvalidState, NotFound, RunyardError
from runyard.scheduler import _hooks
from runyard.scheduler._dispatch import Unavailable, backend_names, build_launch, infeasible, run_resources, waiting_reason
from runyard.scheduler._state import SchedulerState

__all__ = ["admit", "queue_cap"]

log = logging.getLogger("runyard.scheduler")

# A backend that queues runs itself (the local agent: LocalBackend.can_queue) holds up to this many
# of an experiment's runs beyond its `parallel` (or `parallel` more, if larger); it starts at most
# `parallel` at once, and the next one the moment a slot frees, without a round trip through the
# server. Deep enough that short runs do not drain it between two passes (~60 ms apart when busy).
_QUEUE_AHEAD_MIN = 14


def queue_cap(parallel: int) -> int:
    """How many runs of an experiment a backend that queues may hold (running and waiting)."""
    return parallel + max(_QUEUE_AHEAD_MIN, parallel)


def admit(state: SchedulerState, rows: list[dict[str, Any]]) -> bool:
    """Dispatch the queued runs in ``rows`` that fit: compare-and-set queued → starting, then submit.

    The compare-and-set means two schedulers never dispatch one run. ``rows`` is updated
    with what happened (starting with its job id, or unknown when another took it).
    """
    queued = sorted((r for r in rows if r["status"] == "queued"), key=lambda r: r["id"])
    if not queued:
        return False
    store = state.store
    changed = False
    # A run proposed for an experiment canceled after this round's read is never queued
    # (create_queued_runs checks the experiment in its transaction), and a queued run the
    # cancel reached fails the compare-and-set below.
    experiments = {e["id"]: e for e in state.running_experiments()}
    active_by_exp: dict[int, int] = {}
    for row in rows:
        if row["status"] in ("starting", "running"):
            active_by_exp[row["experiment_id"]] = active_by_exp.get(row["experiment_id"], 0) + 1
    free_by_backend: dict[str, Resources | None] = {}  # one capacity() per backend and pass
    blocked_backends: dict[str, int] = {}  # backend -> the waiting run that holds later ones back
    never: dict[tuple[int, str], str] = {}  # (experiment, backend) -> why its runs can never start there
    waiting: dict[int, str] = {}  # run id -> why it waits (stored as its message when it changes)
    picked: list[tuple[dict[str, Any], dict[str, Any], Any, Any, str, int | None]] = []
    for row in queued:
        exp = experiments.get(row["experiment_id"])
        if exp is None:
            changed |= _cancel_left_behind(state, row)
            continue
        spec = state.spec(exp)
        parallel = spec.search.parallel
        active = active_by_exp.get(exp["id"], 0)
        if active >= queue_cap(parallel):
            waiting[row["id"]] = f"pending: {parallel} of {parallel} slots busy"
            continue
        names = backend_names(spec)
        if len(names) > 1:
            if active >= parallel:
                waiting[row["id"]] = f"pending: {active} of {parallel} slots busy"
                continue
            fit = [n for n in names if not _never(state, exp["id"], n, spec, never)]
            if not fit:
                state.fail(row["id"], "it can never start: " + "; ".join(never[(exp["id"], n)] for n in names))
                changed = True
                continue
            placed = _place(state, row, spec, fit, free_by_backend, blocked_backends)
            if placed is None:
                waiting[row["id"]] = _why_waiting(state, row["id"], spec, fit, free_by_backend, blocked_backends)
                continue
            name, backend = placed
            at_most = None
        else:
            name = names[0]
            try:
                backend = state.backends.get(name)
            except RunyardError as e:
                state.fail(row["id"], f"backend {name!r} unavailable: {e.message}")
                continue
            # A run that can never fit its backend (asked for more than any node has, e.g. after the
            # backend's entry changed) fails here rather than waiting forever and holding later runs back.
            why = _never(state, exp["id"], name, spec, never)
            if why:
                state.fail(row["id"], f"it can never start: {why}")
                changed = True
                continue
            if name in blocked_backends:
                waiting[row["id"]] = _why_waiting(state, row["id"], spec, [name], free_by_backend, blocked_backends)
                continue
            at_most = parallel if _hooks.queues(backend, spec) else None
            if at_most is None:
                if active >= parallel:
                    waiting[row["id"]] = f"pending: {active} of {parallel} slots busy"
                    continue
                if not _take_room(backend, name, run_resources(spec, backend), free_by_backend):
                    blocked_backends[name] = row["id"]  # keep submission order: nothing later jumps the queue
                    waiting[row["id"]] = waiting_reason(run_resources(spec, backend), free_by_backend.get(name))
                    continue
        active_by_exp[exp["id"]] = active + 1
        picked.append((row, exp, spec, backend, name, at_most))
    _note_waiting(state, queued, waiting)
    if not picked:
        return changed
    # One transaction claims them all: queued → starting (a compare-and-set, so two servers
    # never start one run) and each attempt's run token (RUNYARD_TOKEN in its environment; it
    # reaches only that run, and is minted in local mode too, so runs keep reporting when the
    # server later gets users). The backends get them, and one more transaction records their
    # job ids; a crash in between leaves runs starting without a job id, which follow() queues
    # again under the same attempt.
    tokens = store.claim_runs([(row["id"], row["attempt"]) for row, *_ in picked])
    jobs: list[tuple[int, str, str]] = []
    for row, exp, spec, backend, name, at_most in picked:
        run_id = row["id"]
        token = tokens.get(run_id)
        if token is None:
            row["status"] = "unknown"  # canceled meanwhile, or another scheduler took it: next round's read tells
            continue
        row["status"] = "starting"
        counts = exp["counts"]
        counts["queued"] = counts.get("queued", 0) - 1
        counts["starting"] = counts.get("starting", 0) + 1
        params = state.params_of(exp["id"], [run_id])[run_id]
        launch = build_launch(spec, {"id": run_id, "attempt": row["attempt"], "params": params}, exp,
                              server_url=state.server_url, token=token,
                              datasets=_datasets_of(state, run_id) if spec.datasets else ())
        try:
            job_id = _hooks.submit(backend, launch, at_most)
        except RunyardError as e:
            state.fail(run_id, f"submit to backend {name!r} failed: {e.message}")
            continue
        jobs.append((run_id, job_id, name))
        row["engine_job_id"], row["backend"] = job_id, name
    _failpoints.pause("scheduler.before_recording_jobs")  # the crash tests' window: jobs started, ids not stored
    store.set_engine_jobs(jobs)
    return True


def _take_room(backend: Backend, name: str, need: Resources, free_by_backend: dict[str, Resources | None]) -> bool:
    """Whether ``need`` fits in what ``backend`` has free this pass (capacity None: the engine queues,
    so it always fits); when it does, it is taken off. One capacity() per backend and pass."""
    if name not in free_by_backend:
        try:
            free_by_backend[name] = backend.capacity()
        except RunyardError as e:  # the engine did not answer: nothing goes to it this pass, and runs say why
            log.warning("backend %s: capacity unknown, submitting nothing to it this pass: %s", name, e.message)
            free_by_backend[name] = Unavailable(0.0, 0, 0, why=e.message)
    free = free_by_backend[name]
    if free is None:
        return True
    if isinstance(free, Unavailable):
        return False
    if not need.fits_in(free):
        return False
    free_by_backend[name] = free - need
    return True


def _never(state: SchedulerState, exp_id: int, name: str, spec: Any, never: dict[tuple[int, str], str]) -> str:
    """Why runs of the experiment can never start on backend ``name`` (``""``: they may); once per pass and pair."""
    key = (exp_id, name)
    if key not in never:
        try:
            backend = state.backends.get(name)
        except RunyardError:
            never[key] = ""  # unavailable is not "never": the caller reports it
        else:
            never[key] = infeasible(backend, name, spec)
    return never[key]


def _why_waiting(state: SchedulerState, run_id: int, spec: Any, names: list[str],
                 free_by_backend: dict[str, Resources | None], blocked_backends: dict[str, int]) -> str:
    """The message of a queued run that fits its backends but has no room now."""
    for name in names:
        ahead = blocked_backends.get(name)
        if ahead is not None and ahead != run_id:
            return f"pending: behind run {ahead}, which waits for room on backend {name}"
    try:
        backend: Backend | None = state.backends.get(names[0])
    except RunyardError:
        backend = None
    return waiting_reason(run_resources(spec, backend), free_by_backend.get(names[0]))


# How many queued runs get their waiting reason stored per pass (the oldest): the rest are stored
# as those ahead of them leave the queue, so a sweep of thousands never costs thousands of writes at once.
_NOTE_WAITING_MAX = 64


def _note_waiting(state: SchedulerState, queued: list[dict[str, Any]], waiting: dict[int, str]) -> None:
    """Store why each waiting queued run waits as its status message, only when that changed."""
    seen: dict[str, str] = {}
    writes = 0
    for row in queued:
        key = f"queued:{row['id']}"
        reason = waiting.get(row["id"])
        if reason is None:
            continue
        old = state.reasons.get(key)
        if old == reason or (old is None and row.get("status_message") == reason):
            seen[key] = reason
            continue
        if writes >= _NOTE_WAITING_MAX:
            continue
        writes += 1
        try:
            state.store.set_run_message(row["id"], reason, statuses=["queued"])
        except RunyardError as e:
            log.warning("run %s: storing why it waits failed: %s", row["id"], e.message)
            continue
        seen[key] = reason
    # keep only the entries of runs still waiting (engine job ids' entries have no "queued:" prefix)
    for key in [k for k in state.reasons if k.startswith("queued:") and k not in seen]:
        del state.reasons[key]
    state.reasons.update(seen)


def _place(state: SchedulerState, row: Mapping[str, Any], spec: Any, names: list[str],
           free_by_backend: dict[str, Resources | None], blocked_backends: dict[str, int]) -> tuple[str, Backend] | None:
    """The first of several backends, in the listed order, with room for the run; ``None`` while none has.

    A backend that cannot be built is passed over (the run fails when all of them are
    such); one already blocked in this pass is passed over too. A run that fits nowhere
    blocks all its backends for the pass, so no later run jumps the queue on them. The
    queue of a backend that queues runs itself (``at_most``) is not used: only capacity()
    tells which backend has room.
    """
    problems: list[str] = []
    for name in names:
        if name in blocked_backends:
            continue
        try:
            backend = state.backends.get(name)
        except RunyardError as e:
            problems.append(f"{name!r}: {e.message}")
            continue
        if _take_room(backend, name, run_resources(spec, backend), free_by_backend):
            return name, backend
    if len(problems) == len(names):
        state.fail(row["id"], "no backend of " + ", ".join(names) + " is available: " + " ".join(problems))
    elif problems:
        log.warning("run %s: passed over unavailable backends: %s", row["id"], " ".join(problems))
    for name in names:
        blocked_backends.setdefault(name, int(row["id"]))
    return None


def _cancel_left_behind(state: SchedulerState, row: Mapping[str, Any]) -> bool:
    """Cancel a queued run of an experiment that ended.

    A cancel of the experiment cancels the runs it finds, but a proposal made from the
    experiment as it was a moment before can still add queued runs after it; nothing
    would ever dispatch or end those.
    """
    exp = state.store.get_experiment(row["experiment_id"])
    if exp.status == "running":
        return False  # created after this pass listed the running experiments
    try:
        state.store.set_run_status(row["id"], "canceled", expect=["queued"],
                                   message=f"canceled: its experiment is {exp.status}", full=False)
    except InvalidState:
        return False
    return True


def _datasets_of(state: SchedulerState, run_id: int) -> list[Any]:
    """The dataset versions recorded for the run (its experiment's ``datasets:``); none once the run is gone."""
    try:
        return list(state.store.run_datasets(run_id))
    except NotFound:
        return []
