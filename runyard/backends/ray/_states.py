"""Ray's job statuses → Runyard's ``EngineState``: one table, pure functions.

| Ray job status | EngineStatus | reason                                                             |
| -------------- | ------------ | ------------------------------------------------------------------ |
| PENDING        | PENDING      | "pending: Ray has not started the job: …" (resources, runtime env) |
| RUNNING        | RUNNING      | ""                                                                 |
| SUCCEEDED      | SUCCEEDED    | "" (exit code 0)                                                   |
| FAILED         | FAILED       | "exit code N" (the driver's), or the error type and Ray's message  |
| STOPPED        | CANCELED     | "stopped: …" (``stop_job``)                                        |
| (cancel asked, | CANCELED     | the runner saw the cancel first and ended the task itself          |
|  then ended)   |              |                                                                    |
| not known      | LOST         | "Ray does not know job …" (404: never submitted, or the cluster    |
|                |              | restarted and lost it)                                             |
| no answer      | UNKNOWN      | "dashboard unreachable: …" (never a failure: the job may be fine)  |
| other text     | UNKNOWN      | raw text kept                                                      |

Restart policy: the scheduler restarts a FAILED run while its attempts are below
``max_restarts``. A job that failed before its driver ran (the runtime environment
could not be set up, the supervisor actor could not start or be placed) is a fault
of the cluster, not of the code: its reason says so and that a restart may help.
"""

from __future__ import annotations

from collections.abc import Sequence

from runyard.backends.base import EngineState, EngineStatus

__all__ = ["CLUSTER_FAULTS", "combine", "map_job", "unreachable"]

#: Ray's error types of a job whose driver never ran: the cluster's fault.
CLUSTER_FAULTS = frozenset({
    "RUNTIME_ENV_SETUP_FAILURE",
    "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
    "JOB_SUPERVISOR_ACTOR_START_FAILURE",
    "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
    "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE",
    "JOB_SUPERVISOR_ACTOR_DIED",
})


def _short(message: str | None, n: int = 300) -> str:
    """Ray's message, on one line, cut to ``n`` characters (its FAILED message carries 20,000 of logs)."""
    text = " ".join((message or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _tail(message: str | None, n_lines: int = 5, n: int = 600) -> str:
    """The last lines of Ray's message (a failed job's message ends with its logs)."""
    lines = [ln for ln in (message or "").strip().splitlines() if ln.strip()]
    text = " | ".join(lines[-n_lines:])
    return text if len(text) <= n else "…" + text[-(n - 1):]


def map_job(status: str, *, message: str | None = None, exit_code: int | None = None, error_type: str | None = None,
            cancel_requested: bool = False) -> EngineState:
    """One Ray job as an ``EngineState``.

    Args:
        status: Ray's ``JobStatus`` value (``PENDING`` …).
        message: Ray's ``message`` of the job.
        exit_code: ``driver_exit_code`` (None until the driver ended, or when it never ran).
        error_type: Ray's ``error_type`` of a failed job (``RUNTIME_ENV_SETUP_FAILURE`` …).
        cancel_requested: the backend asked to stop it: a job that then ends by itself
            (the runner saw the cancel first) is CANCELED too.
    """
    raw = str(status or "").strip().upper()
    error = str(error_type or "").strip().upper()
    if raw == "PENDING":
        why = _short(message) or "waiting for resources or its runtime environment"
        return EngineState(EngineStatus.PENDING, None, f"pending: Ray has not started the job: {why}", raw)
    if raw == "RUNNING":
        return EngineState(EngineStatus.RUNNING, None, "", raw)
    if raw == "STOPPED" or (cancel_requested and raw in ("SUCCEEDED", "FAILED")):
        how = "stop_job" if raw == "STOPPED" else f"the job ended {raw} after the cancel"
        return EngineState(EngineStatus.CANCELED, exit_code, f"stopped ({how})", raw)
    if raw == "SUCCEEDED":
        return EngineState(EngineStatus.SUCCEEDED, 0 if exit_code is None else exit_code, "", raw)
    if raw == "FAILED":
        if error in CLUSTER_FAULTS:
            return EngineState(EngineStatus.FAILED, exit_code,
                               f"{error}: the Ray cluster could not start the job ({_tail(message)}); "
                               "the run is restarted if max_restarts allows", raw)
        if exit_code is not None:
            return EngineState(EngineStatus.FAILED, exit_code, f"exit code {exit_code}", raw)
        what = f"{error}: " if error else ""
        return EngineState(EngineStatus.FAILED, None, f"{what}{_tail(message) or 'the job failed'}", raw)
    return EngineState(EngineStatus.UNKNOWN, exit_code, f"Ray job status {raw!r} is not known to Runyard" if raw
                       else "no status", raw)


def unreachable(why: str) -> EngineState:
    """The state of a job whose dashboard does not answer: UNKNOWN, never a failure (``why`` names the address)."""
    return EngineState(EngineStatus.UNKNOWN, None, f"dashboard unreachable: {why}", "")


def combine(states: Sequence[tuple[str, EngineState]]) -> EngineState:
    """The state of an attempt run as several Ray jobs (``one_job_per_task``), from each ``(task, state)``.

    A failed or lost task fails the attempt (naming the task), a stopped one cancels it; it
    succeeded once every task did; otherwise it runs while any task runs.
    """
    if len(states) == 1:
        return states[0][1]
    for status in (EngineStatus.FAILED, EngineStatus.LOST, EngineStatus.TIMEOUT, EngineStatus.CANCELED):
        for task, st in states:
            if st.status is status:
                return EngineState(status, st.exit_code, f"task {task}: {st.reason or st.raw}", st.raw)
    for _task, st in states:
        if st.status is EngineStatus.UNKNOWN:
            return st
    if all(st.status is EngineStatus.SUCCEEDED for _, st in states):
        return EngineState(EngineStatus.SUCCEEDED, 0, "", "SUCCEEDED")
    if any(st.status is EngineStatus.RUNNING for _, st in states):
        return EngineState(EngineStatus.RUNNING, None, "", "RUNNING")
    pending = next(st for _, st in states if st.status is EngineStatus.PENDING)
    return pending
