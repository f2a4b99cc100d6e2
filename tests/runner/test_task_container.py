"""The task runner with an image, against a real server and a real podman and ch-run.

The runner stays outside the container: it prepares the image (pull, build once, convert for
Charliecloud), starts the command through the runtime, and records the image on the run.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runyard.backends.base import EngineStatus, TaskSlot
from runyard.client import Client
from runyard.runner import TaskExecution, TaskResult
from runyard.runner._container import TaskContainer, home_key
from runyard.testing import wait_for

pytestmark = pytest.mark.slow


def _container(image: str, runtime: str = "podman", **more: Any) -> dict[str, Any]:
    return {"image": image, "roles": {}, "build": None, "runtime": runtime, "command": None, "options": [],
            "build_options": [], "builder": "podman", "image_dir": None, **more}


def _log(client: Client, run_id: int) -> list[dict]:
    out, offset = [], 0
    while True:
        page = client.read_logs(run_id, offset)
        if not page["lines"]:
            return out
        out += page["lines"]
        offset = page["next_offset"]


def _texts(client: Client, run_id: int) -> list[str]:
    return [ln["text"] for ln in _log(client, run_id)]


SDK_SCRIPT = ("import os, runyard; runyard.init(); runyard.log({'in_image': 1.5}, step=0); "
              "open('model.txt', 'w').write('weights'); runyard.log_artifact('model.txt'); runyard.finish(); "
              "print('cwd', os.getcwd()); print('data', open('data.txt').read()); "
              "print('host home visible', os.path.exists('/root/.bashrc') or os.path.exists('/root/.ssh'))")


def test_a_command_runs_in_the_image_logs_through_the_sdk_and_the_image_is_recorded(
        podman_image: str, make_launch: Callable, client: Client, tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "data.txt").write_text("from the snapshot")
    launch = make_launch(f'python3 -c "{SDK_SCRIPT}"', container=_container(podman_image))
    result = TaskExecution(launch, TaskSlot(), client, work).run()

    texts = _texts(client, launch.run_id)
    assert result.status == EngineStatus.SUCCEEDED, texts
    assert "cwd /runyard/work" in texts and "data from the snapshot" in texts
    assert "host home visible False" in texts  # the server's home is not mounted
    assert client.metric_summaries(launch.run_id)["in_image"]["last"] == 1.5  # the SDK, mounted, without orjson
    assert [a["path"] for a in client.list_artifacts(launch.run_id)] == ["model.txt"]
    assert (work / "model.txt").read_text() == "weights"  # written through the bind, kept with the run's files
    tags = client.get_run(launch.run_id)["tags"]
    assert tags["runyard.image"] == podman_image and tags["runyard.image.runtime"] == "podman"
    assert tags["runyard.image.id"].startswith("sha256:") and len(tags["runyard.image.id"]) == 71


def test_the_token_is_passed_by_name_and_a_cancel_stops_the_container(
        podman_image: str, make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("python3 -c \"import time; print('up', flush=True); time.sleep(120)\"",
                         container=_container(podman_image), token="secret-" + uuid.uuid4().hex, grace_period_s=20.0)
    execution = TaskExecution(launch, TaskSlot(), client, tmp_path / "w")
    results: list[TaskResult] = []
    thread = threading.Thread(target=lambda: results.append(execution.run()), daemon=True)
    thread.start()
    wait_for(lambda: "up" in _texts(client, launch.run_id), 180, "the command to start in its container")
    cmdline = Path(f"/proc/{execution.pid}/cmdline").read_bytes().decode()
    assert "podman" in cmdline and "RUNYARD_TOKEN" in cmdline and launch.token not in cmdline
    t0 = time.monotonic()
    execution.cancel(message="canceled by the test")
    thread.join(30)
    took = time.monotonic() - t0
    assert results and results[0].status == EngineStatus.CANCELED
    assert took < 10, f"the cancel took {took:.1f}s: SIGTERM did not reach the command (podman --init)"
    left = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"label=runyard.home={home_key()}",
                           "--filter", f"name=^runyard-[0-9a-f]{{12}}-{launch.run_id}-"], capture_output=True, text=True,
                          check=True)
    assert left.stdout.strip() == ""


def test_a_build_is_made_once_for_runs_that_start_together_and_reused(
        podman_image: str, make_launch: Callable, client: Client, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex  # a new build key: this test builds for real
    build = {"steps": [f"echo {marker} > /built.txt"]}
    launches = [make_launch("cat /built.txt", container=_container(podman_image, build=build)) for _ in range(3)]
    results: list[TaskResult] = []
    threads = [threading.Thread(target=lambda la=la, i=i: results.append(
        TaskExecution(la, TaskSlot(), client, tmp_path / f"w{i}").run())) for i, la in enumerate(launches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert [r.status for r in results] == [EngineStatus.SUCCEEDED] * 3
    logs = [_texts(client, la.run_id) for la in launches]
    built = [texts for texts in logs if any(t.startswith("[runyard] building image") for t in texts)]
    reused = [texts for texts in logs if any("was built before" in t for t in texts)]
    assert (len(built), len(reused)) == (1, 2), logs
    assert all(marker in texts for texts in logs)
    tags = [client.get_run(la.run_id)["tags"] for la in launches]
    assert len({t["runyard.image.id"] for t in tags}) == 1 and len({t["runyard.image.build"] for t in tags}) == 1
    assert sum("runyard.image.built_on" in t for t in tags) == 1
    assert tags[0]["runyard.image"].startswith("localhost/runyard-build:")


def test_a_failing_build_fails_the_run_with_the_build_s_last_lines(
        podman_image: str, make_launch: Callable, client: Client, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    build = {"steps": [f"echo no-such-package-{marker} >&2 && exit 3"]}
    launch = make_launch("echo never", container=_container(podman_image, build=build))
    result = TaskExecution(launch, TaskSlot(), client, tmp_path / "w").run()

    assert result.status == EngineStatus.FAILED
    assert result.reason.startswith("image build failed")
    assert f"no-such-package-{marker}" in result.message
    run = client.get_run(launch.run_id)
    assert run["status"] == "failed" and f"no-such-package-{marker}" in run["status_message"]
    assert "never" not in _texts(client, launch.run_id)


def test_an_image_that_is_not_here_and_names_no_registry_fails_with_what_to_do(
        podman_image: str, make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("echo never", container=_container("localhost/no-such-image:1"))
    result = TaskExecution(launch, TaskSlot(), client, tmp_path / "w").run()

    assert result.status == EngineStatus.FAILED
    assert "localhost/no-such-image:1 is not on" in result.message and "build:" in result.message


def test_charliecloud_runs_the_image_converted_once_into_image_dir(
        podman_image: str, make_launch: Callable, client: Client, tmp_path: Path) -> None:
    if subprocess.run(["which", "ch-run"], capture_output=True).returncode != 0:
        pytest.skip("ch-run is not installed")
    image_dir = tmp_path / "images"
    container = _container(podman_image, runtime="charliecloud", image_dir=str(image_dir))
    first = make_launch(f'python3 -c "{SDK_SCRIPT}"', container=container)
    work = tmp_path / "w1"
    work.mkdir()
    (work / "data.txt").write_text("from the snapshot")
    result = TaskExecution(first, TaskSlot(), client, work).run()
    texts = _texts(client, first.run_id)
    assert result.status == EngineStatus.SUCCEEDED, texts
    assert "cwd /runyard/work" in texts and "host home visible False" in texts
    assert client.metric_summaries(first.run_id)["in_image"]["last"] == 1.5
    assert [a["path"] for a in client.list_artifacts(first.run_id)] == ["model.txt"]
    tags = client.get_run(first.run_id)["tags"]
    assert tags["runyard.image.runtime"] == "charliecloud" and Path(tags["runyard.image.file"]).is_dir()

    second = make_launch("ls /runyard", container=container)
    assert TaskExecution(second, TaskSlot(), client, tmp_path / "w2").run().status == EngineStatus.SUCCEEDED
    assert any("was built before" in t for t in _texts(client, second.run_id))


def test_containers_of_two_servers_runs_with_the_same_ids_have_different_names(tmp_path: Path) -> None:
    """Two servers (or homes) number their runs from 1: podman's --replace must never stop the other's container."""
    from runyard.records.compute import RunLaunch

    def name(server_url: str) -> str:
        launch = RunLaunch(run_id=1, attempt=1, project="p", experiment_id=None, command="true", snapshot_id=None,
                           server_url=server_url, container={"image": "localhost/x:1", "roles": {}, "build": None})
        container = TaskContainer(launch, TaskSlot())
        container.prepared = type("Prepared", (), {"image": "localhost/x:1", "tags": {}})()
        argv, _ = container.command("true", {}, ["true"], tmp_path)
        return argv[argv.index("--name") + 1]

    a, b = name("http://127.0.0.1:8001"), name("http://127.0.0.1:8002")
    assert a != b and a.startswith("runyard-") and a.endswith("-1-1-main-0-1")
