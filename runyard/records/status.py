"""Run statuses and the one rule that says which status a run may move to from which."""

from __future__ import annotations

import enum

from runyard.errors import InvalidInput, InvalidState

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "RunStatus",
    "can_transition",
    "check_transition",
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
