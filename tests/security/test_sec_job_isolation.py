"""Jobs of the local backend are kept from the server's secrets and from each other.

A live server is started with secrets in its environment (RUNYARD_ADMIN_PASSWORD,
AWS_SECRET_ACCESS_KEY, a database URL with a password): a job's environment is built
from an allow-list, so none of them reaches it, nor the local agent that starts it.

With ``run_as: {pool: runyard-job, size: 2}`` (accounts from scripts/setup-job-accounts.sh,
created by a session fixture; the tests skip when not root) two projects' jobs run at once
as two accounts: the prober cannot read the server's database, its initial-admin-password
file, its artifacts, the agent's files, nor the other job's /proc/<pid>/environ (its token)
or working directory. The server's home is 0700 as docs/operating.md asks; its parent is
world-traversable, so nothing but the design keeps the jobs out.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runyard.backends.local import LocalBackend, agent_dir, stop_agent
from runyard.client import Client
from runyard.errors import SubmitError
from runyard.testing import LiveServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECRETS = {
    "RUNYARD_ADMIN_PASSWORD": "admin-pw-3f9c1e7a",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-9b2d4c6e",
    "AWS_ACCESS_KEY_ID": "AKIASECRETKEYID0000",
    "MY_SERVICE_API_KEY": "api-key-5e8a1b3f",
}
POOL = "runyard-job"
POOL_STORAGE_CONF = "/etc/containers/runyard-pool-storage.conf"
WAIT_S = 90.0


def _wait(predicate: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def job_accounts() -> list[str]:
    """The pool's two accounts, created by scripts/setup-job-accounts.sh (root only)."""
    if os.geteuid() != 0:
        pytest.skip("run_as pool tests need root (they create the accounts runyard-job-1..2 and start jobs as them)")
    subprocess.run([str(REPO / "scripts" / "setup-job-accounts.sh"), "2"], check=True, capture_output=True, text=True)
    return [f"{POOL}-1", f"{POOL}-2"]


class Yard:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.out = root / "out"
        self.server: LiveServer | None = None
        self.client: Client | None = None

    def submit(self, project: Path) -> dict[str, Any]:
        assert self.server is not None
        env = {**os.environ, "RUNYARD_SERVER": self.server.url, "RUNYARD_HOME": str(self.root / "cli-home")}
        for var in ("RUNYARD_TOKEN", "RUNYARD_DATABASE_URL", *SECRETS):
            env.pop(var, None)
        res = subprocess.run([sys.executable, "-m", "runyard.cli", "run", str(project), "--json"], env=env,
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
        assert res.returncode == 0, f"runyard run failed:\n{res.stdout}\n{res.stderr}"
        return json.loads(res.stdout)

    def finished_run(self, experiment_id: int) -> dict[str, Any]:
        assert self.client is not None
        client = self.client

        def ended() -> dict[str, Any] | None:
            items = client.list_runs(experiment_id=experiment_id, limit=10)["items"]
            return items[0] if items and items[0]["status"] in ("succeeded", "failed", "canceled") else None

        return _wait(ended, f"experiment {experiment_id}'s run to end")

    def logs(self, run_id: int) -> list[str]:
        assert self.client is not None
        client = self.client

        def read() -> list[str]:  # the final lines may trail the status by a moment
            return [ln["text"] for ln in client.read_logs(run_id, 0, limit=10000)["lines"]]

        lines = read()
        if not any("END" in ln for ln in lines):
            time.sleep(1.0)
            lines = read()
        return lines


@pytest.fixture(scope="module")
def yard(job_accounts: list[str]) -> Iterator[Yard]:
    """A server whose environment holds secrets, with the backend ``isolated`` (the pool) besides ``local``.

    Its home is 0700 under a world-traversable directory (the deployment docs/operating.md describes).
    """
    root = Path(tempfile.mkdtemp(prefix="runyard-sec-", dir="/var/tmp"))
    os.chmod(root, 0o755)
    y = Yard(root)
    y.home.mkdir(mode=0o700)
    y.out.mkdir()
    os.chmod(y.out, 0o1777)
    # Rootless podman as the pool's accounts keeps their images in the storage scripts/setup-containers.sh made.
    pool = {"type": "local", "run_as": {"pool": POOL, "size": 2}, "env": {"CONTAINERS_STORAGE_CONF": POOL_STORAGE_CONF}}
    (y.home / "backends.yml").write_text(yaml.safe_dump({"isolated": pool}))
    pw = y.home / "initial-admin-password"
    pw.write_text("generated-admin-password\n")
    os.chmod(pw, 0o600)
    env = {**SECRETS, "RUNYARD_LOCAL_GPUS": ""}
    y.server = LiveServer(y.home, env=env)
    try:
        y.server.start(timeout_s=60.0)
        y.client = Client(y.server.url)
        yield y
    finally:
        if y.client is not None:
            y.client.close()
        y.server.stop()
        stop_agent(agent_dir(y.home), timeout_s=30.0)
        from runyard.backends.local._accounts import default_jobs_dir

        shutil.rmtree(default_jobs_dir(agent_dir(y.home)), ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def _project(root: Path, name: str, backend: str, script: str, env: dict[str, str] | None = None) -> Path:
    path = root / "projects" / name
    path.mkdir(parents=True)
    spec: dict[str, Any] = {"project": name, "backend": backend, "command": "bash job.sh", "resources": {"cpus": 0.1}}
    if env:
        spec["env"] = env
    (path / "runyard.yml").write_text(yaml.safe_dump(spec))
    (path / "job.sh").write_text(textwrap.dedent(script).lstrip())
    return path


ENV_SCRIPT = """
env | sort
echo "UID=$(id -u)"
echo END
"""


def _assert_no_secrets(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert "END" in text, text
    for name, value in SECRETS.items():
        assert value not in text, f"{name}'s value reached the job:\n{text}"
        assert f"{name}=" not in text, f"{name} reached the job:\n{text}"
    assert "RUNYARD_DATABASE_URL=" not in text
    assert "RUNYARD_TOKEN=" in text, "the job lost the variables Runyard gives it:\n" + text  # Runyard's own still get through


def test_a_job_on_the_shared_local_backend_sees_none_of_the_servers_secrets(yard: Yard) -> None:
    exp = yard.submit(_project(yard.root, "sec-env-shared", "local", ENV_SCRIPT, {"MY_OWN": "kept"}))
    run = yard.finished_run(exp["id"])
    assert run["status"] == "succeeded", run
    lines = yard.logs(run["id"])
    _assert_no_secrets(lines)
    assert "MY_OWN=kept" in lines  # the experiment's env still reaches it
    # Nor does the agent that starts jobs hold them (a job of the same account could read its environ).
    agent = json.loads((agent_dir(yard.home) / "agent.json").read_text())
    environ = Path(f"/proc/{agent['pid']}/environ").read_bytes().decode(errors="replace")
    for name, value in SECRETS.items():
        assert value not in environ, f"the agent holds {name}"


def test_a_pool_job_sees_none_of_the_servers_secrets_and_runs_as_a_pool_account(yard: Yard, job_accounts: list[str]) -> None:
    exp = yard.submit(_project(yard.root, "sec-env-pool", "isolated", ENV_SCRIPT))
    run = yard.finished_run(exp["id"])
    assert run["status"] == "succeeded", run
    lines = yard.logs(run["id"])
    _assert_no_secrets(lines)
    uids = {str(pwd.getpwnam(a).pw_uid) for a in job_accounts}
    assert any(ln.startswith("UID=") and ln[4:] in uids for ln in lines), lines
    assert any(ln.startswith("USER=runyard-job-") for ln in lines), lines


HOLDER = """
echo "$$" > "$OUT/holder.pid"
id -u > "$OUT/holder.uid"
stat -c '%u %a %n' "$HOME" > "$OUT/holder.home"
pwd > "$OUT/holder.cwd.tmp" && mv "$OUT/holder.cwd.tmp" "$OUT/holder.cwd"
for i in $(seq 600); do [ -e "$OUT/prober.done" ] && break; sleep 0.1; done
echo END
"""

PROBER = """
for i in $(seq 600); do [ -e "$OUT/holder.cwd" ] && break; sleep 0.1; done
pid=$(cat "$OUT/holder.pid")
probe() { if cat "$2" > /dev/null 2>&1; then echo "READ $1"; else echo "DENIED $1"; fi; }
list() { if ls "$2" > /dev/null 2>&1; then echo "READ $1"; else echo "DENIED $1"; fi; }
probe self-environ /proc/self/environ
probe environ "/proc/$pid/environ"
probe database "$HOME_DIR/runyard.db"
probe admin-password "$HOME_DIR/initial-admin-password"
probe journal "$HOME_DIR/agent/jobs/journal.jsonl"
list artifacts "$HOME_DIR/artifacts"
list home "$HOME_DIR"
list workdir "$(cat "$OUT/holder.cwd")"
probe holder-file "$(cat "$OUT/holder.cwd")/job.sh"
id -u > "$OUT/prober.uid"
touch "$OUT/prober.done"
echo END
"""


def test_two_projects_pool_jobs_cannot_reach_each_other_nor_the_servers_files(yard: Yard, job_accounts: list[str]) -> None:
    out = yard.out / "pair"
    out.mkdir()
    os.chmod(out, 0o1777)
    (yard.home / "artifacts").mkdir(exist_ok=True)
    env = {"OUT": str(out), "HOME_DIR": str(yard.home)}
    holder = yard.submit(_project(yard.root, "sec-holder", "isolated", HOLDER, env))
    _wait(lambda: (out / "holder.cwd").exists(), "the holder job to start")
    prober = yard.submit(_project(yard.root, "sec-prober", "isolated", PROBER, env))
    prober_run = yard.finished_run(prober["id"])
    holder_run = yard.finished_run(holder["id"])
    assert prober_run["status"] == "succeeded" and holder_run["status"] == "succeeded", (prober_run, holder_run)
    lines = yard.logs(prober_run["id"])
    # The files exist (the server's account reads them): DENIED means kept out, not missing.
    for path in ("runyard.db", "initial-admin-password", "agent/jobs/journal.jsonl", "artifacts"):
        assert (yard.home / path).exists(), path
    assert "READ self-environ" in lines, lines  # the probe works
    for what in ("environ", "database", "admin-password", "journal", "artifacts", "home", "workdir", "holder-file"):
        assert f"DENIED {what}" in lines, f"the prober could read {what}:\n" + "\n".join(lines)
    holder_uid, prober_uid = (out / "holder.uid").read_text().strip(), (out / "prober.uid").read_text().strip()
    uids = {str(pwd.getpwnam(a).pw_uid) for a in job_accounts}
    assert holder_uid in uids and prober_uid in uids and holder_uid != prober_uid
    # The holder's directory (its HOME, its working directory's parent): its account's, 0700, outside the
    # server's home while it ran; taken back (root's) once it ended.
    cwd = Path((out / "holder.cwd").read_text().strip())
    assert not cwd.is_relative_to(yard.home)
    assert (out / "holder.home").read_text().split() == [holder_uid, "700", str(cwd.parent)]
    assert (cwd.parent.stat().st_mode & 0o777) == 0o700 and cwd.parent.stat().st_uid == 0


def test_check_says_what_each_run_as_gives(job_accounts: list[str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shared = {c.name: c for c in LocalBackend({"run_as": "shared"}, home=tmp_path).check()}["run_as"]
    assert shared.ok and "can see each other" in shared.detail
    pool = LocalBackend({"run_as": {"pool": POOL, "size": 2}}, home=tmp_path)
    assert {c.name: c for c in pool.check()}["run_as"].ok
    missing = {c.name: c for c in LocalBackend({"run_as": {"pool": POOL, "size": 9}}, home=tmp_path).check()}["run_as"]
    assert not missing.ok and "runyard-job-9" in missing.detail and "setup-job-accounts.sh 9" in missing.hint
    import runyard.runner._sudo

    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the server's account is not root (and no sudo route)
    monkeypatch.setattr(runyard.runner._sudo, "sudo_works", lambda account: "a password is required")
    not_root = {c.name: c for c in pool.check()}["run_as"]
    assert not not_root.ok and "root" in not_root.detail and "sudo -n -u runyard-job-1 true" in not_root.detail
    assert "run_as: shared" in not_root.hint and "--sudo-for" in not_root.hint
    assert "ALL=(runyard-job-1,runyard-job-2) NOPASSWD: ALL" in not_root.hint
    with pytest.raises(SubmitError, match="needs the local agent to run as root"):
        pool._run_as()


def test_a_pool_account_serves_one_project_at_a_time_and_is_reused_once_its_jobs_ended(
        job_accounts: list[str], make_launch: Any, runyard_home: Path) -> None:
    """A pool of one account: project A's two jobs share it; project B's job waits until both ended, then gets it."""
    from runyard.backends.base import EngineStatus, Resources
    from runyard.backends.local._accounts import default_jobs_dir
    from runyard.testing.backend_contract import wait_state, wait_terminal

    gates = Path(tempfile.mkdtemp(prefix="runyard-sec-gates-", dir="/var/tmp"))
    os.chmod(gates, 0o1777)
    backend = LocalBackend({"run_as": {"pool": POOL, "size": 1}})

    def gated(name: str, before: str = "") -> str:
        return f"{before}id -u > {gates}/{name}.uid; while [ ! -e {gates}/{name}.go ]; do sleep 0.05; done"

    # a1 leaves a daemon out of its process group (it outlives a1), and notes its home; b1 probes both.
    daemon = f"setsid sleep 300 < /dev/null > /dev/null 2>&1 & echo $! > {gates}/daemon.pid; pwd > {gates}/a1.cwd; "
    probe = (f'if ls "$(dirname "$(cat {gates}/a1.cwd)")" > /dev/null 2>&1; then echo READ > {gates}/b1.home; '
             f'else echo DENIED > {gates}/b1.home; fi; ')

    try:
        small = Resources(cpus=0.1, memory_mb=0, gpus=0)
        commands = {"a1": gated("a1", daemon), "a2": gated("a2"), "b1": gated("b1", probe)}
        launches = {name: make_launch(commands[name], project=f"proj-{name[0]}", resources=small) for name in commands}
        ids = {name: backend.submit(launch, at_most=5) for name, launch in launches.items()}
        _wait(lambda: (gates / "a1.uid").exists() and (gates / "a2.uid").exists(), "project A's jobs to start", 30)
        uid = str(pwd.getpwnam(f"{POOL}-1").pw_uid)
        assert (gates / "a1.uid").read_text().strip() == (gates / "a2.uid").read_text().strip() == uid
        state = wait_state(backend, ids["b1"], lambda s: "job account" in s.reason, 10, "B to wait for an account")
        assert state.status is EngineStatus.PENDING and not (gates / "b1.uid").exists()
        (gates / "a1.go").touch()
        assert wait_terminal(backend, ids["a1"], 20).status is EngineStatus.SUCCEEDED
        time.sleep(0.5)
        assert not (gates / "b1.uid").exists()  # A still runs a job as the account
        (gates / "a2.go").touch()
        assert wait_terminal(backend, ids["a2"], 20).status is EngineStatus.SUCCEEDED
        daemon_pid = int((gates / "daemon.pid").read_text())
        _wait(lambda: (gates / "b1.uid").exists(), "project B's job to get the account", 20)
        assert (gates / "b1.uid").read_text().strip() == uid
        # Nothing of project A's is left to it: A's daemon was killed, A's job directory is not its any more.
        assert not Path(f"/proc/{daemon_pid}").exists() or "Z" in Path(f"/proc/{daemon_pid}/stat").read_text().split()[2]
        assert (gates / "b1.home").read_text().strip() == "DENIED"
        (gates / "b1.go").touch()
        assert wait_terminal(backend, ids["b1"], 20).status is EngineStatus.SUCCEEDED
    finally:
        for name in ("a1", "a2", "b1"):
            (gates / f"{name}.go").touch()
        backend.close()
        stop_agent(agent_dir(runyard_home), timeout_s=30.0)
        shutil.rmtree(default_jobs_dir(agent_dir(runyard_home)), ignore_errors=True)
        shutil.rmtree(gates, ignore_errors=True)


IMAGE_PROBE = """
echo "UID_IN=$(id -u)"
touch written-by-job
if ls "$HOME_DIR" > /dev/null 2>&1; then echo "READ server-home"; else echo "DENIED server-home"; fi
python3 -c "import runyard; runyard.init(); runyard.log({'from_pool_image': 2.0}, step=0); runyard.finish()"
echo END
"""


def test_a_pool_job_runs_in_its_image_with_rootless_podman_as_its_account(yard: Yard, job_accounts: list[str],
                                                                         podman_image: str) -> None:
    """podman as the pool's account (no root inside the host): its image from the account's own storage."""
    from runyard.testing.containers import rootless_as

    if not Path(POOL_STORAGE_CONF).exists():
        pytest.fail(f"{POOL_STORAGE_CONF} is missing: run `bash scripts/test-setup.sh` (setup-containers.sh --rootless)")
    for account in job_accounts:  # each account keeps its own images (a build: is built once per account)
        with rootless_as(account, storage_conf=POOL_STORAGE_CONF) as podman:
            podman.load(podman_image)
    project = _project(yard.root, "sec-pool-image", "isolated", IMAGE_PROBE, {"HOME_DIR": str(yard.home)})
    spec = yaml.safe_load((project / "runyard.yml").read_text())
    spec["image"] = podman_image
    (project / "runyard.yml").write_text(yaml.safe_dump(spec))
    exp = yard.submit(project)
    run = yard.finished_run(exp["id"])
    lines = yard.logs(run["id"])
    assert run["status"] == "succeeded", (run, lines)
    assert "UID_IN=0" in lines  # root of the account's user namespace, not of the host
    assert "DENIED server-home" in lines
    assert yard.client is not None
    assert yard.client.metric_summaries(run["id"])["from_pool_image"]["last"] == 2.0
    tags = yard.client.get_run(run["id"])["tags"]
    assert tags["runyard.image.runtime"] == "podman" and tags["runyard.image.id"].startswith("sha256:")
