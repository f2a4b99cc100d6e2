"""The Kubernetes backend end to end: `runyard run` → a live server whose backends.yml names a Kubernetes cluster.

The cluster is a stand-in: ``runyard.testing.fake_kube.FakeKubeServer`` (no kube-apiserver can run here), with
``FakeKubelet`` for the kubelet and the Job controller on ``cluster``, and nothing on ``cluster-idle``, whose
pods the test itself reports as the scheduler would (Unschedulable). Everything else is real: the CLI, the
server, its scheduler, the snapshot the runner fetches, the runner in the "pod" (a local subprocess).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import Yard, log_texts, wait_until

from runyard.client import Client
from runyard.testing import LiveServer

pytest.importorskip("kubernetes")
pytest.importorskip("kubernetes_validate")

from runyard.testing.fake_kube import FakeKubeServer, write_kubeconfig  # noqa: E402
from runyard.testing.fake_kubelet import FakeKubelet  # noqa: E402


@pytest.fixture(scope="module")
def kube_yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Yard, FakeKubeServer, FakeKubeServer]]:
    import yaml

    root = tmp_path_factory.mktemp("kube-e2e")
    busy, idle = FakeKubeServer().start(), FakeKubeServer().start()
    kubelet = FakeKubelet(busy, root).start()
    server = None
    try:
        home = root / "server-home"
        home.mkdir()
        common = {"type": "kubernetes", "image": "python:3.11-slim", "watch_timeout_s": 5, "server_id": "e2e"}
        config = {"cluster": {**common, "kubeconfig": str(write_kubeconfig(root / "busy", busy.url, busy.token))},
                  "cluster-idle": {**common, "kubeconfig": str(write_kubeconfig(root / "idle", idle.url, idle.token))}}
        (home / "backends.yml").write_text(yaml.safe_dump(config))
        server = LiveServer(home)
        server.start(timeout_s=60.0)
        client = Client(server.url)
        try:
            yield Yard(server, client, root / "cli-home"), busy, idle
        finally:
            client.close()
    finally:
        if server is not None:
            server.stop()
        kubelet.stop()
        busy.stop()
        idle.stop()


def _project(tmp_path: Path, name: str, yml: str, files: dict[str, str] | None = None) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "runyard.yml").write_text(textwrap.dedent(yml))
    for fname, text in (files or {}).items():
        (d / fname).write_text(textwrap.dedent(text))
    return d


def test_a_run_goes_through_a_job_and_its_pod(kube_yard: tuple[Yard, FakeKubeServer, FakeKubeServer],
                                              tmp_path: Path) -> None:
    yard, busy, _idle = kube_yard
    project = _project(tmp_path, "hello", """
        project: kube-hello
        command: python job.py
        backend: cluster
        params: {lr: [0.1]}
    """, {"job.py": """
        import os
        import runyard

        run = runyard.init()
        print("lr", os.environ["RUNYARD_PARAMS"])
        runyard.log({"loss": 0.5}, step=1)
    """})
    exp = yard.submit(project)
    done = yard.wait_experiment(exp["id"])
    assert done["status"] == "succeeded", yard.describe(exp["id"])
    [run] = yard.runs(exp["id"])
    assert any("lr" in line for line in log_texts(yard.client, run["id"]))  # the snapshot's job.py ran in the pod
    [job] = busy.objects("Job")
    assert job["metadata"]["labels"]["runyard.dev/run"] == str(run["id"])
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.11-slim"  # the backend's default


def test_a_pending_pod_shows_its_reason_and_cancel_deletes_the_job(
        kube_yard: tuple[Yard, FakeKubeServer, FakeKubeServer], tmp_path: Path) -> None:
    yard, _busy, idle = kube_yard
    project = _project(tmp_path, "pending", """
        project: kube-pending
        command: echo never
        backend: cluster-idle
        image: ghcr.io/acme/big:1
        resources: {gpus: 8}
    """)
    exp = yard.submit(project)
    job = wait_until(lambda: next(iter(idle.objects("Job")), None), 30, "the Job on the cluster")
    name = job["metadata"]["name"]
    # As the cluster's scheduler would: the Job controller's pod cannot be placed.
    idle.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-x", "labels": job["metadata"]["labels"],
                 "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job["metadata"]["uid"]}]},
                 "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "ghcr.io/acme/big:1"}]}})
    idle.set_status("Pod", f"{name}-x", {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}]})
    [run] = yard.runs(exp["id"])
    wait_until(lambda: yard.client.get_run(run["id"])["status_message"].startswith("pending: Unschedulable"), 30,
               "the pending reason on the run")
    status = yard.cli("status", str(run["id"]))
    assert "pending: Unschedulable: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu." in status.stdout, status.stdout
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"

    res = yard.cli("cancel", str(run["id"]))
    assert res.returncode == 0, res.stderr
    assert yard.wait_run(run["id"])["status"] == "canceled"
    wait_until(lambda: not idle.objects("Job") and not idle.objects("Pod") and not idle.objects("Secret"), 30,
               "the Job, its pod and its Secret deleted")


def test_build_is_refused_at_submission(kube_yard: tuple[Yard, FakeKubeServer, FakeKubeServer], tmp_path: Path) -> None:
    yard, _busy, _idle = kube_yard
    project = _project(tmp_path, "built", """
        project: kube-built
        command: echo hi
        backend: cluster
        image: python:3.11-slim
        build:
          steps: ["pip install numpy"]
    """)
    res = yard.cli("run", project, "--json")
    assert res.returncode != 0
    assert "cannot build images" in res.stderr + res.stdout and "podman push" in res.stderr + res.stdout
