"""End-to-end fixtures: real servers in subprocesses, the real local agent, the real CLI.

Every server a test starts is stopped by its pid in the fixture's finalizer, and
so is the local agent that server's backend started (its pid is in
``$RUNYARD_HOME/agent/agent.json``; ``stop_agent`` stops its tasks first). The
server goes first: a live scheduler would start a new agent at its next pass. An
agent the server was still starting as it stopped is found by its command line
(``runyard.backends.local agent --dir <this home's agent dir>``) and stopped by its pid.

Most tests share one server for the whole session (starting one costs seconds);
each test uses its own project, so they never see each other's runs. The shared
server has an injected inventory of two GPUs (``RUNYARD_LOCAL_GPUS=0,1``).
Tests that kill or double up servers start their own through the ``servers`` fixture.

Projects are directories in ``tmp_path`` with a ``runyard.yml`` and a tiny script
using the SDK. Scripts write what the test checks (pids, run ids, GPU indices)
to ``$E2E_OUT``, a directory the test passes through the spec's ``env:``.
"""

from __future__ import annotations

import contextlib
import json
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from e2e_helpers import Yard
from ui_helpers import browser, page  # noqa: F401 - the UI tests' Chromium (one per session) and pages

from runyard.backends.local import agent_dir, stop_agent
from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers


class Servers(LiveServers):
    """Starts servers (no GPU unless a test injects some) and stops them, and their agents, by pid."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, env={"RUNYARD_LOCAL_GPUS": ""}, timeout_s=60.0)
        self._clients: list[Client] = []

    def yard(self, server: LiveServer) -> Yard:
        client = Client(server.url)
        self._clients.append(client)
        return Yard(server, client, self.root / "cli-home")

    def stop_all(self) -> None:
        homes: list[Path] = []
        for server in self.started:
            if server.home not in homes:
                homes.append(server.home)
        super().stop_all()
        for client in self._clients:
            client.close()
        errors = []
        for home in homes:
            try:
                stop_agent(agent_dir(home), timeout_s=30.0)
                _stop_starting_agents(agent_dir(home))
            except Exception as e:  # noqa: BLE001 - keep stopping the others; reported below
                errors.append(f"agent of {home}: {e!r}")
        if errors:
            raise RuntimeError("; ".join(errors))


def _stop_starting_agents(directory: Path) -> None:
    """Stop, by pid, agents for ``directory`` that were still starting when their server stopped
    (the process exists from the server's Popen on, before it writes ``agent.json``)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "runyard.backends.local" in cmd and "agent" in cmd and str(directory) in cmd:
            found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(found, timeout=30)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """Start servers with ``servers.start(name, ...)``; all of them and their agents are stopped afterwards."""
    s = Servers(tmp_path / "servers")
    try:
        yield s
    finally:
        s.stop_all()


@pytest.fixture(scope="session")
def _shared_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    s = Servers(tmp_path_factory.mktemp("e2e-shared"))
    try:
        yield s
    finally:
        s.stop_all()


@pytest.fixture(scope="session")
def _shared_yard(_shared_servers: Servers) -> Yard:
    server = _shared_servers.start("shared", env={"RUNYARD_LOCAL_GPUS": "0,1"})
    return _shared_servers.yard(server)


@pytest.fixture
def yard(_shared_yard: Yard) -> Iterator[Yard]:
    """The session's shared server (2 injected GPUs). Use a project of your own."""
    yield _shared_yard
    # A test must not leave runs holding the shared agent's capacity.
    active = _shared_yard.client.list_runs(status=["queued", "starting", "running"], limit=1000)["items"]
    for run in active:
        if run["experiment_id"] is not None:
            _shared_yard.client.cancel_experiment(run["experiment_id"])


@dataclass
class Project:
    path: Path
    out: Path  # the scripts' shared output directory ($E2E_OUT)
    files: dict[str, str] = field(default_factory=dict)

    def read_lines(self, name: str) -> list[str]:
        p = self.out / name
        return p.read_text().splitlines() if p.exists() else []


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    """``make_project(name, yml, train_py)``: a project directory with runyard.yml and train.py.

    ``yml`` gets ``env: {E2E_OUT: <dir>}`` appended; scripts write their observations there.
    """

    def make(name: str, yml: str, script: str, **more_files: str) -> Project:
        path = tmp_path / name
        out = tmp_path / f"{name}-out"
        path.mkdir()
        out.mkdir()
        yml = textwrap.dedent(yml).strip() + f"\nenv:\n  E2E_OUT: {json.dumps(str(out))}\n"
        files = {"runyard.yml": yml, "train.py": textwrap.dedent(script).lstrip(), **more_files}
        for rel, text in files.items():
            (path / rel).write_text(text)
        return Project(path, out, files)

    return make
