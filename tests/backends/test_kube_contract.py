"""The backend contract on the Kubernetes backend.

Here the API server is a stand-in (``runyard.testing.fake_kube.FakeKubeServer``: no kube-apiserver can
run on these machines) and ``FakeKubelet`` stands in for the kubelet, the Job controller and the
Kubeflow Trainer: it runs each pod's command (the real runner, started by the pod's shell script
with the launch from the pod's Secret) as a local subprocess with the pod's environment, and
reports pod and object status through the API. Everything else is real: the official client, the
watches, the runner and the Runyard server the runner reports to.

With ``RUNYARD_TEST_KUBECONFIG`` (and ``RUNYARD_TEST_KUBE_IMAGE``, ``RUNYARD_TEST_KUBE_SERVER_URL``) set,
``TestKubernetesContractOnARealCluster`` runs the same contract on that cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube_helpers import REAL_KUBECONFIG, FakeCluster, fake_cluster, real_cluster_options

from runyard.backends.kubernetes import KubernetesBackend
from runyard.testing.backend_contract import BackendContract

pytest.importorskip("kubernetes")
pytest.importorskip("kubernetes_validate")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCluster]:
    with fake_cluster(tmp_path_factory.mktemp("kube")) as c:
        yield c


def _stopping(b: KubernetesBackend) -> Iterator[KubernetesBackend]:
    submitted: list[str] = []
    real_submit = b.submit

    def submit(launch, **kw):  # noqa: ANN001, ANN003, ANN202 - records job ids to delete them afterwards
        job_id = real_submit(launch, **kw)
        submitted.append(job_id)
        return job_id

    b.submit = submit  # type: ignore[method-assign]
    try:
        yield b
    finally:
        for job_id in submitted:
            b.cancel(job_id)
        b.close()


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


