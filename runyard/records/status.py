"""Run statuses and the one rule that says which status a run may move to from which."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from runyard.errors import InvalidInput, InvalidState

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "RunStatus",
    "can_transition",
    "check_transition",
    "experiment_outcome",
    "parse_status",
]


class RunStatus(enum.StrEnum):
    """The status of a run; the values are the strings the database stores.

    There is no "lost" status: a run whose process vanished without an exit code ends
    ``failed``, with the reason in its status message.
    """

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PRUNED = "pruned"

    @property
    def terminal(self) -> bool:
        """True for a status the run keeps (only a restart moves a failed run on)."""
        return self in TERMINAL

    @property
    def active(self) -> bool:
        """True while the run waits, starts or runs."""
        return self in ACTIVE


ACTIVE: frozenset[RunStatus] = frozenset({RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING})
TERMINAL: frozenset[RunStatus] = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.PRUNED})

# Allowed moves between two different statuses, by value. A terminal status has none: only a
# restart (max_restarts) moves failed -> queued, with the attempt + 1.
_MOVES: dict[str, frozenset[str]] = {
    "queued": frozenset({"starting", "running", "canceled", "failed", "succeeded", "pruned"}),
    "starting": frozenset({"running", "succeeded", "failed", "canceled", "pruned", "queued"}),
    "running": frozenset({"succeeded", "failed", "canceled", "pruned", "queued"}),
}
# A restart queues the run again with the next attempt: from failed, or from a start or a run
# the scheduler gives up on.
_RESTARTABLE = frozenset({"failed", "starting", "running"})
_VALUES = tuple(s.value for s in RunStatus)


def parse_status(value: str) -> RunStatus:
    """The ``RunStatus`` named by ``value``; InvalidInput for anything else."""
    try:
        return RunStatus(value)
    except ValueError:
        raise InvalidInput(f"Unknown run status {value!r}.", f"Use one of: {', '.join(_VALUES)}.") from None


def can_transition(current: RunStatus | str, new: RunStatus | str, *, restart: bool = False) -> bool:
    """Whether a run that is ``current`` may become ``new``.

    The same status again is allowed (a no-op: nothing changes, nothing is recorded). A
    terminal status is final. ``restart``: the move is a restart (``new`` is queued, with the
    attempt + 1), allowed from failed, starting and running only. Unknown statuses are refused.
    """
    cur, nxt = str.__str__(current), str.__str__(new)
    if restart:
        return nxt == "queued" and cur in _RESTARTABLE
    if cur == nxt:
        return cur in _VALUES
    return nxt in _MOVES.get(cur, ())


def check_transition(current: RunStatus | str, new: RunStatus | str, *, restart: bool = False,
                     run_id: int | None = None) -> None:
    """Raise unless ``can_transition(current, new, restart=restart)``.

    Raises:
        InvalidInput: ``current`` or ``new`` is not a run status.
        InvalidState: the move is refused; the message names the run (``run_id``) and both statuses.
    """
    if can_transition(current, new, restart=restart):
        return
    cur, nxt = parse_status(str.__str__(current)), parse_status(str.__str__(new))
    who = f"Run {run_id}" if run_id is not None else "The run"
    if restart:
        if nxt is not RunStatus.QUEUED:
            raise InvalidInput(f"A restart queues a run again, so its new status is queued, not {nxt}.",
                               "Restart with the status queued.")
        raise InvalidState(f"{who} is {cur}; only a failed run is restarted.",
                           "Start a new run with `runyard rerun`." if cur.terminal
                           else "Let it end first; a failed run is restarted by its experiment's max_restarts.")
    if cur.terminal:
        hint = "Finished runs keep their status; start a new one with `runyard rerun`."
    else:
        hint = f"A {cur} run can become {', '.join(sorted(_MOVES[cur.value]))}."
    raise InvalidState(f"{who} is {cur} and cannot become {nxt}.", hint)


def experiment_outcome(counts: Mapping[str, int]) -> tuple[RunStatus, str]:
    """The status an experiment ends with once none of its runs is active, and a summary line.

    The one rule: ``failed`` when any run failed (after its restarts: ``counts`` are taken
    when no restart is due), else ``canceled`` when any run was canceled, else ``succeeded``
    (every run succeeded or was pruned). An experiment a user cancels is ``canceled``
    whatever its runs did (the cancel sets it). The summary counts the runs that decided
    it: "4 of 5 runs failed", "2 of 5 runs canceled", "5 of 5 runs succeeded (2 pruned)".
    """
    total = sum(n for n in counts.values() if n > 0)
    failed = counts.get(RunStatus.FAILED.value, 0)
    canceled = counts.get(RunStatus.CANCELED.value, 0)
    ok = counts.get(RunStatus.SUCCEEDED.value, 0)
    pruned = counts.get(RunStatus.PRUNED.value, 0)

    def runs(n: int) -> str:
        return f"{n} of {total} run{'' if total == 1 else 's'}"

    if failed > 0:
        return RunStatus.FAILED, f"{runs(failed)} failed"
    if canceled > 0:
        return RunStatus.CANCELED, f"{runs(canceled)} canceled"
    if total == 0:
        return RunStatus.SUCCEEDED, "no runs"
    text = f"{runs(ok + pruned)} succeeded"
    return RunStatus.SUCCEEDED, text + (f" ({pruned} pruned)" if pruned else "")
