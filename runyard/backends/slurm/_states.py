"""Slurm's job states → Runyard's ``EngineState``: one table, pure functions.

| Slurm state                         | EngineStatus | reason                                   |
| ----------------------------------- | ------------ | ---------------------------------------- |
| PENDING (+ reason)                  | PENDING      | "pending: Resources"                     |
| CONFIGURING, REQUEUED, REQUEUE_*    | PENDING      | "configuring" / "requeued"               |
| RUNNING, COMPLETING, STAGE_OUT, ... | RUNNING      | "" / "completing"                        |
| SUSPENDED, STOPPED                  | RUNNING      | "suspended"                              |
| COMPLETED                           | SUCCEEDED    | ""                                       |
| FAILED                              | FAILED       | "exit code N"                            |
| TIMEOUT, DEADLINE                   | TIMEOUT      | "TIMEOUT: Slurm's time limit was reached"|
| OUT_OF_MEMORY                       | FAILED       | "OUT_OF_MEMORY: ..."                     |
| NODE_FAIL, BOOT_FAIL                | FAILED       | "NODE_FAIL: ..."  (restartable)          |
| PREEMPTED                           | FAILED       | "PREEMPTED: ..."  (restartable)          |
| CANCELLED (by UID), REVOKED         | CANCELED     | "CANCELLED by 0"                         |
| anything else                       | UNKNOWN      | raw text kept                            |

Restart policy: the scheduler restarts a FAILED run while its attempts are below
``max_restarts`` (``runyard.yml``); NODE_FAIL, BOOT_FAIL and PREEMPTED are failures
of the cluster, not of the code, and are marked ``retryable`` here so the reason
says a restart will help ("NODE_FAIL: the node failed; restart it with
max_restarts"). Exit codes come as ``code:signal`` (``3:0``; ``0:15`` for a job
killed by SIGTERM) and are reported the shell's way: ``128 + signal``.
"""

from __future__ import annotations

from runyard.backends.base import EngineState, EngineStatus

__all__ = ["RETRYABLE", "map_state", "parse_exit_code"]

RETRYABLE = frozenset({"NODE_FAIL", "BOOT_FAIL", "PREEMPTED"})

_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "RESIZING", "SIGNALING", "SUSPENDED", "STOPPED", "UPDATE_DB",
            "POWER_UP_NODE"}
_EXPLAIN = {
    "OUT_OF_MEMORY": "OUT_OF_MEMORY: the job used more memory than it asked for; raise resources.memory",
    "NODE_FAIL": "NODE_FAIL: a node of the job failed; the run is restarted if max_restarts allows",
    "BOOT_FAIL": "BOOT_FAIL: a node of the job failed to boot; the run is restarted if max_restarts allows",
    "PREEMPTED": "PREEMPTED: a job of higher priority took the nodes; the run is restarted if max_restarts allows",
    "DEADLINE": "TIMEOUT: the job's deadline passed",
    "TIMEOUT": "TIMEOUT: Slurm's time limit was reached",
}


def parse_exit_code(text: str) -> int | None:
    """``"3:0"`` → 3, ``"0:15"`` → 143 (128 + signal), ``""`` → None."""
    text = (text or "").strip()
    if not text:
        return None
    code, _, sig = text.partition(":")
    try:
        c, s = int(code), int(sig or 0)
    except ValueError:
        return None
    if s:
        return 128 + s
    return c


def map_state(raw_state: str, exit_code: str = "", reason: str = "") -> EngineState:
    """One Slurm job's state (as ``squeue %T`` or ``sacct State`` prints it) as an ``EngineState``.

    Args:
        raw_state: e.g. ``PENDING``, ``CANCELLED by 0``, ``COMPLETED``.
        exit_code: sacct's ``ExitCode`` (``code:signal``), if known.
        reason: squeue's ``%r`` for pending jobs (``Resources``, ``Priority``, ...).
    """
    raw = raw_state.strip()
    word = raw.split()[0].rstrip("+").upper() if raw else ""
    code = parse_exit_code(exit_code)
    reason = reason.strip()
    if reason in ("None", "(null)"):
        reason = ""
    if word == "PENDING":
        return EngineState(EngineStatus.PENDING, None, f"pending: {reason}" if reason else "pending", raw)
    if word in _PENDING:
        return EngineState(EngineStatus.PENDING, None, word.lower().replace("_", " "), raw)
    if word in ("SUSPENDED", "STOPPED"):
        return EngineState(EngineStatus.RUNNING, None, "suspended", raw)
    if word in _RUNNING:
        return EngineState(EngineStatus.RUNNING, None, "completing" if word == "COMPLETING" else "", raw)
    if word == "COMPLETED":
        return EngineState(EngineStatus.SUCCEEDED, 0 if code is None else code, "", raw)
    if word == "FAILED":
        return EngineState(EngineStatus.FAILED, code, f"exit code {code}" if code is not None else "failed", raw)
    if word in ("TIMEOUT", "DEADLINE"):
        return EngineState(EngineStatus.TIMEOUT, code, _EXPLAIN[word], raw)
    if word in ("OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "PREEMPTED"):
        return EngineState(EngineStatus.FAILED, code, _EXPLAIN[word], raw)
    if word in ("CANCELLED", "REVOKED"):
        return EngineState(EngineStatus.CANCELED, code, raw.replace("CANCELLED", "canceled").replace("REVOKED", "revoked"), raw)
    return EngineState(EngineStatus.UNKNOWN, code, f"Slurm state {raw!r} is not known to Runyard" if raw else "no state", raw)
