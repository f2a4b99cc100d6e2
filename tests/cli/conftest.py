"""CLI fixtures: a real server without a scheduler, seeded through the client, and a CliRunner helper.

The server runs with RUNYARD_SCHEDULER=0 so experiments and runs stay exactly as the
tests seed them (no backend picks them up and changes their status).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner, Result

from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

# No scheduler: experiments and runs stay as seeded.
_ENV = {"RUNYARD_SCHEDULER": "0"}


def invoke(*args: str) -> Result:
    """Run ``runyard ARGS`` in this process; ``result.stdout`` and ``result.stderr`` are kept apart."""
    from runyard.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def cli_server(live_servers: LiveServers, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """An empty live server of this test (SQLite, no scheduler) that the CLI uses through RUNYARD_SERVER."""
    server = live_servers.start("cli", env=_ENV)
    monkeypatch.setenv("RUNYARD_SERVER", server.url)
    return server


@dataclass
class Seed:
    """Ids of the seeded data.

    - project ``demo`` ("A demo project", tags problem=classification and benchmark) and the empty,
      untagged project ``other``;
    - experiment ``exp`` ("sweep", in demo) with run ``active`` (running, params lr=0.01);
    - run ``done`` (succeeded, exit code 0): params, tags, metrics loss/acc, log lines on stdout and
      stderr, artifacts ``model/weights.bin``, ``model/config.json`` and ``report.txt``.
    """

    client: Client
    exp: int
    done: int
    active: int
    artifacts: dict[str, bytes]


def _seed(c: Client) -> Seed:
    c.create_project("demo", "A demo project", tags={"problem": "classification", "benchmark": ""})
    c.create_project("other")
    done = c.create_run("demo", name="baseline", params={"lr": 0.1, "layers": [64, 32], "optimizer": "adam"},
                        tags={"team": "vision"})["id"]
    now = time.time()
    c.log_metrics(done, ["loss", "loss", "loss", "acc"], [0, 1, 2, 2], [1.0, 0.5, 0.25, 0.875], [now] * 4)
    c.append_logs(done, "main", [{"stream": "stdout", "text": "epoch 0 loss=1.0"},
                                 {"stream": "stderr", "text": "warning: [bold]not markup[/bold]"},
                                 {"stream": "stdout", "text": "done"}])
    artifacts = {"model/weights.bin": bytes(range(256)) * 4000, "model/config.json": b'{"layers": [64, 32]}',
                 "report.txt": b"accuracy 0.875\n"}
    for path, data in artifacts.items():
        c.upload_artifact(done, path, data)
    c.update_run(done, "succeeded", exit_code=0)
    exp = c.create_experiment("demo", "sweep", {"project": "demo", "command": "python train.py"})["id"]
    active = c.create_run("demo", name="trial-1", experiment_id=exp, params={"lr": 0.01})["id"]
    return Seed(client=c, exp=exp, done=done, active=active, artifacts=artifacts)


@pytest.fixture(scope="session")
def _shared_seed(session_live_servers: LiveServers) -> Iterator[tuple[LiveServer, Seed]]:
    server = session_live_servers.start("cli-seed", env=_ENV)
    with Client(server.url) as c:
        yield server, _seed(c)


@pytest.fixture
def seed(_shared_seed: tuple[LiveServer, Seed], monkeypatch: pytest.MonkeyPatch) -> Seed:
    """Seeded data on a server shared by the session's CLI tests: READ ONLY (use ``fresh_seed`` to change it)."""
    server, data = _shared_seed
    monkeypatch.setenv("RUNYARD_SERVER", server.url)
    return data


@pytest.fixture
def fresh_seed(cli_server: LiveServer) -> Iterator[Seed]:
    """The same seeded data on this test's own server, free to change."""
    with Client(cli_server.url) as c:
        yield _seed(c)


@pytest.fixture
def cli():
    """``cli("ls", "--json")`` runs the CLI in-process and returns typer's Result."""
    return invoke
