"""Runs that can never fit their backend are refused at submission; runs that wait say why.

Over a real server (SQLite, scheduler on) with the local backend: the machine's GPUs are
pinned to none (RUNYARD_LOCAL_GPUS="") and its CPUs to 2 by the backend's options.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from runyard.backends.local import agent_dir, stop_agent
from runyard.client import Client
from runyard.errors import RunyardError, http_status
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

pytestmark = pytest.mark.slow

BACKENDS = """\
local:
  type: local
  cpus: 2
onegpu:
  type: local
  cpus: 2
  gpus: [0]
"""


@pytest.fixture(scope="module")
def server(module_live_servers: LiveServers, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    home = tmp_path_factory.mktemp("feasible-home")
    (home / "backends.yml").write_text(BACKENDS)
    return module_live_servers.start("feasible", home=home, env={"RUNYARD_LOCAL_GPUS": ""})


@pytest.fixture
def client(server: LiveServer) -> Client:
    with Client(server.url) as c:
        yield c


def _project(client: Client) -> str:
    name = f"f-{uuid.uuid4().hex[:8]}"
    client.create_project(name)
    return name


def _config(project: str, command: str = "true", **resources: object) -> dict[str, object]:
    return {"project": project, "command": command, "backend": "local", "resources": dict(resources)}


def _wait(fn, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _runs(client: Client, exp_id: int) -> list[dict[str, object]]:
    return list(client.list_runs(experiment_id=exp_id)["items"])


def _refusal(client: Client, config: dict[str, object]) -> RunyardError:
    project = str(config["project"])
    before = len(client.list_experiments(project))
    with pytest.raises(RunyardError) as info:
        client.create_experiment(project, "too-big", config)
    assert len(client.list_experiments(project)) == before, "a refused experiment must not be stored"
    return info.value


def test_gpu_on_a_machine_without_gpus_is_refused_and_later_runs_start(client: Client) -> None:
    """gpus: 1 without a GPU used to be accepted, queue forever with no message, and hold every later run back."""
    project = _project(client)
    err = _refusal(client, _config(project, gpus=1))
    assert http_status(err) == 400
    assert "asks gpus: 1 but backend local has 0 GPUs" in err.message
    assert "largest node: 2 CPUs, 0 GPUs" in err.message
    exp = client.create_experiment(project, "small", _config(project))
    assert _wait(lambda: [r for r in _runs(client, exp["id"]) if r["status"] == "succeeded"])


def test_more_cpus_or_memory_than_the_machine_is_refused(client: Client) -> None:
    project = _project(client)
    err = _refusal(client, _config(project, cpus=64))
    assert "asks cpus: 64 but backend local has 2 CPUs" in err.message
    err = _refusal(client, _config(project, memory="1000T"))
    assert "asks memory: 1048576000 MB but backend local has" in err.message, err.message


def test_distributed_runs_follow_the_same_rule(client: Client) -> None:
    """A distributed run whose tasks together ask for more than the one machine is refused with the same words."""
    project = _project(client)
    config = _config(project, cpus=1)
    config["distributed"] = {"framework": "pytorch", "worker": 2}  # master-0 + 2 workers
    err = _refusal(client, config)
    assert "asks cpus: 3 (all 3 tasks together) but backend local has 2 CPUs" in err.message, err.message


def test_a_waiting_run_says_why(client: Client, server: LiveServer, tmp_path: Path) -> None:
    """Two runs of one GPU on a backend of one GPU: the second waits in the scheduler and its message says why."""
    project = _project(client)
    server_url = server.url
    gate = tmp_path / "gate"
    command = f"{sys.executable} -c \"import os,time\nwhile not os.path.exists('{gate}'): time.sleep(0.1)\""
    config = {"project": project, "command": command, "backend": "onegpu", "resources": {"gpus": 1},
              "search": {"parallel": 2}, "params": {"x": [1, 2]}}
    exp = client.create_experiment(project, "waits", config)
    try:
        def waiting() -> str:
            msgs = [str(r.get("status_message") or "") for r in _runs(client, exp["id"]) if r["status"] == "queued"]
            return next((m for m in msgs if m.startswith("pending:")), "")
        assert _wait(waiting) == "pending: no GPU free"
        waiting = [r for r in _runs(client, exp["id"]) if r["status"] == "queued"][0]
        assert client.get_run(int(waiting["id"]))["status_message"] == "pending: no GPU free"
        tree = str(Path(__file__).resolve().parents[2])
        env = {"RUNYARD_SERVER": server_url, "PYTHONPATH": os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")])}
        status = subprocess.run([sys.executable, "-m", "runyard.cli", "status", str(waiting["id"])], capture_output=True,
                                text=True, timeout=60, env={**os.environ, **env})
        assert "pending: no GPU free" in status.stdout, status.stdout + status.stderr
        ls = subprocess.run([sys.executable, "-m", "runyard.cli", "ls", "--experiment", str(exp["id"])],
                            capture_output=True, text=True, timeout=60, env={**os.environ, **env, "COLUMNS": "200"})
        assert "queued (pending: no GPU free)" in ls.stdout, ls.stdout + ls.stderr
    finally:
        gate.write_text("go")
    _wait(lambda: [r["status"] for r in _runs(client, exp["id"])] == ["succeeded", "succeeded"])


def test_a_queued_run_that_can_no_longer_start_fails_and_holds_nothing_back(live_servers: LiveServers,
                                                                            tmp_path: Path) -> None:
    """The backend loses its GPU while a GPU run waits: that run fails saying why, and later runs on it start."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "backends.yml").write_text(BACKENDS)
    server = live_servers.start("shrinks", home=home, env={"RUNYARD_LOCAL_GPUS": ""})
    gate = tmp_path / "gate"
    command = f"{sys.executable} -c \"import os,time\nwhile not os.path.exists('{gate}'): time.sleep(0.1)\""
    try:
        with Client(server.url) as client:
            project = _project(client)
            exp = client.create_experiment(project, "gpu", {"project": project, "command": command, "backend": "onegpu",
                                                            "resources": {"gpus": 1}, "search": {"parallel": 1},
                                                            "params": {"x": [1, 2]}})
            _wait(lambda: sorted(r["status"] for r in _runs(client, exp["id"])) == ["queued", "running"])
            (home / "backends.yml").write_text(BACKENDS.replace("  gpus: [0]\n", "  gpus: []\n"))
            failed = _wait(lambda: [r for r in _runs(client, exp["id"]) if r["status"] == "failed"])
            assert "it can never start: asks gpus: 1 but backend onegpu has 0 GPUs" in failed[0]["status_message"]
            later = client.create_experiment(project, "cpu", {"project": project, "command": "true", "backend": "onegpu"})
            assert _wait(lambda: [r for r in _runs(client, later["id"]) if r["status"] == "succeeded"])
    finally:
        gate.write_text("go")  # the waiting task ends, pass or fail
        server.stop()
        stop_agent(agent_dir(home), timeout_s=30.0)  # an agent outlives its server's stop: stop it by its pid


def test_sinfo_nodes_are_read() -> None:
    """The Slurm backend's node shapes come from `sinfo -N` (one line per node and partition)."""
    from runyard.backends.slurm._backend import parse_sinfo_nodes
    from runyard.records.compute import Resources

    out = "n1 debug* 4 7900 (null)\nn1 long 4 7900 (null)\nn2 gpu 32 256000 gpu:a100:4(S:0-1)\nn3 gpu 8 1000 gpu:2\n"
    assert parse_sinfo_nodes(out, None) == [Resources(4, 7900, 0), Resources(32, 256000, 4), Resources(8, 1000, 2)]
    assert parse_sinfo_nodes(out, "gpu") == [Resources(32, 256000, 4), Resources(8, 1000, 2)]
    assert parse_sinfo_nodes("", None) is None
