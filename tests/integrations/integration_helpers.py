"""Helpers of the framework integrations' tests (fixtures are in this directory's conftest.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import runyard
from runyard.client import Client

WAIT_S = 300.0  # a framework's import alone takes 5-20 s on a loaded 2-core machine


def wait_until(predicate: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.1)


def prune_and_wait(client: Client, run: runyard.Run) -> None:
    """Prune ``run`` on the server, as the early-stopping rule does, and wait until the SDK has heard of it."""
    client.update_run(run.id, "pruned", "pruned by the test")
    wait_until(run.should_stop, 60, f"run {run.id}'s should_stop() to turn true")


def points(client: Client, run_id: int, key: str) -> list[tuple[int, float]]:
    """The metric's (step, value) points."""
    history = client.metric_history(run_id, key)
    return list(zip(history["steps"], history["values"], strict=True))


def artifact_paths(client: Client, run_id: int) -> set[str]:
    return {a["path"] for a in client.list_artifacts(run_id)}


@dataclass
class Sweep:
    """A finished experiment of a good and a poor run (median rule) and what their scripts wrote."""

    experiment: dict[str, Any]
    good: dict[str, Any]
    poor: dict[str, Any]
    out: Path
    client: Client

    def result(self, run: dict[str, Any]) -> dict[str, Any]:
        """What the run's script wrote after training returned (absent when it did not return)."""
        path = self.out / f"{run['id']}.json"
        assert path.exists(), (f"run {run['id']} ({run['status']}, {run['status_message']!r}) wrote no result; its log:\n"
                               f"{run_logs(self.client, run['id'])}")
        return json.loads(path.read_text())


def run_logs(client: Client, run_id: int) -> str:
    """The run's log lines, for assertion messages."""
    return "\n".join(line["text"] for line in client.read_logs(run_id, 0, limit=10000)["lines"])


class Lazy:
    """A module, or a name in one, imported at its first use: collecting these tests (every pytest process and
    xdist worker does) must not import a framework (Keras with TensorFlow, Lightning, Transformers: 10-40 s)."""

    def __init__(self, module: str, name: str | None = None) -> None:
        self._module, self._name, self._target = module, name, None

    def _get(self) -> Any:
        if self._target is None:
            import importlib

            target = importlib.import_module(self._module)
            self._target = getattr(target, self._name) if self._name else target
        return self._target

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._get(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get()(*args, **kwargs)


def lazy_framework(module: str) -> Lazy:
    """``module`` as a :class:`Lazy`; the test module is skipped when its package is not installed (checked
    without importing it)."""
    import importlib.util

    import pytest

    if importlib.util.find_spec(module.partition(".")[0]) is None:
        pytest.skip(f"{module} is not installed", allow_module_level=True)
    return Lazy(module)
