"""The backend contract on the Kubernetes backend.

Here the API server is a stand-in (``runyard.testing.fake_kube.FakeKubeServer``: no kube-apiserver can
run on these machines) and ``runyard.testing.fake_kubelet.FakeKubelet`` stands in for the kubelet and
the operators (Job controller, Kubeflow Trainer, training operator, KubeRay): it runs each pod's
command (the real runner, started by the pod's shell script with the launch from the pod's Secret)
as a local subprocess with the pod's environment, and reports pod and object status through the API.
Everything else is real: the official client, the watches, the runner and the Runyard server the
runner reports to.

With ``RUNYARD_TEST_KUBECONFIG`` (and ``RUNYARD_TEST_KUBE_IMAGE``, ``RUNYARD_TEST_KUBE_SERVER_URL``) set,
``TestKubernetesContractOnARealCluster`` runs the same contract on that cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube_helpers import REAL_KUBECONFIG, FakeCluster, fake_cluster, real_cluster_options

from runyard.backends.kubernetes import KubernetesBackend
from runyard.testing.backend_contract import BackendContract, canceling_submitted

pytest.importorskip("kubernetes")
pytest.importorskip("kubernetes_validate")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCluster]:
    with fake_cluster(tmp_path_factory.mktemp("kube")) as c:
        yield c


def _stopping(b: KubernetesBackend) -> Iterator[KubernetesBackend]:
    with canceling_submitted(b):
        yield b


@pytest.fixture
def unknown_job_id() -> str:
    return "Job/ry-nosuchserver-999999-1"


class TestKubernetesContract(BackendContract):
    @pytest.fixture
    def backend(self, cluster: FakeCluster) -> Iterator[KubernetesBackend]:
        yield from _stopping(KubernetesBackend(cluster.options()))


@pytest.mark.skipif(not REAL_KUBECONFIG, reason="RUNYARD_TEST_KUBECONFIG is not set: no real cluster to check the fake "
                    "API server against (docs/backends.md, Kubernetes, says how to run it)")
class TestKubernetesContractOnARealCluster(BackendContract):
    @pytest.fixture
    def backend(self) -> Iterator[KubernetesBackend]:
        options = real_cluster_options()
        if not options["image"] or not options["server_url"]:
            pytest.skip("set RUNYARD_TEST_KUBE_IMAGE (an image with runyard) and RUNYARD_TEST_KUBE_SERVER_URL "
                        "(the test server as the cluster's pods reach it)")
        yield from _stopping(KubernetesBackend(options))




def test_a_pod_whose_runner_never_started_shows_its_log(cluster: FakeCluster, make_launch) -> None:  # noqa: ANN001
    from runyard.backends.base import EngineStatus
    from runyard.testing.backend_contract import wait_terminal

    # An image without this Python (or without runyard): the runner cannot report, so the pod's log tells why.
    for b in _stopping(KubernetesBackend(cluster.options(python="/opt/no-such/python3"))):
        job_id = b.submit(make_launch("echo never"))
        state = wait_terminal(b, job_id, timeout_s=30.0)
        assert state.status is EngineStatus.FAILED and state.exit_code == 127, state
        assert "the runner did not start in pod" in state.reason and "/opt/no-such/python3" in state.reason, state


@pytest.mark.parametrize(("framework", "options", "kind"), [
    ("pytorch", {"training_api": "training-operator-v1"}, "PyTorchJob"),
    ("tensorflow", {"tensorflow_operator": False}, "Job"),
])
def test_every_task_starts_through_the_other_kinds(cluster: FakeCluster, make_launch, client, framework: str,  # noqa: ANN001
                                                   options: dict, kind: str) -> None:
    from runyard.backends.base import EngineStatus, Resources
    from runyard.launch import task_slots
    from runyard.testing.backend_contract import stdout_of, wait_terminal

    if kind == "PyTorchJob":
        cluster.api.install_crd("PyTorchJob")  # the training operator v1 (FakeKubelet acts as it)
    roles = {"master": 1, "worker": 1} if framework == "pytorch" else {"chief": 1, "worker": 1}
    desc = {"framework": framework, "roles": {r: {"replicas": n, "resources": {"cpus": 0.5, "memory_mb": 0, "gpus": 0}}
                                              for r, n in roles.items()}}
    for b in _stopping(KubernetesBackend(cluster.options(**options))):
        launch = make_launch('echo "task $RUNYARD_TASK_ROLE-$RUNYARD_TASK_RANK"', resources=Resources(cpus=0.5),
                             tasks=task_slots(desc), distributed=desc)
        job_id = b.submit(launch)
        assert job_id.startswith(f"{kind}/")
        if kind == "Job":  # the Indexed Job's pods get DNS names through a headless Service
            assert [s["metadata"]["name"] for s in cluster.api.objects("Service")] == [job_id.partition("/")[2]]
        state = wait_terminal(b, job_id)
        assert state.status is EngineStatus.SUCCEEDED, state
        tasks = {f"{t['role']}-{t['rank']}": t["status"] for t in client.get_run(launch.run_id)["tasks"]}
        assert tasks == {f"{r}-0": "succeeded" for r in roles}, tasks
        assert sorted(stdout_of(client, launch.run_id)) == sorted(f"task {r}-0" for r in roles)


def test_a_ray_run_becomes_a_rayjob_whose_entrypoint_runs_the_job_task(cluster: FakeCluster, make_launch,  # noqa: ANN001
                                                                        client) -> None:  # noqa: ANN001
    from runyard.backends.base import EngineStatus, Resources
    from runyard.launch import task_slots
    from runyard.testing.backend_contract import stdout_of, wait_terminal

    cluster.api.install_crd("RayJob")  # KubeRay (FakeKubelet runs the entrypoint on the head pod)
    desc = {"framework": "ray", "roles": {r: {"replicas": n, "resources": {"cpus": 0.5, "memory_mb": 0, "gpus": 0}}
                                          for r, n in {"head": 1, "worker": 1, "job": 1}.items()}}
    for b in _stopping(KubernetesBackend(cluster.options())):
        launch = make_launch('echo "task $RUNYARD_TASK_ROLE-$RUNYARD_TASK_RANK on $RAY_ADDRESS"',
                             resources=Resources(cpus=0.5), tasks=task_slots(desc), distributed=desc)
        job_id = b.submit(launch)
        assert job_id.startswith("RayJob/")
        state = wait_terminal(b, job_id)
        assert state.status is EngineStatus.SUCCEEDED, state
        assert stdout_of(client, launch.run_id) == ["task job-0 on 127.0.0.1:6379"]
        assert client.get_run(launch.run_id)["status"] == "succeeded"
