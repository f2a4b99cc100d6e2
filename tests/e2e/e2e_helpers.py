"""Helpers of the end-to-end tests: waiting, process checks, and a handle on a live server (``Yard``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from runyard.client import Client
from runyard.testing import LiveServer

TERMINAL = frozenset({"succeeded", "failed", "canceled", "pruned"})
WAIT_S = 120.0  # generous: the suite must pass on a loaded 2-core machine


def wait_until(predicate: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition",
               interval_s: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


def process_gone(pid: int) -> bool:
    """No live (non-zombie) process has this pid, and no process is left in its process group."""
    try:
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        pass
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.info["pid"]) == pid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return False
        except (ProcessLookupError, PermissionError):
            continue
    return True


def process_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Yard:
    """A live server and what a test does with it: the CLI, the client, waiting for runs."""

    server: LiveServer
    client: Client
    cli_home: Path

    @property
    def url(self) -> str:
        return self.server.url

    def cli(self, *args: str | Path, timeout_s: float = WAIT_S) -> subprocess.CompletedProcess[str]:
        """``runyard ARGS`` in a subprocess talking to this server (no embedded server, no terminal)."""
        env = {**os.environ, "RUNYARD_SERVER": self.url, "RUNYARD_HOME": str(self.cli_home), "COLUMNS": "200"}
        for var in ("RUNYARD_DEBUG", "RUNYARD_TOKEN", "RUNYARD_DATABASE_URL"):
            env.pop(var, None)
        return subprocess.run([sys.executable, "-m", "runyard.cli", *map(str, args)], env=env, capture_output=True,
                              text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, check=False)

    def submit(self, directory: Path, *args: str) -> dict[str, Any]:
        """``runyard run DIR --json`` (returns at once); the experiment it created."""
        res = self.cli("run", directory, "--json", *args)
        assert res.returncode == 0, f"runyard run failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
        return json.loads(res.stdout)

    def wait_experiment(self, experiment_id: int, timeout_s: float = WAIT_S) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            exp = self.client.get_experiment(experiment_id)
            return exp if exp["status"] != "running" else None

        return wait_until(ended, timeout_s, f"experiment {experiment_id} to end", interval_s=0.2)

    def runs(self, experiment_id: int) -> list[dict[str, Any]]:
        """The experiment's runs in proposal order, each with tasks and events."""
        items = self.client.list_runs(experiment_id=experiment_id, limit=10000)["items"]
        return [self.client.get_run(r["id"]) for r in sorted(items, key=lambda r: r["number"])]

    def wait_run(self, run_id: int, statuses: frozenset[str] | set[str] = TERMINAL,
                 timeout_s: float = WAIT_S) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            run = self.client.get_run(run_id)
            return run if run["status"] in statuses else None

        return wait_until(reached, timeout_s, f"run {run_id} to become {' or '.join(sorted(statuses))}", interval_s=0.1)

    def describe(self, experiment_id: int) -> str:
        """Runs and their events, for assertion messages."""
        lines = []
        for r in self.runs(experiment_id):
            events = ", ".join(f"{e['status']}#{e['attempt']}" for e in r["events"])
            lines.append(f"run {r['id']} {r['status']} attempt={r['attempt']} params={r['params']} "
                         f"msg={r['status_message'][:200]!r} events=[{events}]")
        return "\n".join(lines)


def log_texts(client: Client, run_id: int) -> list[str]:
    """Every log line of the run (all tasks and streams), in order."""
    texts: list[str] = []
    offset = 0
    while True:
        page = client.read_logs(run_id, offset, limit=10000)
        texts += [ln["text"] for ln in page["lines"]]
        if page["next_offset"] == offset or not page["lines"]:
            return texts
        offset = page["next_offset"]


def push_digits_data(yard: Yard, project_dir: Path, project: str) -> dict[str, Any]:
    """The digits example's data (``prepare_data.py``) pushed as the dataset ``digits`` of ``project``, which the
    example's runyard.yml declares (``datasets: {train: digits@latest}``); returns ``datasets push --json``."""
    subprocess.run([sys.executable, "prepare_data.py"], cwd=project_dir, check=True, capture_output=True, timeout=120)
    res = yard.cli("datasets", "push", project_dir / "data", "--name", "digits", "-p", project, "--json")
    assert res.returncode == 0, f"datasets push failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)
