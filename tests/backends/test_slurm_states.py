"""Every Slurm job state maps to an EngineStatus with a reason (pure functions: no cluster needed)."""

from __future__ import annotations

import pytest

from runyard.backends.base import EngineStatus
from runyard.backends.slurm import map_state
from runyard.backends.slurm._states import RETRYABLE, parse_exit_code
from runyard.scheduler import engine_outcome


@pytest.mark.parametrize(("raw", "exit_code", "reason", "status", "code", "text"), [
    ("PENDING", "", "Resources", EngineStatus.PENDING, None, "pending: Resources"),
    ("PENDING", "", "Priority", EngineStatus.PENDING, None, "pending: Priority"),
    ("PENDING", "", "None", EngineStatus.PENDING, None, "pending"),
    ("CONFIGURING", "", "", EngineStatus.PENDING, None, "configuring"),
    ("REQUEUED", "", "", EngineStatus.PENDING, None, "requeued"),
    ("RUNNING", "", "None", EngineStatus.RUNNING, None, ""),
    ("COMPLETING", "", "", EngineStatus.RUNNING, None, "completing"),
    ("SUSPENDED", "", "", EngineStatus.RUNNING, None, "suspended"),
    ("COMPLETED", "0:0", "", EngineStatus.SUCCEEDED, 0, ""),
    ("FAILED", "3:0", "", EngineStatus.FAILED, 3, "exit code 3"),
    ("FAILED", "0:9", "", EngineStatus.FAILED, 137, "exit code 137"),
    ("TIMEOUT", "0:15", "", EngineStatus.TIMEOUT, 143, "TIMEOUT: Slurm's time limit was reached"),
    ("OUT_OF_MEMORY", "0:125", "", EngineStatus.FAILED, 253, "OUT_OF_MEMORY"),
    ("NODE_FAIL", "0:0", "", EngineStatus.FAILED, 0, "NODE_FAIL"),
    ("BOOT_FAIL", "", "", EngineStatus.FAILED, None, "BOOT_FAIL"),
    ("PREEMPTED", "0:15", "", EngineStatus.FAILED, 143, "PREEMPTED"),
    ("CANCELLED by 0", "0:15", "", EngineStatus.CANCELED, 143, "canceled by 0"),
    ("CANCELLED+", "0:0", "", EngineStatus.CANCELED, 0, "canceled"),
    ("DEADLINE", "", "", EngineStatus.TIMEOUT, None, "TIMEOUT"),
    ("REVOKED", "", "", EngineStatus.CANCELED, None, "revoked"),
])
def test_every_slurm_state_maps(raw, exit_code, reason, status, code, text) -> None:
    state = map_state(raw, exit_code, reason)
    assert state.status is status
    assert state.exit_code == code
    assert state.reason.startswith(text) if text else state.reason == ""
    assert state.raw == raw


def test_an_unknown_state_keeps_the_raw_text() -> None:
    state = map_state("WIBBLE")
    assert state.status is EngineStatus.UNKNOWN
    assert "WIBBLE" in state.reason and state.raw == "WIBBLE"
    assert map_state("").status is EngineStatus.UNKNOWN


def test_cluster_failures_are_retryable_and_say_so() -> None:
    for raw in sorted(RETRYABLE):
        state = map_state(raw)
        assert state.status is EngineStatus.FAILED
        assert "restarted if max_restarts allows" in state.reason


def test_terminal_states_become_run_outcomes() -> None:
    assert engine_outcome(map_state("TIMEOUT", "0:15")) == ("failed", "TIMEOUT: the engine's time limit was reached "
                                                                      "(TIMEOUT: Slurm's time limit was reached)")
    assert engine_outcome(map_state("FAILED", "3:0"))[0] == "failed"
    assert engine_outcome(map_state("OUT_OF_MEMORY", "0:125"))[1].startswith("exit code 253 (OUT_OF_MEMORY")
    assert engine_outcome(map_state("CANCELLED by 0", "0:15"))[0] == "canceled"
    assert engine_outcome(map_state("COMPLETED", "0:0"))[0] == "succeeded"
    assert engine_outcome(map_state("PENDING", "", "Resources")) is None


@pytest.mark.parametrize(("text", "code"), [("0:0", 0), ("3:0", 3), ("0:15", 143), ("", None), ("x:y", None), ("2", 2)])
def test_exit_codes_parse_the_shell_way(text, code) -> None:
    assert parse_exit_code(text) == code
