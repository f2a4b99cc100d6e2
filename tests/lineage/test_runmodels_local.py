"""A real experiment on the local backend uses a registered scikit-learn model: ``models: {base: ...}`` puts the pinned
version read-only at models/base/ with RUNYARD_MODEL_BASE, the run loads it with runyard.load_model and predicts,
and loads the same model by URI with its own token (recorded as used); its lineage shows used_model both ways.

As with datasets (test_lineage_local.py): the ``local`` backend runs jobs as the server's account (here root, which
file modes do not stop: the run checks that no write bit is left), and the ``isolated`` backend runs them as the
pool's accounts, where writing into the model's files must fail.
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

from runyard.backends.local import agent_dir, stop_agent
from runyard.client import Client
from runyard.testing import LiveServer

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
WAIT_S = 120.0

CHECK = r'''
import os, sys
from pathlib import Path
import runyard

root = Path(os.environ["RUNYARD_MODEL_BASE"])
assert root == Path.cwd().resolve() / "models" / "base", (root, Path.cwd())
assert Path("models/mine/keep.txt").read_text() == "mine"  # the code's own models/ folder is left as it is
model = runyard.load_model(os.environ["RUNYARD_MODEL_BASE"])
assert model.predict([[4.0]]).round(6).tolist() == [8.0], model.predict([[4.0]])
for folder, dirs, files in os.walk(root):
    for name in dirs + files:
        path = os.path.join(folder, name)
        assert os.stat(path).st_mode & 0o222 == 0, f"{path} is writable: {oct(os.stat(path).st_mode)}"
assert os.stat(root).st_mode & 0o222 == 0
if os.geteuid() != 0:  # file modes bind every account but root: the write must fail
    for attempt in (lambda: open(root / "runyard-model.json", "a"), lambda: open(root / "new.txt", "w")):
        try:
            attempt().write("x")
        except PermissionError:
            pass
        else:
            print("WROTE INTO THE MODEL")
            sys.exit(3)
# The run's own token resolves and reads the model by URI; the use is recorded with the run.
# (production moves from 1 to 2 after submission: either doubles or triples.)
again = runyard.load_model("models:/%(project)s/twice@production")
factor = again.predict([[1.0]]).round(6).tolist()[0]
assert factor in (2.0, 3.0), factor
print("LOADED BY URI", int(factor) - 1)
print("MODEL OK", os.geteuid())
'''

# The pool's accounts cannot reach this machine's Python (under root's home): their run is a shell script.
CHECK_SH = r'''
root="$RUNYARD_MODEL_BASE"
[ "$root" = "$(pwd -P)/models/base" ] || { echo "BAD PATH $root"; exit 4; }
[ -s "$root/runyard-model.json" ] || { echo "BAD READ"; exit 4; }
if ( echo x >> "$root/runyard-model.json" ) 2>/dev/null; then echo "WROTE INTO THE MODEL"; exit 3; fi
if ( echo x > "$root/new.txt" ) 2>/dev/null; then echo "WROTE INTO THE MODEL"; exit 3; fi
echo "MODEL OK $(id -u)"
'''


def _wait(predicate: Any, what: str, timeout_s: float = WAIT_S) -> Any:  # noqa: ANN401
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

    def register(self, project: str) -> None:
        """models:/PROJECT/twice: version 1 doubles (production), version 2 triples."""
        from lineage_helpers import upload_snapshot
        from sklearn.linear_model import LinearRegression

        from runyard import flavors

        for factor in (2.0, 3.0):
            d = self.root / f"saved-{project}-{factor}"
            flavors.save(LinearRegression().fit([[0.0], [1.0]], [0.0, factor]), d)
            files = {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}
            self.client.create_model_version(project, "twice", snapshot_id=upload_snapshot(self.client, files),
                                             flavor="sklearn")
        self.client.set_model_alias(project, "twice", "production", 1)

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
    (d / "check.py").write_text(textwrap.dedent(CHECK % {"project": project}))
    (d / "check.sh").write_text(CHECK_SH)
    (d / "models" / "mine").mkdir(parents=True)  # a models/ folder of the code's own, beside the declared model
    (d / "models" / "mine" / "keep.txt").write_text("mine")
    command = "bash check.sh" if shell else "python check.py"
    (d / "runyard.yml").write_text(f"project: {project}\ncommand: {command}\nbackend: {backend}\n"
                                   "models: {base: 'models:/twice@production'}\nresources: {cpus: 0.1}\n")
    return d


def _run_and_check(site: Site, tmp: Path, project: str, backend: str, *, shell: bool = False) -> int:
    site.client.create_project(project)
    site.register(project)
    exp = site.submit(_project(tmp, project, backend, shell))
    assert site.client.get_experiment(exp["id"])["config"]["models"] == {"base": f"models:/{project}/twice/1"}
    site.client.set_model_alias(project, "twice", "production", 2)  # after submission: the run still uses 1
    run = site.finished_run(exp["id"])
    logs = site.logs(run["id"])
    assert run["status"] == "succeeded", f"{run['status_message']}\n{logs}"
    assert "MODEL OK" in logs and f"[runyard] model base: models:/{project}/twice/1, " in logs, logs
    recorded = {x["name"]: x["uri"] for x in site.client.run_models(run["id"])}
    expected = {"base": f"models:/{project}/twice/1"}
    if not shell:  # load_model("models:/.../twice@production") in the run: production names 1 or 2 by then
        version = int(logs.split("LOADED BY URI ")[1].split()[0])  # the version the run's code loaded
        assert recorded.get("twice") == f"models:/{project}/twice/{version}"
        expected["twice"] = recorded["twice"]
    assert recorded == expected
    return int(run["id"])


@pytest.fixture
def tmp_world() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="runyard-runmodels-", dir="/var/tmp"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_local_backend_gives_the_run_its_model_read_only_and_the_run_loads_it(tmp_world: Path) -> None:
    site = Site(tmp_world)
    try:
        run_id = _run_and_check(site, tmp_world, "rm-local", "local")
        g = site.client.lineage(f"runs:/{run_id}")
        labels = {n["id"]: n["label"] for n in g["nodes"]}
        used = {(labels[e["target"]], e["data"].get("name")) for e in g["edges"] if e["kind"] == "used_model"}
        assert ("models:/rm-local/twice/1", "base") in used
        g = site.client.lineage("models:/rm-local/twice/1")
        assert any(e["kind"] == "used_model" and e["source"] == f"run:{run_id}" and e["target"] == g["root"]
                   for e in g["edges"])
    finally:
        site.close()


@pytest.fixture(scope="module")
def job_accounts() -> list[str]:
    """The pool's two accounts, created by scripts/setup-job-accounts.sh (root only)."""
    if os.geteuid() != 0:
        pytest.skip("run_as pool tests need root (they create the accounts runyard-job-1..2 and start jobs as them)")
    subprocess.run([str(REPO / "scripts" / "setup-job-accounts.sh"), "2"], check=True, capture_output=True, text=True)
    return ["runyard-job-1", "runyard-job-2"]


def test_a_job_of_another_account_cannot_write_into_its_model(job_accounts: list[str], tmp_world: Path) -> None:
    site = Site(tmp_world, {"isolated": {"type": "local", "run_as": {"pool": "runyard-job", "size": 2}}})
    try:
        run_id = _run_and_check(site, tmp_world, "rm-pool", "isolated", shell=True)
        assert "MODEL OK 0" not in site.logs(run_id)  # it ran as a pool account, where modes bind
    finally:
        site.close()
