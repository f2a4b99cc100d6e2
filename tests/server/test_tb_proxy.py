"""TensorBoard through the server: ``POST /api/v1/experiments/{id}/tensorboard`` and the ``/tb/<cap>/`` proxy.

A real server (sign-in required, users alice and bob) and real TensorBoard processes over real event files,
written by TensorBoard's own writer (``tensorboard.summary.Writer``) in a subprocess that registers
``tensorboard.compat.notf`` (TensorBoard's TensorFlow-free switch) and uploaded as ``tensorboard/`` artifacts.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest

from runyard.client import Client
from runyard.errors import Forbidden, NotFound, RunyardError
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

pytest.importorskip("tensorboard", reason="the tensorboard extra (pip install 'runyard[tensorboard]')")

ADMIN_PW = "admin-pw-0123456789"
IDLE_S = 4

WRITE = """
import sys, types
sys.modules.setdefault('tensorboard.compat.notf', types.ModuleType('tensorboard.compat.notf'))
from tensorboard.summary import Writer
w = Writer(sys.argv[1])
for step in range(3):
    w.add_scalar('loss', 1.0 / (step + 1), step=step)
w.close()
"""


def write_events(directory: Path) -> list[Path]:
    subprocess.run([sys.executable, "-c", WRITE, str(directory)], check=True, timeout=60)
    return sorted(directory.glob("*tfevents*"))


def tb_pids(server: LiveServer) -> list[int]:
    assert server.proc is not None
    return [p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)
            if "runyard.server._tbserve" in " ".join(p.cmdline())]


def get(server: LiveServer, path: str, headers: dict[str, str] | None = None,
        method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def tb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    servers = LiveServers(tmp_path_factory.mktemp("tb-proxy"))
    try:
        yield servers.start("tb", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                       "RUNYARD_SCHEDULER": "0", "RUNYARD_TENSORBOARD_IDLE_S": str(IDLE_S),
                                       "RUNYARD_TENSORBOARD_MAX": "1"})
    finally:
        servers.stop_all()


@pytest.fixture(scope="module")
def alice(tb_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, int, int]]:
    """alice's client, her experiment (one run with event files under tensorboard/train/) and its run id."""
    # Experiments need a backend users may submit to (nothing runs: the scheduler is off).
    (tb_server.home / "backends.yml").write_text("local: {type: local, allow: {}, run_as: shared}\n")
    with Client(tb_server.url) as admin:
        admin.login("admin", ADMIN_PW)
        admin.create_user("alice", "alice-pw-123")
        admin.create_user("bob", "bob-pw-1234")
    events = write_events(tmp_path_factory.mktemp("events"))
    with Client(tb_server.url) as c:
        c.login("alice", "alice-pw-123")
        c.create_project("tb-alice")
        exp = c.create_experiment("tb-alice", "mnist", {"project": "tb-alice", "command": "python train.py"})
        run = c.create_run("tb-alice", name="lr-0.1", experiment_id=exp["id"])
        for f in events:
            c.upload_artifact(run["id"], f"tensorboard/train/{f.name}", f.read_bytes())
        yield c, exp["id"], run["id"]


def test_post_answers_a_capability_url_whose_tensorboard_serves_the_runs_scalars(tb_server: LiveServer, alice) -> None:  # noqa: ANN001
    client, exp_id, run_id = alice
    assert client.request("GET", f"/experiments/{exp_id}/tensorboard").json() == {
        "experiment_id": exp_id, "runs": 1, "files": 1, "running": False}
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # two first requests at once start one process
        link, twin = pool.map(lambda _: client.request("POST", f"/experiments/{exp_id}/tensorboard").json(), range(2))
    started_s = time.monotonic() - t0
    assert twin["url"] != link["url"] and len(tb_pids(tb_server)) == 1
    assert link["url"].startswith("/tb/") and link["url"].endswith("/") and len(link["url"]) > 30
    assert (link["runs"], link["files"]) == (1, 1)
    base = link["url"]
    folder = f"{run_id}-lr-0.1/train"
    runs = json.loads(wait_runs(tb_server, base, folder))
    assert folder in runs
    status, headers, body = get(tb_server, f"{base}data/plugin/scalars/scalars?run={quote(folder)}&tag=loss")
    assert status == 200, body
    points = json.loads(body)
    assert [(p[1], round(p[2], 3)) for p in points] == [(0, 1.0), (1, 0.5), (2, 0.333)]
    # The page itself: sandboxed (no allow-same-origin), open to the opaque origin's fetches, no cookie.
    status, headers, body = get(tb_server, base, headers={"Cookie": "runyard_session=whatever"})
    assert status == 200 and b"<html" in body.lower()
    csp = headers["content-security-policy"]
    assert csp.startswith("sandbox allow-scripts") and "allow-same-origin" not in csp
    assert headers["access-control-allow-origin"] == "*" and "access-control-allow-credentials" not in headers
    assert "set-cookie" not in headers and "x-frame-options" not in headers
    # A second POST reuses the process (and its answer is quick).
    pids = tb_pids(tb_server)
    assert len(pids) == 1
    t0 = time.monotonic()
    again = client.request("POST", f"/experiments/{exp_id}/tensorboard").json()
    assert again["url"] != base and tb_pids(tb_server) == pids
    print(f"first POST (download + TensorBoard start) {started_s:.2f}s, second {time.monotonic() - t0:.2f}s")
    # The directory without its slash is sent to it (the page loads its data by relative URLs).
    status, headers, _ = get(tb_server, base[:-1])
    assert status == 308 and headers["location"] == base


def wait_runs(server: LiveServer, base: str, folder: str) -> bytes:
    deadline = time.monotonic() + 20
    while True:
        status, _, body = get(server, f"{base}data/runs")
        if status == 200 and folder.encode() in body:
            return body
        assert time.monotonic() < deadline, f"TensorBoard never listed {folder}: {status} {body[:300]!r}"
        time.sleep(0.2)


def test_new_event_files_are_fetched_by_a_new_post(tb_server: LiveServer, alice, tmp_path: Path) -> None:  # noqa: ANN001
    client, exp_id, run_id = alice
    link = client.request("POST", f"/experiments/{exp_id}/tensorboard").json()
    (extra,) = write_events(tmp_path)
    client.upload_artifact(run_id, f"tensorboard/val/{extra.name}", extra.read_bytes())
    again = client.request("POST", f"/experiments/{exp_id}/tensorboard").json()
    assert (again["runs"], again["files"]) == (1, 2)
    wait_runs(tb_server, link["url"], f"{run_id}-lr-0.1/val")  # the old link sees the new files too


def test_other_projects_viewers_bad_and_expired_capabilities_are_refused(tb_server: LiveServer, alice) -> None:  # noqa: ANN001
    client, exp_id, _ = alice
    with Client(tb_server.url) as bob:
        bob.login("bob", "bob-pw-1234")
        bob.create_project("tb-bob")
        with pytest.raises(NotFound):  # alice's private project: bob may not know it exists
            bob.request("POST", f"/experiments/{exp_id}/tensorboard")
        client.share_project("tb-alice", "bob", "viewer")
        link = bob.request("POST", f"/experiments/{exp_id}/tensorboard").json()
        assert get(tb_server, f"{link['url']}data/runs")[0] == 200
        client.unshare_project("tb-alice", "bob")
        # Access is read again at most every 5 s of use: after that bob's link stops working.
        deadline = time.monotonic() + 10
        while get(tb_server, f"{link['url']}data/runs")[0] == 200:
            assert time.monotonic() < deadline, "bob's link still works after he lost access"
            time.sleep(0.5)
        assert get(tb_server, f"{link['url']}data/runs")[0] == 404
    for bad in ("/tb/not-a-capability/", "/tb/not-a-capability/data/runs", "/tb/x"):
        status, headers, body = get(tb_server, bad)
        assert status == 404 and b"TensorBoard link" in body, (bad, body)
        assert "sandbox" in headers["content-security-policy"]
    with Client(tb_server.url) as anonymous, pytest.raises(RunyardError) as e:
        anonymous.request("POST", f"/experiments/{exp_id}/tensorboard")
    assert not isinstance(e.value, Forbidden) and "sign-in" in str(e.value)


def test_the_app_cookie_never_reaches_tensorboard_and_a_form_post_passes(tb_server: LiveServer, alice) -> None:  # noqa: ANN001
    client, exp_id, _ = alice
    link = client.request("POST", f"/experiments/{exp_id}/tensorboard").json()
    # TensorBoard's own POSTs (forms, from the sandbox's opaque origin) are not the app's writes: no 415/403.
    status, headers, _ = get(tb_server, f"{link['url']}data/plugin/scalars/scalars_multirun", method="POST",
                             body=b"tag=loss&runs=%5B%5D", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                                   "Origin": "null", "Cookie": "runyard_session=x",
                                                                   "X-XSRF-Protected": "1"})
    assert status == 200 and "set-cookie" not in headers
    status, headers, _ = get(tb_server, f"{link['url']}data/runs", method="OPTIONS",
                             headers={"Origin": "null", "Access-Control-Request-Method": "POST"})
    assert status == 204 and headers["access-control-allow-origin"] == "*"


def test_cli_prints_the_servers_link(tb_server: LiveServer, alice, tmp_path: Path) -> None:  # noqa: ANN001
    client, exp_id, run_id = alice
    token = client.create_token("cli")["token"]
    env = {**os.environ, "RUNYARD_SERVER": tb_server.url, "RUNYARD_TOKEN": token, "RUNYARD_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "runyard.cli", "tensorboard", str(exp_id), "--server", "--json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    link = json.loads(out.stdout)
    assert link["url"].startswith(f"{tb_server.url}/tb/") and link["runs"] == 1
    status, _, body = get(tb_server, link["url"][len(tb_server.url):] + "data/runs")
    assert status == 200 and f"{run_id}-lr-0.1/train".encode() in body


def test_busy_limit_idle_stop_and_server_stop(tb_server: LiveServer, alice) -> None:  # noqa: ANN001
    client, exp_id, _ = alice
    link = client.request("POST", f"/experiments/{exp_id}/tensorboard").json()
    other = client.create_experiment("tb-alice", "other", {"project": "tb-alice", "command": "python train.py"})
    run = client.create_run("tb-alice", name="r", experiment_id=other["id"])
    client.upload_artifact(run["id"], "tensorboard/x/events.out.tfevents.1", b"")
    with pytest.raises(RunyardError) as e:  # RUNYARD_TENSORBOARD_MAX=1 and the one process was just used
        client.request("POST", f"/experiments/{other['id']}/tensorboard")
    assert "RUNYARD_TENSORBOARD_MAX" in str(e.value)
    (pid,) = tb_pids(tb_server)
    deadline = time.monotonic() + IDLE_S + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "TensorBoard was not stopped when idle"
        time.sleep(0.2)
    # The capability outlives the process: the next request starts it again.
    assert get(tb_server, f"{link['url']}data/runs")[0] == 200
    (pid,) = tb_pids(tb_server)
    group = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pid]  # TensorBoard and its data server, if any
    assert pid in group
    tb_server.stop()
    for member in group:
        assert not psutil.pid_exists(member) or psutil.Process(member).status() == psutil.STATUS_ZOMBIE, member


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
