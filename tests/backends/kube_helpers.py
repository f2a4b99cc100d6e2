"""Helpers for the Kubernetes backend's tests: a fake API server (or a real cluster) and a backend on it.

Where no real cluster is given, the API server is ``runyard.testing.fake_kube.FakeKubeServer`` (a stand-in:
no kube-apiserver can run on these machines), and ``FakeKubelet`` stands in for the kubelet and the
operators, running each pod's runner command as a local subprocess. Set ``RUNYARD_TEST_KUBECONFIG``
(plus ``RUNYARD_TEST_KUBE_IMAGE``, an image with runyard installed, and ``RUNYARD_TEST_KUBE_SERVER_URL``,
the address the cluster's pods reach this machine's test server at) to run the contract on a real cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard.testing.fake_kube import FakeKubeServer, write_kubeconfig
from runyard.testing.fake_kubelet import FakeKubelet

__all__ = ["FakeCluster", "REAL_KUBECONFIG", "fake_cluster", "real_cluster_options"]

REAL_KUBECONFIG = os.environ.get("RUNYARD_TEST_KUBECONFIG")


@dataclass
class FakeCluster:
    api: FakeKubeServer
    kubeconfig: Path
    kubelet: FakeKubelet | None
    _url: str = ""

    @property
    def api_url(self) -> str:
        return self._url

    def options(self, **extra: Any) -> dict[str, Any]:
        """Backend options for this cluster: short watches, an image name the fake kubelet ignores."""
        return {"kubeconfig": str(self.kubeconfig), "namespace": "default", "image": "python:3.11-slim",
                "watch_timeout_s": 5, "request_timeout_s": 10.0, **extra}


@contextmanager
def fake_cluster(root: Path, *, kubelet: bool = True, crds: tuple[str, ...] = ("TrainJob",),
                 auto_establish: bool = True) -> Iterator[FakeCluster]:
    """A fake API server with ``crds`` installed (and a fake kubelet running pods), stopped on exit."""
    api = FakeKubeServer(auto_establish=auto_establish).start()
    runner: FakeKubelet | None = None
    try:
        for kind in crds:
            api.install_crd(kind)
        root.mkdir(parents=True, exist_ok=True)
        config = write_kubeconfig(root / "kubeconfig", api.url, api.token)
        if kubelet:
            runner = FakeKubelet(api, root).start()
        yield FakeCluster(api, config, runner, api.url)
    finally:
        if runner is not None:
            runner.stop()
        api.stop()


def real_cluster_options() -> dict[str, Any]:
    """Backend options for the real cluster of ``RUNYARD_TEST_KUBECONFIG``."""
    return {"kubeconfig": REAL_KUBECONFIG, "namespace": os.environ.get("RUNYARD_TEST_KUBE_NAMESPACE", "default"),
            "image": os.environ.get("RUNYARD_TEST_KUBE_IMAGE", ""), "server_url": os.environ.get("RUNYARD_TEST_KUBE_SERVER_URL")}
