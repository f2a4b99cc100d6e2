"""The Kubernetes backend against the fake API server, the test acting as the cluster's controllers.

The API server is ``runyard.testing.fake_kube.FakeKubeServer`` (a stand-in: no kube-apiserver can run
here); no kubelet runs. The tests do what the Job controller, the kubelet, Kubeflow Trainer, the
training operator and KubeRay would: create pods and move objects through their conditions through
``/status``, and check the states, pending reasons, cancels, watch resumes and adoption the backend
derives from them. The backend uses the official client over HTTP, as with a real cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runyard.backends.base import EngineStatus, Resources, RunLaunch
from runyard.backends.kubernetes import KubernetesBackend
from runyard.errors import SpecError, SubmitError
from runyard.launch import task_slots
from runyard.launch._frameworks import RoleRequest, TaskResources, distributed_launch
from runyard.testing import wait_for

pytest.importorskip("kubernetes")
pytest.importorskip("kubernetes_validate")

from kube_helpers import FakeCluster, fake_cluster  # noqa: E402 - after the skips

IMAGE = {"image": "ghcr.io/acme/digits:1.4", "roles": {}, "build": None}
_RUN = iter(range(1000, 100000))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    with fake_cluster(tmp_path, kubelet=False, crds=("TrainJob", "PyTorchJob", "RayJob")) as c:
        yield c


@pytest.fixture
def backend(cluster: FakeCluster) -> Iterator[KubernetesBackend]:
    b = KubernetesBackend(cluster.options(server_id="t1", watch_timeout_s=2))
    yield b
    b.close()


def _launch(**kwargs: Any) -> RunLaunch:
    fields = {"run_id": next(_RUN), "attempt": 1, "project": "digits", "experiment_id": 1, "command": "python train.py",
              "snapshot_id": None, "server_url": "http://127.0.0.1:9", "container": IMAGE}
    fields.update(kwargs)
    return RunLaunch(**fields)


def _pytorch_launch(**kwargs: Any) -> RunLaunch:
    desc = distributed_launch("pytorch", {"worker": RoleRequest(replicas=1)}, TaskResources(1, 0, 0))
    return _launch(distributed=desc, tasks=task_slots(desc), **kwargs)


def _pod(cluster: FakeCluster, job_id: str, status: dict[str, Any], index: int = 0) -> str:
    """Create the pod a controller would make for ``job_id``'s object, with ``status`` (as the kubelet reports it)."""
    kind, _, name = job_id.partition("/")
    obj = next(o for o in cluster.api.objects(kind) if o["metadata"]["name"] == name)
    pod_name = f"{name}-{index}"
    cluster.api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": pod_name, "labels": dict(obj["metadata"]["labels"]),
        "ownerReferences": [{"apiVersion": obj["apiVersion"], "kind": kind, "name": name,
                             "uid": obj["metadata"]["uid"], "controller": True}]},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x"}]}})
    cluster.api.set_status("Pod", pod_name, status)
    return pod_name


def _until(backend: KubernetesBackend, job_id: str, check: Any, what: str) -> Any:
    def ok() -> Any:
        state = backend.poll([job_id])[job_id]
        return state if check(state) else None
    return wait_for(ok, timeout_s=10.0, what=what)


def _name(job_id: str) -> str:
    return job_id.partition("/")[2]


UNSCHEDULABLE = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                     "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}
RUNNING = {"phase": "Running", "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0, "image": "x",
                                                      "imageID": "", "state": {"running": {}}}]}


def _waiting(reason: str, message: str) -> dict[str, Any]:
    return {"phase": "Pending", "containerStatuses": [{"name": "main", "ready": False, "restartCount": 0, "image": "x",
                                                       "imageID": "", "state": {"waiting": {"reason": reason,
                                                                                            "message": message}}}]}


def _terminated(code: int, reason: str) -> dict[str, Any]:
    return {"phase": "Failed", "containerStatuses": [{"name": "main", "ready": False, "restartCount": 0, "image": "x",
                                                      "imageID": "", "state": {"terminated": {"exitCode": code,
                                                                                              "reason": reason}}}]}


def _failed(reason: str, message: str = "") -> dict[str, Any]:
    return {"conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": message}]}


COMPLETE = {"conditions": [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}], "succeeded": 1}


# ------------------------------------------------------------------ what a run becomes
def test_a_run_becomes_a_job_with_its_secret_owned_by_it(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    launch = _launch(token="secret-token-123")
    job_id = backend.submit(launch)
    assert job_id == f"Job/ry-t1-{launch.run_id}-1"
    job = next(o for o in cluster.api.objects("Job") if o["metadata"]["name"] == _name(job_id))
    secret = next(o for o in cluster.api.objects("Secret") if o["metadata"]["name"] == _name(job_id))
    # The Secret holds the launch (the run's env and token) and goes with the Job.
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    import base64
    import json

    far = json.loads(base64.b64decode(secret["data"]["launch.json"]))
    assert far["token"] == "secret-token-123" and far["container"] is None  # the runner runs in the pod itself
    assert "secret-token-123" not in json.dumps(job)
    assert backend.poll([job_id])[job_id].reason == "pending: no pod yet"
    # A second submit of the same attempt (a server that crashed before recording the id) finds the first.
    assert backend.submit(launch) == job_id
    assert len([o for o in cluster.api.objects("Job") if o["metadata"]["name"] == _name(job_id)]) == 1


def test_pending_reasons_are_shown(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    job_id = backend.submit(_launch(resources=Resources(cpus=1, gpus=4)))
    pod = _pod(cluster, job_id, UNSCHEDULABLE)
    state = _until(backend, job_id, lambda s: "Unschedulable" in s.reason, "the Unschedulable reason")
    assert state.status is EngineStatus.PENDING
    assert state.reason == "pending: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        cluster.api.set_status("Pod", pod, _waiting(reason, 'Back-off pulling image "ghcr.io/acme/digits:1.4"'))
        state = _until(backend, job_id, lambda s, r=reason: r in s.reason, reason)
        assert state.status is EngineStatus.PENDING
        assert state.reason == f'pending: {reason}: Back-off pulling image "ghcr.io/acme/digits:1.4"'
    cluster.api.set_status("Pod", pod, RUNNING)
    assert _until(backend, job_id, lambda s: s.status is EngineStatus.RUNNING, "running").reason == ""


def test_oomkilled_and_evicted_fail_with_their_reason(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    oom = backend.submit(_launch(resources=Resources(cpus=1, memory_mb=512)))
    _pod(cluster, oom, _terminated(137, "OOMKilled"))
    cluster.api.set_status("Job", _name(oom), _failed("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
    state = _until(backend, oom, lambda s: s.status.terminal, "the OOM kill")
    assert (state.status, state.exit_code) == (EngineStatus.FAILED, 137)
    assert state.reason.startswith("OOMKilled:") and "resources.memory" in state.reason

    evicted = backend.submit(_launch())
    _pod(cluster, evicted, {"phase": "Failed", "reason": "Evicted",
                            "message": "The node was low on resource: ephemeral-storage."})
    cluster.api.set_status("Job", _name(evicted), _failed("BackoffLimitExceeded"))
    state = _until(backend, evicted, lambda s: s.status.terminal, "the eviction")
    assert state.status is EngineStatus.FAILED
    assert state.reason.startswith("Evicted: The node was low on resource") and "max_restarts" in state.reason


def test_deadline_exceeded_is_a_timeout(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    job_id = backend.submit(_launch(time_limit_s=60))
    _pod(cluster, job_id, RUNNING)
    cluster.api.set_status("Job", _name(job_id), _failed("DeadlineExceeded", "Job was active longer than specified deadline"))
    state = _until(backend, job_id, lambda s: s.status.terminal, "the deadline")
    assert state.status is EngineStatus.TIMEOUT
    assert state.reason == "TIMEOUT: DeadlineExceeded: Job was active longer than specified deadline"


def test_a_failing_task_reports_its_exit_code_and_success_is_complete(cluster: FakeCluster,
                                                                      backend: KubernetesBackend) -> None:
    bad = backend.submit(_launch())
    _pod(cluster, bad, _terminated(3, "Error"))
    cluster.api.set_status("Job", _name(bad), _failed("BackoffLimitExceeded"))
    state = _until(backend, bad, lambda s: s.status.terminal, "the failure")
    assert (state.status, state.exit_code, state.reason) == (EngineStatus.FAILED, 3, "exit code 3")
    good = backend.submit(_launch())
    cluster.api.set_status("Job", _name(good), COMPLETE)
    assert _until(backend, good, lambda s: s.status.terminal, "success").status is EngineStatus.SUCCEEDED


# ------------------------------------------------------------------ watches
def test_a_cut_watch_resumes_from_its_resource_version(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    job_id = backend.submit(_launch())
    backend.poll([job_id])  # the watches run
    wait_for(lambda: cluster.api.open_watches("jobs") == 1, timeout_s=5.0, what="the watch on jobs")
    lists = backend.watch_stats["lists"]
    cluster.api.drop_watches()  # the connection is cut (a proxy, a restart of the API server's endpoint)
    cluster.api.set_status("Job", _name(job_id), COMPLETE)  # happens while no watch is open
    state = _until(backend, job_id, lambda s: s.status.terminal, "the change made while the watch was cut")
    assert state.status is EngineStatus.SUCCEEDED
    # Resumed from the last resourceVersion: the change was not lost and nothing was listed again.
    assert backend.watch_stats["resumes"] >= 1
    assert backend.watch_stats["lists"] == lists and backend.watch_stats["gone"] == 0
    watch_requests = [p for m, p in cluster.api.requests if "watch=true" in p and "/jobs" in p]
    assert any("resourceVersion=" in p for p in watch_requests[1:])


def test_a_410_gone_relists(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    job_id = backend.submit(_launch())
    backend.poll([job_id])
    wait_for(lambda: cluster.api.open_watches("jobs") == 1, timeout_s=5.0, what="the watch on jobs")
    lists = backend.watch_stats["lists"]
    cluster.api.compact()  # etcd compacted the history: resuming from the old resourceVersion is 410 Gone
    cluster.api.set_status("Job", _name(job_id), COMPLETE)
    cluster.api.compact()
    cluster.api.drop_watches()
    state = _until(backend, job_id, lambda s: s.status.terminal, "the state after the relist")
    assert state.status is EngineStatus.SUCCEEDED
    assert backend.watch_stats["gone"] >= 1 and backend.watch_stats["lists"] > lists


def test_watches_end_after_their_timeout_and_are_renewed(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    job_id = backend.submit(_launch())
    backend.poll([job_id])
    wait_for(lambda: backend.watch_stats["resumes"] >= 1, timeout_s=8.0, what="a watch renewed after timeoutSeconds")
    cluster.api.set_status("Job", _name(job_id), COMPLETE)
    assert _until(backend, job_id, lambda s: s.status.terminal, "success").status is EngineStatus.SUCCEEDED


# ------------------------------------------------------------------ cancel, missing kinds, adoption
def test_cancel_deletes_in_the_foreground_and_is_idempotent(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    job_id = backend.submit(_launch())
    _pod(cluster, job_id, RUNNING)
    _until(backend, job_id, lambda s: s.status is EngineStatus.RUNNING, "running")
    backend.cancel(job_id)
    backend.cancel(job_id)
    state = _until(backend, job_id, lambda s: s.status.terminal, "the cancel")
    assert state.status is EngineStatus.CANCELED
    # Foreground: the pods and the Secret went with the Job.
    assert not [o for o in cluster.api.objects() if _name(job_id) in o["metadata"]["name"]]
    assert cluster.api.deletions == [("Job", _name(job_id), "Foreground")]  # once: the second cancel found it gone
    backend.cancel(job_id)  # ended: no request
    backend.cancel("Job/ry-t1-999999-1")  # unknown: a 404 is a no-op
    assert backend.poll([job_id])[job_id].status is EngineStatus.CANCELED


def test_a_missing_crd_is_refused_naming_its_operator(tmp_path: Path) -> None:
    now = [0.0]
    with fake_cluster(tmp_path, kubelet=False, crds=(), auto_establish=False) as cluster:
        backend = KubernetesBackend(cluster.options(server_id="t1"), clock=lambda: now[0])
        try:
            with pytest.raises(SubmitError, match="Kubeflow Trainer") as e:
                backend.submit(_pytorch_launch())
            assert "does not serve TrainJob" in e.value.message
            with pytest.raises(SubmitError, match="KubeRay"):
                desc = distributed_launch("ray", {}, TaskResources(1, 0, 0))
                backend.submit(_launch(distributed=desc, tasks=task_slots(desc)))
            # A CRD that is not established yet does not serve its kind either.
            cluster.api.install_crd("TrainJob")
            now[0] += 120  # the discovery cache expires
            with pytest.raises(SubmitError, match="Kubeflow Trainer"):
                backend.submit(_pytorch_launch())
            cluster.api.establish("trainjobs.trainer.kubeflow.org")
            now[0] += 120
            job_id = backend.submit(_pytorch_launch())
            assert job_id.startswith("TrainJob/")
        finally:
            backend.close()


def test_a_restarted_server_adopts_running_objects(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    single = _launch()
    train = _pytorch_launch()
    job_ids = [backend.submit(single), backend.submit(train)]
    _pod(cluster, job_ids[0], RUNNING)
    _pod(cluster, job_ids[1], RUNNING)
    _until(backend, job_ids[0], lambda s: s.status is EngineStatus.RUNNING, "running")
    backend.close()  # the server stops; the objects keep running

    again = KubernetesBackend(backend.options)
    try:
        states = again.poll(job_ids)
        assert all(s.status is EngineStatus.RUNNING for s in states.values()), states
        # The restarted server submits the same attempt again (it had not recorded the id): no second object.
        assert again.submit(train) == job_ids[1]
        assert len(cluster.api.objects("TrainJob")) == 1
        cluster.api.set_status("TrainJob", _name(job_ids[1]), {"conditions": [
            {"type": "Complete", "status": "True", "reason": "JobsCompleted", "message": "TrainJob is completed"}]})
        cluster.api.set_status("Job", _name(job_ids[0]), _failed("BackoffLimitExceeded"))
        assert _until(again, job_ids[1], lambda s: s.status.terminal, "the TrainJob's end").status is EngineStatus.SUCCEEDED
        assert _until(again, job_ids[0], lambda s: s.status.terminal, "the Job's end").status is EngineStatus.FAILED
    finally:
        again.close()


def test_an_object_of_another_attempt_with_the_same_name_is_refused(cluster: FakeCluster,
                                                                    backend: KubernetesBackend) -> None:
    launch = _launch()
    job_id = backend.submit(launch)
    cluster.api.patch(cluster.api.resource("batch", "v1", "jobs"), "default", _name(job_id),
                      {"metadata": {"labels": {"runyard.dev/run": "1"}}}, "application/merge-patch+json", status=False)
    with pytest.raises(SubmitError, match="server_id"):
        backend.submit(launch)


def test_an_object_the_api_refuses_is_a_submit_error(tmp_path: Path) -> None:
    def refuse(obj: Any) -> list[str]:
        return ["spec.template.spec.containers[0].image: Required value"] if obj.get("kind") == "Job" else []

    from runyard.testing.fake_kube import FakeKubeServer, write_kubeconfig

    with FakeKubeServer(validate=refuse) as api:
        config = write_kubeconfig(tmp_path / "kc", api.url, api.token)
        backend = KubernetesBackend({"kubeconfig": str(config), "image": "x"})
        try:
            with pytest.raises(SubmitError, match="Required value") as e:
                backend.submit(_launch())
            assert "422" in e.value.message and e.value.hint
        finally:
            backend.close()


def test_unknown_and_vanished_jobs_are_lost(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    assert backend.poll(["nonsense"])["nonsense"].status is EngineStatus.LOST
    assert backend.poll(["Job/ry-t1-5-1"])["Job/ry-t1-5-1"].status is EngineStatus.LOST
    assert backend.poll([]) == {}


# ------------------------------------------------------------------ images, checks
def test_build_and_a_run_without_an_image_are_refused(cluster: FakeCluster) -> None:
    from runyard.spec import parse_spec

    backend = KubernetesBackend(cluster.options(image=None))
    try:
        built = parse_spec("project: p\ncommand: python t.py\nimage: python:3.11\nbuild:\n  steps: ['pip install numpy']\n")
        with pytest.raises(SpecError, match="cannot build images") as e:
            backend.check_spec(built)
        assert "podman push" in e.value.hint
        bare = parse_spec("project: p\ncommand: python t.py\n")
        with pytest.raises(SpecError, match="names none"):
            backend.check_spec(bare)
        with pytest.raises(SubmitError, match="build"):
            backend.submit(_launch(container={"image": "python:3.11", "roles": {}, "build": {"steps": ["x"]}}))
        with pytest.raises(SubmitError, match="names no image"):
            backend.submit(_launch(container=None))
    finally:
        backend.close()
    with_default = KubernetesBackend(cluster.options(image="ghcr.io/acme/runner:1"))
    try:
        with_default.check_spec(bare)  # the backend's default image is used
        job_id = with_default.submit(_launch(container=None))
        job = next(o for o in cluster.api.objects("Job") if o["metadata"]["name"] == _name(job_id))
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/runner:1"
    finally:
        with_default.close()


def test_backends_test_checks_credentials_namespace_kinds_and_gpus(cluster: FakeCluster,
                                                                    backend: KubernetesBackend) -> None:
    cluster.api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu01"},
                        "status": {"allocatable": {"cpu": "32", "nvidia.com/gpu": "4"}}})
    results = {r.name: r for r in backend.check()}
    assert results["credentials"].ok and "v1.33" in results["credentials"].detail
    assert results["namespace"].ok and "create and delete Jobs in default (dry runs)" in results["namespace"].detail
    assert not cluster.api.objects("Job")  # the dry run created nothing
    assert results["kinds"].ok and "TrainJob" in results["kinds"].detail.split(";")[0]
    assert "not served: " in results["kinds"].detail and "KubeRay" not in results["kinds"].detail
    assert results["gpu resource"].ok and results["gpu resource"].detail == "4 nvidia.com/gpu on 1 node(s)"
    assert results["server_url"].ok  # not set, and the API server is on this machine: pods reach the server's own URL

    amd = KubernetesBackend(cluster.options(gpu_resource="amd.com/gpu"))
    try:
        gpu = {r.name: r for r in amd.check()}["gpu resource"]
        assert not gpu.ok and "nvidia.com/gpu" in gpu.detail and gpu.hint == "Set gpu_resource to nvidia.com/gpu."
    finally:
        amd.close()

    wrong = cluster.kubeconfig.read_text().replace(cluster.api.token, "expired-token")
    (cluster.kubeconfig.parent / "wrong").write_text(wrong)
    refused = KubernetesBackend(cluster.options(kubeconfig=str(cluster.kubeconfig.parent / "wrong")))
    try:
        [cred] = refused.check()
        assert not cred.ok and "401" in cred.detail and "token" in cred.hint
    finally:
        refused.close()
    missing = KubernetesBackend({"kubeconfig": str(cluster.kubeconfig.parent / "nope")})
    [cred] = missing.check()
    assert not cred.ok and "kubeconfig" in cred.hint


def test_poll_answers_from_the_watch_cache(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    job_id = backend.submit(_launch())
    backend.poll([job_id])
    wait_for(lambda: cluster.api.open_watches("jobs") == 1 and cluster.api.open_watches("pods") == 1, timeout_s=5.0,
             what="the watches on jobs and pods")
    def asked() -> int:  # requests other than the watches' own renewals
        return sum(1 for _m, p in cluster.api.requests if "watch=true" not in p)

    before = asked()
    for _ in range(50):
        backend.poll([job_id])
    # The scheduler polls every few seconds: those polls make no request of their own (the watches carry changes).
    assert asked() == before


def test_the_server_refuses_build_at_submission_on_kubernetes(backend: KubernetesBackend) -> None:
    from runyard.scheduler._dispatch import BackendPool
    from runyard.spec import parse_spec

    pool = BackendPool(instances={"cluster": backend})
    spec = parse_spec("project: p\ncommand: python t.py\nbackend: cluster\nimage: python:3.11\n"
                      "build:\n  steps: ['pip install numpy']\n")
    with pytest.raises(SpecError, match="cannot build images"):
        pool.check("cluster", spec)
    pool.check("cluster", parse_spec("project: p\ncommand: python t.py\nbackend: cluster\nimage: python:3.11\n"))


def test_a_missing_client_names_the_extra(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "kubernetes", None)  # as if `pip install 'runyard[kubernetes]'` was not run
    backend = KubernetesBackend(cluster.options())
    [cred] = backend.check()
    assert not cred.ok and "runyard[kubernetes]" in cred.hint
    with pytest.raises(SubmitError, match="client") as e:
        backend.submit(_launch())
    assert "runyard[kubernetes]" in e.value.hint


def test_runyard_backends_add_and_test_on_kubernetes(cluster: FakeCluster, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    def runyard(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RUNYARD_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
        return subprocess.run([sys.executable, "-m", "runyard.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL, check=False)

    added = runyard("backends", "add", "cluster", "--type", "kubernetes", "--set", f"kubeconfig={cluster.kubeconfig}",
                    "--set", "image=python:3.11-slim")
    assert added.returncode == 0, added.stderr
    out = runyard("backends", "test", "cluster", "--json")
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert list(checks) == ["credentials", "namespace", "kinds", "gpu resource", "server_url"]
    assert all(c["ok"] for c in checks.values()), checks
    assert out.returncode == 0


def test_a_kind_the_cluster_does_not_serve_polls_lost_and_a_dead_api_unknown(tmp_path: Path) -> None:
    from runyard.testing.fake_kube import write_kubeconfig

    with fake_cluster(tmp_path, kubelet=False, crds=()) as cluster:
        backend = KubernetesBackend(cluster.options())
        try:
            state = backend.poll(["RayJob/ry-t1-5-1"])["RayJob/ry-t1-5-1"]
            assert state.status is EngineStatus.LOST and "does not serve RayJob" in state.reason
            assert "KubeRay" in state.reason
        finally:
            backend.close()
    # The same URL, now with nothing listening: the engine cannot be asked, and poll says so without hanging.
    dead = KubernetesBackend({"kubeconfig": str(write_kubeconfig(tmp_path / "dead", cluster.api_url, "t")),
                              "request_timeout_s": 2.0})
    try:
        started = time.monotonic()
        state = dead.poll(["Job/ry-t1-5-1"])["Job/ry-t1-5-1"]
        assert state.status is EngineStatus.UNKNOWN and "cannot list Job" in state.reason
        assert time.monotonic() - started < 10
    finally:
        dead.close()


def test_nodes_are_the_schedulable_ones_the_selector_allows(cluster: FakeCluster) -> None:
    from runyard.scheduler._dispatch import BackendPool
    from runyard.spec import parse_spec

    def node(name: str, labels: dict[str, str], gpus: str, *, cordoned: bool = False) -> None:
        cluster.api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                            "spec": {"unschedulable": cordoned},
                            "status": {"allocatable": {"cpu": "31500m", "memory": "131072Mi", "nvidia.com/gpu": gpus}}})

    node("a100-1", {"pool": "a100"}, "8")
    node("a100-2", {"pool": "a100"}, "8", cordoned=True)
    node("cpu-1", {"pool": "cpu"}, "0")
    backend = KubernetesBackend(cluster.options(node_selector={"pool": "a100"}))
    try:
        assert backend.nodes() == [Resources(31.5, 131072, 8)]
        # The server refuses at submission a run no node can ever hold (instead of a pod Unschedulable forever).
        pool = BackendPool(instances={"cluster": backend})
        too_big = parse_spec("project: p\ncommand: x\nbackend: cluster\nimage: i\nresources: {gpus: 16}\n")
        with pytest.raises(SpecError, match="can never start"):
            pool.check("cluster", too_big)
    finally:
        backend.close()


def test_a_run_may_not_move_itself_to_another_cluster_or_namespace(backend: KubernetesBackend) -> None:
    with pytest.raises(SubmitError, match="namespace") as e:
        backend.submit(_launch(options={"namespace": "other", "node_selector": {"pool": "x"}}))
    assert "backends.yml" in e.value.hint
    job_id = backend.submit(_launch(options={"node_selector": {"pool": "x"}}))  # a scheduling setting is the run's to set
    assert job_id.startswith("Job/")


def test_runyard_run_refuses_a_framework_whose_operator_is_missing(tmp_path: Path) -> None:
    from runyard.scheduler._dispatch import BackendPool
    from runyard.spec import parse_spec

    with fake_cluster(tmp_path, kubelet=False, crds=("TrainJob",)) as cluster:
        backend = KubernetesBackend(cluster.options())
        try:
            pool = BackendPool(instances={"cluster": backend})
            ray = parse_spec("project: p\ncommand: python t.py\nbackend: cluster\nimage: i\n"
                             "distributed: {framework: ray, worker: {replicas: 1}}\n")
            with pytest.raises(SpecError, match="RayJobs") as e:
                pool.check("cluster", ray)
            assert "KubeRay" in e.value.hint
            torch = parse_spec("project: p\ncommand: python t.py\nbackend: cluster\nimage: i\n"
                               "distributed: {framework: pytorch, worker: {replicas: 1}}\n")
            pool.check("cluster", torch)  # TrainJob is served
        finally:
            backend.close()


def test_backends_test_names_a_missing_permission(cluster: FakeCluster, backend: KubernetesBackend) -> None:
    cluster.api.forbidden.add(("delete", "jobs"))  # as a Role without `delete` on jobs would
    namespace = {r.name: r for r in backend.check()}["namespace"]
    assert not namespace.ok and "403" in namespace.detail and "cannot delete" in namespace.detail
    assert "Role in docs/backends.md" in namespace.hint
