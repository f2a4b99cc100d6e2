"""An SDK run started from plain Python records what a launched run records: console, system metrics, environment.

The scripts run as their own processes (``python train.py`` in a git work tree) against the
shared live server, as a user runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runyard.client import Client
from runyard.testing import LiveServer

SCRIPT = """
import sys, time
import runyard

run = runyard.init(project="sdk-capture", name=sys.argv[1], capture_output=sys.argv[2] == "on")
print("run", run.id, flush=True)
print("epoch 1 | valid ppl 250.02")
print("to stderr", file=sys.stderr)
for i in range(3):
    print(f"\\rprogress {i}", end="")
print()
t = time.time()
while time.time() - t < 1.0:  # busy: the sampler sees CPU
    sum(range(1000))
runyard.log({"loss": 0.5})
runyard.finish()
print("after finish: not captured")
"""


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _run_script(server: LiveServer, tmp_path: Path, name: str, capture: str) -> tuple[int, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(RUNYARD_SERVER=server.url, RUNYARD_HOME=str(tmp_path / "home"), RUNYARD_SDK_SAMPLE_S="0.2")
    res = subprocess.run([sys.executable, "train.py", name, capture], cwd=tmp_path / "repo", env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    run_id = int(next(line for line in res.stdout.splitlines() if line.startswith("run ")).split()[1])
    return run_id, res


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    (path / "train.py").write_text(SCRIPT)
    _git(path, "init", "-q")
    _git(path, "add", "train.py")
    _git(path, "commit", "-qm", "first")
    with open(path / "train.py", "a") as f:
        f.write("# edited after the commit\n")
    return path


def _logs(client: Client, run_id: int) -> list[tuple[str, str]]:
    page = client.read_logs(run_id, 0, limit=10000)
    return [(ln["stream"], ln["text"]) for ln in page["lines"]]


def test_a_plain_python_run_keeps_console_system_metrics_and_git(server: LiveServer, repo: Path, tmp_path: Path) -> None:
    run_id, res = _run_script(server, tmp_path, "captured", "on")
    # A tee, not a redirect: the user still sees everything.
    assert "epoch 1 | valid ppl 250.02" in res.stdout and "to stderr" in res.stderr
    client = Client(server.url)
    try:
        logs = _logs(client, run_id)
        assert ("stdout", "epoch 1 | valid ppl 250.02") in logs, logs
        assert ("stderr", "to stderr") in logs
        assert ("stdout", "progress 2") in logs  # a \\r redraw keeps what a terminal shows
        assert not any("after finish" in text for _, text in logs)
        run = client.get_run(run_id)
        assert run["status"] == "succeeded"
        tags = run["tags"]
        assert tags["git.commit"] == _git(repo, "rev-parse", "HEAD")
        assert tags["git.dirty"] == "true"
        assert tags["python"].endswith(".".join(map(str, sys.version_info[:3])))
        assert "train.py captured on" in tags["command"] and tags["host"]
        summaries = client.metric_summaries(run_id)
        assert "sys/cpu_percent" in summaries and "sys/memory_mb" in summaries, summaries
        assert summaries["loss"]["last"] == 0.5
        paths = {a["path"] for a in client.list_artifacts(run_id, prefix="environment/")}
        assert paths == {"environment/packages.txt", "environment/git.diff"}
        diff = client.download_artifact(run_id, "environment/git.diff", tmp_path / "git.diff")
        assert diff and "+# edited after the commit" in (tmp_path / "git.diff").read_text()
        client.download_artifact(run_id, "environment/packages.txt", tmp_path / "packages.txt")
        assert any(line.lower().startswith("psutil==") for line in (tmp_path / "packages.txt").read_text().splitlines())
    finally:
        client.close()


def test_capture_output_false_records_none_of_it(server: LiveServer, repo: Path, tmp_path: Path) -> None:
    run_id, res = _run_script(server, tmp_path, "quiet", "off")
    assert "epoch 1" in res.stdout
    client = Client(server.url)
    try:
        assert _logs(client, run_id) == []
        run = client.get_run(run_id)
        assert "git.commit" not in run["tags"] and "host" not in run["tags"]
        assert set(client.metric_summaries(run_id)) == {"loss"}
        assert client.list_artifacts(run_id) == []
    finally:
        client.close()


def test_init_leaves_the_slow_parts_of_the_capture_to_its_thread(server: LiveServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """git, the package list and the first system sample happen on the capture's own thread: init() returns
    while they are still held (a timing comparison would measure the machine, not the code)."""
    import threading

    import runyard
    import runyard._git
    import runyard.sdk._capture as capture

    release, reached = threading.Event(), threading.Event()
    callers: list[str] = []

    def held(real):  # noqa: ANN001, ANN202
        def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            callers.append(threading.current_thread().name)
            reached.set()
            release.wait(30)
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(capture, "_packages", held(capture._packages))
    monkeypatch.setattr(runyard._git, "git_info", held(runyard._git.git_info))
    run = runyard.init(project="sdk-capture", capture_output=True)
    try:
        assert reached.wait(30), "the capture never recorded the environment"
        assert callers and set(callers) == {"runyard-capture"}, callers  # not the caller's thread
        assert runyard.active_run() is run  # init() has returned while the environment is still being read
    finally:
        release.set()
        run.finish()
    assert client_tags(server, run.id).get("host")


def client_tags(server: LiveServer, run_id: int) -> dict[str, str]:
    with Client(server.url) as client:
        tags: dict[str, str] = client.get_run(run_id)["tags"]
        return tags
