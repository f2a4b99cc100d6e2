"""The local backend's run_as pool without root: the agent switches accounts through sudo.

A server (and so its local agent) runs as an unprivileged account, ``runyard-agent-test``,
made by a session fixture, whose sudoers rule ``scripts/setup-job-accounts.sh 2 --sudo-for
runyard-agent-test`` writes (``/etc/sudoers.d/runyard-jobs``, removed at the end). Its
interpreter is Debian's ``/usr/bin/python3.11`` (the venv's lies under /root, 0700) with the
repository and the venv's site-packages on ``PYTHONPATH``; the jobs are bash scripts.

Two projects' jobs run at once as two pool accounts: each runs as its account, in the
allow-listed environment (no secret of the server's, no ``SUDO_*``), and cannot read the
other's working directory nor its ``/proc/<pid>/environ``, nor the server's database, its
home or the agent's files; no process's command line shows a token. Once they ended, their
directories are gone. An agent killed while a job runs is replaced, and the new one adopts
the job and reads its exit code. Skipped (with the reason) when not root or without sudo.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_sec_job_isolation import ENV_SCRIPT, HOLDER, POOL, REPO, SECRETS, Yard, _assert_no_secrets, _project, _wait

from runyard.backends.local import agent_dir, stop_agent
from runyard.client import Client
from runyard.testing import LiveServer

pytestmark = pytest.mark.slow

AGENT = "runyard-agent-test"
PYTHON = "/usr/bin/python3.11"
RULE = Path("/etc/sudoers.d/runyard-jobs")


@pytest.fixture(scope="session")
def sudo_accounts() -> Iterator[list[str]]:
    """The pool's two accounts and the agent's account, with its sudoers rule written by the script."""
    if os.geteuid() != 0:
        pytest.skip("the sudo route's tests need root (they create the accounts and write a sudoers rule)")
    if shutil.which("sudo") is None or shutil.which("visudo") is None:
        pytest.skip("sudo is not installed (scripts/test-setup.sh installs it)")
    if not os.access(PYTHON, os.X_OK):
        pytest.skip(f"{PYTHON} (the interpreter an unprivileged account can reach) is missing")
    created = False
    if subprocess.run(["id", "-u", AGENT], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", AGENT], check=True, capture_output=True)
        created = True
    try:
        res = subprocess.run([str(REPO / "scripts" / "setup-job-accounts.sh"), "2", "--sudo-for", AGENT],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"{AGENT} ALL=({POOL}-1,{POOL}-2) NOPASSWD: ALL" in RULE.read_text()
        yield [f"{POOL}-1", f"{POOL}-2"]
    finally:
        RULE.unlink(missing_ok=True)
        if created:
            subprocess.run(["userdel", AGENT], capture_output=True, check=False)


def _agent_env(home: Path) -> dict[str, str]:
    site = sysconfig.get_paths()["purelib"]
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": f"{REPO}{os.pathsep}{site}", "HOME": str(home),
            "LANG": "C.UTF-8", "RUNYARD_HOME": str(home)}


@pytest.fixture(scope="module")
def yard(sudo_accounts: list[str]) -> Iterator[Yard]:
    root = Path(tempfile.mkdtemp(prefix="runyard-sec-sudo-", dir="/var/tmp"))
    os.chmod(root, 0o755)
    y = Yard(root)
    entry = pwd.getpwnam(AGENT)
    y.home.mkdir(mode=0o700)
    y.out.mkdir()
    os.chmod(y.out, 0o1777)
    (y.home / "backends.yml").write_text(yaml.safe_dump({"isolated": {"type": "local", "run_as": {"pool": POOL, "size": 2}}}))
    (y.home / "initial-admin-password").write_text("generated-admin-password\n")
    os.chmod(y.home / "initial-admin-password", 0o600)
    (y.home / "artifacts").mkdir()
    for path in [y.home, *y.home.iterdir()]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    server = LiveServer(y.home, env=SECRETS, python=PYTHON, user=AGENT)
    server.env = {**_agent_env(y.home), **SECRETS, "RUNYARD_LOCAL_GPUS": "", "RUNYARD_WARM_AGENT": "0"}  # nothing of root's
    y.server = server
    try:
        server.start(timeout_s=60.0)
        y.client = Client(server.url)
        yield y
    finally:
        if y.client is not None:
            y.client.close()
        server.stop()
        stop_agent(agent_dir(y.home), timeout_s=30.0)
        from runyard.backends.local._accounts import default_jobs_dir

        shutil.rmtree(default_jobs_dir(agent_dir(y.home)), ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def _agent_pid(y: Yard) -> int:
    return int(json.loads((agent_dir(y.home) / "agent.json").read_text())["pid"])


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # effective
    raise AssertionError(f"no Uid line for {pid}")


DAEMON = """
setsid sleep 300 < /dev/null > /dev/null 2>&1 &
echo "$!" > "$OUT/daemon.pid"
"""


def _gone(pid: int) -> bool:
    try:
        return "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True


def _cmdline_has(proc: Path, value: bytes) -> bool:
    try:
        return value in (proc / "cmdline").read_bytes()
    except OSError:
        return False


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
list jobs-dir "$(dirname "$(dirname "$(cat "$OUT/holder.cwd")")")"
probe holder-file "$(cat "$OUT/holder.cwd")/job.sh"
probe holder-env-file "$(dirname "$(cat "$OUT/holder.cwd")")/.runyard-env.task0"
if cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -q 'RUNYARD_TOKE[N]='; then echo "READ cmdline-token"
else echo "DENIED cmdline-token"; fi
id -u > "$OUT/prober.uid"
touch "$OUT/prober.done"
echo END
"""


def test_two_projects_sudo_jobs_run_as_their_accounts_and_cannot_reach_each_other(yard: Yard,
                                                                                   sudo_accounts: list[str]) -> None:
    out = yard.out / "pair"
    out.mkdir()
    os.chmod(out, 0o1777)
    env = {"OUT": str(out), "HOME_DIR": str(yard.home)}
    holder = yard.submit(_project(yard.root, "sudo-holder", "isolated", ENV_SCRIPT + DAEMON + HOLDER, env))
    _wait(lambda: (out / "holder.cwd").exists(), "the holder job to start")
    agent_pid = _agent_pid(yard)
    assert pwd.getpwuid(_uid_of(agent_pid)).pw_name == AGENT  # the agent is not root: sudo switched accounts
    # The holder's token is in its environment, never in a command line (every account reads those).
    environ = Path(f"/proc/{int((out / 'holder.pid').read_text())}/environ").read_bytes().split(b"\0")
    token = next(v.split(b"=", 1)[1] for v in environ if v.startswith(b"RUNYARD_TOKEN="))
    assert token and not [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, token)]
    prober = yard.submit(_project(yard.root, "sudo-prober", "isolated", PROBER, env))
    prober_run = yard.finished_run(prober["id"])
    holder_run = yard.finished_run(holder["id"])
    assert prober_run["status"] == "succeeded" and holder_run["status"] == "succeeded", (prober_run, holder_run)
    holder_lines = yard.logs(holder_run["id"])
    _assert_no_secrets(holder_lines)
    assert not [ln for ln in holder_lines if ln.startswith("SUDO_")], holder_lines  # sudo's own variables are dropped
    assert any(ln.startswith("USER=runyard-job-") for ln in holder_lines), holder_lines
    lines = yard.logs(prober_run["id"])
    for path in ("runyard.db", "initial-admin-password", "agent/jobs/journal.jsonl", "artifacts"):
        assert (yard.home / path).exists(), path
    assert "READ self-environ" in lines, lines  # the probe works
    for what in ("environ", "database", "admin-password", "journal", "artifacts", "home", "workdir", "jobs-dir",
                 "holder-file", "holder-env-file", "cmdline-token"):
        assert f"DENIED {what}" in lines, f"the prober could read {what}:\n" + "\n".join(lines)
    holder_uid, prober_uid = (out / "holder.uid").read_text().strip(), (out / "prober.uid").read_text().strip()
    uids = {str(pwd.getpwnam(a).pw_uid) for a in sudo_accounts}
    assert holder_uid in uids and prober_uid in uids and holder_uid != prober_uid
    cwd = Path((out / "holder.cwd").read_text().strip())
    assert not cwd.is_relative_to(yard.home)
    # Its HOME (its working directory's parent) was its account's, 0700, while it ran; removed once it ended.
    assert (out / "holder.home").read_text().split() == [holder_uid, "700", str(cwd.parent)]
    assert any(ln == f"HOME={cwd.parent}" for ln in holder_lines), holder_lines
    _wait(lambda: not cwd.parent.exists(), "the ended jobs' directories to be removed", 15)
    assert (cwd.parent.parent.stat().st_mode & 0o7777) == 0o1733  # the accounts make their own directory in it
    assert not list((agent_dir(yard.home) / "work").glob("*/stage"))  # nor is the agent's staging copy left
    # The holder left a daemon out of its process group; before its account serves another project it is killed.
    daemon = int((out / "daemon.pid").read_text())
    assert not _gone(daemon) and str(_uid_of(daemon)) == holder_uid
    third = yard.submit(_project(yard.root, "sudo-third", "isolated", 'id -u > "$OUT/third.uid"\n', env))
    assert yard.finished_run(third["id"])["status"] == "succeeded"
    assert (out / "third.uid").read_text().strip() == holder_uid  # the pool's first account, free again
    _wait(lambda: _gone(daemon), "the holder's daemon to be killed", 10)


CRASH = """
echo started > "$OUT/crash.started"
for i in $(seq 1200); do [ -e "$OUT/crash.go" ] && break; sleep 0.1; done
pwd > "$OUT/crash.cwd"
echo END
exit 3
"""


def test_a_new_agent_adopts_a_running_sudo_job_and_reads_its_exit_code(yard: Yard) -> None:
    out = yard.out / "crash"
    out.mkdir()
    os.chmod(out, 0o1777)
    exp = yard.submit(_project(yard.root, "sudo-crash", "isolated", CRASH, {"OUT": str(out)}))
    _wait(lambda: (out / "crash.started").exists(), "the job to start")
    assert yard.client is not None
    client = yard.client
    _wait(lambda: client.list_runs(experiment_id=exp["id"], limit=1)["items"][0]["status"] == "running", "it to run")
    old = _agent_pid(yard)
    os.kill(old, signal.SIGKILL)  # the job (under sudo, in its own session) outlives it
    _wait(lambda: _gone(old), "the agent to die", 10)
    # The server's next poll starts a new agent (as the server's account), which adopts the job.
    _wait(lambda: (agent_dir(yard.home) / "agent.json").exists() and _agent_pid(yard) != old, "a new agent", 60)
    new = _agent_pid(yard)
    assert pwd.getpwuid(_uid_of(new)).pw_name == AGENT
    run = client.list_runs(experiment_id=exp["id"], limit=1)["items"][0]
    assert run["status"] == "running", run
    (out / "crash.go").touch()
    run = yard.finished_run(exp["id"])
    assert run["status"] == "failed" and run["exit_code"] == 3, run
    assert "exit-code file" in run["status_message"], run
    cwd = Path((out / "crash.cwd").read_text().strip())
    _wait(lambda: not cwd.parent.exists(), "the adopted job's directory to be removed", 15)


def test_check_of_a_non_root_agent_with_the_sudo_rule_is_ok(yard: Yard) -> None:
    code = ("from runyard.backends.local import LocalBackend; import sys; "
            f"r = {{c.name: c for c in LocalBackend({{'run_as': {{'pool': '{POOL}', 'size': 2}}}}).check()}}['run_as']; "
            "print(r.ok, r.detail)")
    entry = pwd.getpwnam(AGENT)
    res = subprocess.run([PYTHON, "-c", code], env=_agent_env(yard.home), user=entry.pw_uid, group=entry.pw_gid,
                         extra_groups=[], cwd="/", capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and res.stdout.startswith("True jobs run as runyard-job-1 .. runyard-job-2"), res


CANCELED = """
sleep 300 &
echo "$!" > "$OUT/child.pid"
echo "$$" > "$OUT/main.pid"
wait
"""


def test_a_canceled_sudo_job_ends_with_every_process_of_its_group(yard: Yard) -> None:
    """The agent signals the job's process group as its account (sudo itself is root's and out of reach)."""
    out = yard.out / "cancel"
    out.mkdir()
    os.chmod(out, 0o1777)
    exp = yard.submit(_project(yard.root, "sudo-cancel", "isolated", CANCELED, {"OUT": str(out)}))
    _wait(lambda: (out / "child.pid").exists() and (out / "main.pid").exists(), "the job to start")
    assert yard.client is not None
    client = yard.client
    _wait(lambda: client.list_runs(experiment_id=exp["id"], limit=1)["items"][0]["status"] == "running", "it to run")
    pids = [int((out / name).read_text()) for name in ("child.pid", "main.pid")]
    run_id = client.list_runs(experiment_id=exp["id"], limit=1)["items"][0]["id"]
    client.cancel_run(run_id)
    run = yard.finished_run(exp["id"])
    assert run["status"] == "canceled", run
    _wait(lambda: all(_gone(pid) for pid in pids), "the job's processes to end", 15)


def test_a_distributed_sudo_job_runs_every_task_as_one_account(yard: Yard, sudo_accounts: list[str]) -> None:
    """Its tasks share the job's directory (made once, by whichever task comes first) and its account."""
    out = yard.out / "dist"
    out.mkdir()
    os.chmod(out, 0o1777)
    path = _project(yard.root, "sudo-dist", "isolated", 'echo "$(id -u) $RANK $(pwd)" > "$OUT/rank.$RANK"\n',
                    {"OUT": str(out)})
    spec = yaml.safe_load((path / "runyard.yml").read_text())
    spec["distributed"] = {"framework": "pytorch", "worker": 1}
    (path / "runyard.yml").write_text(yaml.safe_dump(spec))
    run = yard.finished_run(yard.submit(path)["id"])
    assert run["status"] == "succeeded", run
    rows = [(out / f"rank.{rank}").read_text().split() for rank in (0, 1)]
    uids = {str(pwd.getpwnam(a).pw_uid) for a in sudo_accounts}
    assert rows[0][0] == rows[1][0] and rows[0][0] in uids, rows
    assert Path(rows[0][2]).parent == Path(rows[1][2]).parent and rows[0][2] != rows[1][2], rows


def test_clean_work_removes_an_old_sudo_jobs_directory_as_its_account(yard: Yard, sudo_accounts: list[str]) -> None:
    """A job directory its agent could not remove (it died first) goes, as its account, with the job's old work."""
    from runyard.backends.local._accounts import default_jobs_dir

    jobs_dir = Path(default_jobs_dir(agent_dir(yard.home)))
    home = jobs_dir / "990.1"
    account, agent = pwd.getpwnam(sudo_accounts[0]), pwd.getpwnam(AGENT)
    if not jobs_dir.exists():  # as the agent makes it without root
        jobs_dir.mkdir()
        os.chown(jobs_dir, agent.pw_uid, agent.pw_gid)
        os.chmod(jobs_dir, 0o1733)
    (home / "main-0").mkdir(mode=0o700, parents=True)
    (home / "main-0" / "left.txt").write_text("x")
    for path in (home, home / "main-0", home / "main-0" / "left.txt"):
        os.chown(path, account.pw_uid, account.pw_gid)
    os.chmod(home, 0o700)
    work = agent_dir(yard.home) / "work" / "990.1"
    (work / ".runyard").mkdir(parents=True)
    (work / ".runyard" / "home").write_text(f"{home}\n{sudo_accounts[0]}\n")
    for path in (work.parent.parent, work.parent, work, work / ".runyard", work / ".runyard" / "home"):
        os.chown(path, agent.pw_uid, agent.pw_gid)
    os.utime(work, (time.time() - 3600, time.time() - 3600))
    code = ("from pathlib import Path; from runyard.backends.local._server import Agent; "
            f"print(Agent(Path({str(agent_dir(yard.home))!r})).clean_work(max_age_s=60))")
    res = subprocess.run([PYTHON, "-c", code], env=_agent_env(yard.home), user=agent.pw_uid, group=agent.pw_gid,
                         extra_groups=[], cwd="/", capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and "990.1" in res.stdout, res
    assert not home.exists() and not work.exists()


def test_the_sudoers_rule_lets_the_agent_become_the_pool_accounts_only(sudo_accounts: list[str]) -> None:
    assert RULE.read_text().splitlines()[-2:] == [f"Defaults:{AGENT} !use_pty, !pam_session",
                                                  f"{AGENT} ALL=({POOL}-1,{POOL}-2) NOPASSWD: ALL"]
    assert RULE.stat().st_mode & 0o777 == 0o440
    for target in (["-u", "root"], ["-u", sudo_accounts[0], "-g", "root"], ["-u", "nobody"]):
        res = subprocess.run(["runuser", "-u", AGENT, "--", "sudo", "-n", *target, "--", "/bin/true"],
                             capture_output=True, text=True, check=False)
        assert res.returncode != 0, (target, res)
    script = str(REPO / "scripts" / "setup-job-accounts.sh")
    for agent in ("root", "no-such-account-x"):
        res = subprocess.run([script, "2", "--sudo-for", agent], capture_output=True, text=True, check=False)
        assert res.returncode == 2 and "--sudo-for" in res.stderr, res
    assert f"{AGENT} ALL=" in RULE.read_text()  # a refused call leaves the rule as it was
