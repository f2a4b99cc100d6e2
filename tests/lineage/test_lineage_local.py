"""A real experiment on the local backend reads its declared dataset read-only at datasets/<name>/ through
RUNYARD_DATASET_<NAME>, and a run's code reads one more with runyard.use_dataset.

Two servers: one whose ``local`` backend runs jobs as the server's own account (here root, which file modes do
not stop: the run checks that no write bit is left), and one whose ``isolated`` backend runs them as the pool's
accounts (``run_as``), where writing into the data must fail.
"""

from __future__ import annotations

import json
import os
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
from lineage_helpers import add_dataset_version, upload_snapshot

from runyard.backends.local import agent_dir, stop_agent
from runyard.client import Client
from runyard.store import Store
from runyard.testing import LiveServer

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DATA = {"digits.csv": b"1,2,3\n", "sub/labels.txt": b"a\nb\n"}
WAIT_S = 120.0

CHECK = r'''
import os, stat, sys
from pathlib import Path
import runyard

root = Path(os.environ["RUNYARD_DATASET_TRAIN"])
assert root == Path.cwd().resolve() / "datasets" / "train", (root, Path.cwd())
assert (root / "digits.csv").read_bytes() == b"1,2,3\n"
assert (root / "sub" / "labels.txt").read_text() == "a\nb\n"
ref = root / "scan.bin"
assert ref.is_symlink() and ref.read_bytes() == b"scan-bytes", ref  # a reference: linked in place
for folder, dirs, files in os.walk(root):
    for name in dirs + files:
        path = os.path.join(folder, name)
        if not os.path.islink(path):
            assert os.stat(path).st_mode & 0o222 == 0, f"{path} is writable: {oct(os.stat(path).st_mode)}"
if os.geteuid() != 0:  # file modes bind every account but root: the write must fail
    for attempt in (lambda: open(root / "digits.csv", "a"), lambda: open(root / "new.txt", "w")):
        try:
            attempt().write("x")
        except PermissionError:
            pass
        else:
            print("WROTE INTO THE DATASET")
            sys.exit(3)
extra = runyard.use_dataset("extra:latest")  # recorded for this run, materialised into the user's cache
assert (extra / "digits.csv").read_bytes() == b"1,2,3\n"
assert os.stat(extra / "digits.csv").st_mode & 0o222 == 0
print("READ OK", os.geteuid())
'''


# The pool's accounts cannot reach this machine's Python (under root's home): their run is a shell script.
CHECK_SH = r'''
root="$RUNYARD_DATASET_TRAIN"
[ "$root" = "$(pwd -P)/datasets/train" ] || { echo "BAD PATH $root"; exit 4; }
[ "$(cat "$root/digits.csv")" = "1,2,3" ] || { echo "BAD READ"; exit 4; }
[ "$(cat "$root/scan.bin")" = "scan-bytes" ] || { echo "BAD REFERENCE"; exit 4; }
if ( echo x >> "$root/digits.csv" ) 2>/dev/null; then echo "WROTE INTO THE DATASET"; exit 3; fi
if ( echo x > "$root/new.txt" ) 2>/dev/null; then echo "WROTE INTO THE DATASET"; exit 3; fi
if ( echo x >> "$root/sub/labels.txt" ) 2>/dev/null; then echo "WROTE INTO THE DATASET"; exit 3; fi
echo "READ OK $(id -u)"
'''


def _wait(predicate: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.2)


class Site:
    def __init__(self, root: Path, backends: dict[str, Any] | None = None) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(mode=0o700)
        if backends:
            (self.home / "backends.yml").write_text(yaml.safe_dump(backends))
        self.server = LiveServer(self.home, env={"RUNYARD_LOCAL_GPUS": ""})
        self.server.start(timeout_s=60.0)
        self.client = Client(self.server.url)

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        stop_agent(agent_dir(self.home), timeout_s=30.0)
        from runyard.backends.local._accounts import default_jobs_dir

        shutil.rmtree(default_jobs_dir(agent_dir(self.home)), ignore_errors=True)

    def seed(self, project: str, scan: Path) -> None:
        import hashlib

        snap = upload_snapshot(self.client, DATA)
        data = scan.read_bytes()
        ref = [str(scan), hashlib.sha256(data).hexdigest(), len(data), scan.stat().st_mtime]
        store = Store.open(f"sqlite:///{self.home / 'runyard.db'}", migrate=False)
        try:
            # train: stored files and one reference; extra: what use_dataset reads.
            add_dataset_version(store, project, "digits", snapshot_id=snap, refs=[ref], n_files=3, size=16)
            add_dataset_version(store, project, "extra", snapshot_id=snap, n_files=2, size=10)
        finally:
            store.close()

    def submit(self, directory: Path) -> dict[str, Any]:
        env = {**os.environ, "RUNYARD_SERVER": self.server.url, "RUNYARD_HOME": str(self.root / "cli-home")}
        for var in ("RUNYARD_TOKEN", "RUNYARD_DATABASE_URL"):
            env.pop(var, None)
        res = subprocess.run([sys.executable, "-m", "runyard.cli", "run", str(directory), "--json"], env=env,
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
        assert res.returncode == 0, f"runyard run failed:\n{res.stdout}\n{res.stderr}"
        return json.loads(res.stdout)

    def finished_run(self, experiment_id: int) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            items = self.client.list_runs(experiment_id=experiment_id, limit=10)["items"]
            return items[0] if items and items[0]["status"] in ("succeeded", "failed", "canceled") else None

        return _wait(ended, f"experiment {experiment_id}'s run to end")

    def logs(self, run_id: int) -> str:
        return "\n".join(ln["text"] for ln in self.client.read_logs(run_id, 0, limit=10000)["lines"])


def _project(tmp: Path, project: str, backend: str, shell: bool) -> Path:
    d = tmp / f"code-{backend}"
    d.mkdir()
    (d / "check.py").write_text(textwrap.dedent(CHECK))
    (d / "check.sh").write_text(CHECK_SH)
    command = "bash check.sh" if shell else "python check.py"
    (d / "runyard.yml").write_text(f"project: {project}\ncommand: {command}\nbackend: {backend}\n"
                                   "datasets: {train: digits@latest}\nresources: {cpus: 0.1}\n")
    return d


def _run_and_check(site: Site, tmp: Path, project: str, backend: str, *, shell: bool = False) -> int:
    scan = tmp / "shared" / "scan.bin"
    scan.parent.mkdir(parents=True, exist_ok=True)
    scan.write_bytes(b"scan-bytes")
    os.chmod(scan.parent, 0o755)
    os.chmod(scan, 0o644)
    site.seed(project, scan)
    exp = site.submit(_project(tmp, project, backend, shell))
    # The experiment recorded the version latest named at submission.
    assert site.client.get_experiment(exp["id"])["config"]["datasets"] == {"train": f"{project}/digits:1"}
    run = site.finished_run(exp["id"])
    logs = site.logs(run["id"])
    assert run["status"] == "succeeded", f"{run['status_message']}\n{logs}"
    assert "READ OK" in logs and f"[runyard] dataset train: {project}/digits:1, 3 files in datasets/train/" in logs
    recorded = {d["name"]: (d["dataset"], d["version"]) for d in site.client.run_datasets(run["id"])}
    assert recorded == ({"train": ("digits", 1)} if shell else {"train": ("digits", 1), "extra": ("extra", 1)})
    return int(run["id"])


@pytest.fixture
def tmp_world() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="runyard-lineage-", dir="/var/tmp"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_local_backend_materialises_the_declared_dataset_read_only(tmp_world: Path) -> None:
    site = Site(tmp_world)
    try:
        run_id = _run_and_check(site, tmp_world, "lin-local", "local")
        lineage = site.client.lineage(f"runs:/{run_id}")
        assert {n["label"] for n in lineage["nodes"] if n["kind"] == "dataset_version"} == {"lin-local/digits:1",
                                                                                             "lin-local/extra:1"}
    finally:
        site.close()


@pytest.fixture(scope="module")
def job_accounts() -> list[str]:
    """The pool's two accounts, created by scripts/setup-job-accounts.sh (root only)."""
    if os.geteuid() != 0:
        pytest.skip("run_as pool tests need root (they create the accounts runyard-job-1..2 and start jobs as them)")
    subprocess.run([str(REPO / "scripts" / "setup-job-accounts.sh"), "2"], check=True, capture_output=True, text=True)
    return ["runyard-job-1", "runyard-job-2"]


def test_a_job_of_another_account_cannot_write_into_its_dataset(job_accounts: list[str], tmp_world: Path) -> None:
    site = Site(tmp_world, {"isolated": {"type": "local", "run_as": {"pool": "runyard-job", "size": 2}}})
    try:
        run_id = _run_and_check(site, tmp_world, "lin-pool", "isolated", shell=True)
        assert "READ OK 0" not in site.logs(run_id)  # it ran as a pool account, where modes bind
    finally:
        site.close()
