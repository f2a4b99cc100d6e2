"""The fake Kubernetes API server (runyard.testing.fake_kube) keeps the API's semantics, checked through the
official client's own typed APIs and its Watch helper (client 35 sends ``watch=True``), as kubectl or an operator
SDK would talk to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

kubernetes = pytest.importorskip("kubernetes")
pytest.importorskip("kubernetes_validate")

from kubernetes.client.exceptions import ApiException  # noqa: E402 - after the skip

from runyard.testing.fake_kube import FakeKubeServer, selector_matches, write_kubeconfig  # noqa: E402


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[FakeKubeServer, Any]]:
    with FakeKubeServer() as api:
        config = write_kubeconfig(tmp_path / "kubeconfig", api.url, api.token)
        client = kubernetes.config.new_client_from_config(str(config))
        try:
            yield api, client
        finally:
            client.close()


def _job(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                                                              "containers": [{"name": "main", "image": "busybox"}]}}}}


def test_create_get_list_and_conflicts(fake: tuple[FakeKubeServer, Any]) -> None:
    _api, client = fake
    batch = kubernetes.client.BatchV1Api(client)
    made = batch.create_namespaced_job("default", _job("a", team="x", tier="gpu"))
    assert made.metadata.uid and made.metadata.resource_version and made.metadata.creation_timestamp
    batch.create_namespaced_job("default", _job("b", team="y"))
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job("default", _job("a"))
    assert e.value.status == 409 and "AlreadyExists" in e.value.body
    assert batch.read_namespaced_job("a", "default").metadata.labels == {"team": "x", "tier": "gpu"}
    with pytest.raises(ApiException) as e:
        batch.read_namespaced_job("nope", "default")
    assert e.value.status == 404
    names = {j.metadata.name for j in batch.list_namespaced_job("default", label_selector="team in (x,y),!absent").items}
    assert names == {"a", "b"}
    assert [j.metadata.name for j in batch.list_namespaced_job("default", label_selector="team!=y").items] == ["a"]
    # A stale resourceVersion on replace is a conflict.
    stale = batch.read_namespaced_job("a", "default")
    batch.patch_namespaced_job("a", "default", {"metadata": {"labels": {"new": "1"}}})
    with pytest.raises(ApiException) as e:
        batch.replace_namespaced_job("a", "default", stale)
    assert e.value.status == 409


def test_schema_errors_are_422_and_dry_run_stores_nothing(fake: tuple[FakeKubeServer, Any]) -> None:
    api, client = fake
    batch = kubernetes.client.BatchV1Api(client)
    bad = _job("bad")
    bad["spec"]["template"]["spec"]["containers"][0]["cmd"] = ["x"]
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job("default", bad)
    assert e.value.status == 422 and "cmd" in e.value.body
    batch.create_namespaced_job("default", _job("dry"), dry_run="All")
    assert api.objects("Job") == []


def test_status_subresource_and_patches(fake: tuple[FakeKubeServer, Any]) -> None:
    _api, client = fake
    batch = kubernetes.client.BatchV1Api(client)
    batch.create_namespaced_job("default", _job("a"))
    # The main endpoint ignores status; /status changes only the status.
    batch.patch_namespaced_job("a", "default", {"status": {"active": 5}, "metadata": {"labels": {"k": "v"}}})
    got = batch.read_namespaced_job("a", "default")
    assert got.status is None or got.status.active is None
    assert got.metadata.labels == {"k": "v"}
    batch.patch_namespaced_job_status("a", "default", {"status": {"active": 1}, "metadata": {"labels": {"z": "1"}}})
    got = batch.read_namespaced_job("a", "default")
    assert got.status.active == 1 and got.metadata.labels == {"k": "v"}
    # JSON patch (RFC 6902).
    client.call_api("/apis/batch/v1/namespaces/default/jobs/a", "PATCH",
                    header_params={"Content-Type": "application/json-patch+json"},
                    body=[{"op": "add", "path": "/metadata/labels/j", "value": "2"},
                          {"op": "remove", "path": "/metadata/labels/k"}], auth_settings=["BearerToken"])
    assert batch.read_namespaced_job("a", "default").metadata.labels == {"j": "2"}


def test_delete_cascades_to_owned_objects(fake: tuple[FakeKubeServer, Any]) -> None:
    api, client = fake
    batch = kubernetes.client.BatchV1Api(client)
    core = kubernetes.client.CoreV1Api(client)
    for name, policy in (("fg", "Foreground"), ("bg", "Background"), ("orphan", "Orphan")):
        job = batch.create_namespaced_job("default", _job(name))
        core.create_namespaced_secret("default", {"metadata": {"name": name, "ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job.metadata.uid}]}, "data": {}})
        batch.delete_namespaced_job(name, "default", propagation_policy=policy)
    assert {s["metadata"]["name"] for s in api.objects("Secret")} == {"orphan"}
    assert api.objects("Job") == []


def test_watch_resumes_times_out_and_expires(fake: tuple[FakeKubeServer, Any]) -> None:
    api, client = fake
    batch = kubernetes.client.BatchV1Api(client)
    listed = batch.list_namespaced_job("default")
    rv = listed.metadata.resource_version

    def later() -> None:
        time.sleep(0.2)
        batch.create_namespaced_job("default", _job("w1", app="a"))
        batch.create_namespaced_job("default", _job("w2", app="b"))
        batch.patch_namespaced_job_status("w1", "default", {"status": {"active": 1}})

    threading.Thread(target=later).start()
    watch = kubernetes.watch.Watch()
    started = time.monotonic()
    seen = [(e["type"], e["object"].metadata.name) for e in watch.stream(
        batch.list_namespaced_job, "default", resource_version=rv, label_selector="app=a", timeout_seconds=1)]
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1")]
    assert 0.9 < time.monotonic() - started < 5  # ended by timeoutSeconds
    # Resuming from the last resourceVersion seen gives only what came after it.
    last = batch.read_namespaced_job("w1", "default").metadata.resource_version
    batch.delete_namespaced_job("w1", "default")
    after = [(e["type"], e["object"].metadata.name) for e in kubernetes.watch.Watch().stream(
        batch.list_namespaced_job, "default", resource_version=last, timeout_seconds=1)]
    assert after == [("DELETED", "w1")]
    # A compacted history: 410 Gone (the client's Watch raises it after its one retry).
    api.compact()
    with pytest.raises(ApiException) as e:
        list(kubernetes.watch.Watch().stream(batch.list_namespaced_job, "default", resource_version=rv,
                                             timeout_seconds=1))
    assert e.value.status == 410


def test_custom_kinds_are_served_once_their_crd_is_established(tmp_path: Path) -> None:
    with FakeKubeServer(auto_establish=False) as api:
        client = kubernetes.config.new_client_from_config(str(write_kubeconfig(tmp_path / "kc", api.url, api.token)))
        custom = kubernetes.client.CustomObjectsApi(client)
        trainjob = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "t"},
                    "spec": {"runtimeRef": {"name": "torch-distributed"}}}
        with pytest.raises(ApiException) as e:
            custom.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", "default", "trainjobs", trainjob)
        assert e.value.status == 404
        api.install_crd("TrainJob")
        groups = kubernetes.client.ApisApi(client).get_api_versions()
        assert "trainer.kubeflow.org" not in {g.name for g in groups.groups}  # not established yet
        api.establish("trainjobs.trainer.kubeflow.org")
        assert "trainer.kubeflow.org" in {g.name for g in kubernetes.client.ApisApi(client).get_api_versions().groups}
        custom.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", "default", "trainjobs", trainjob)
        bad = {**trainjob, "metadata": {"name": "u"}, "spec": {"runtimeRef": {"name": "x"}, "trainer": {"numNode": 2}}}
        with pytest.raises(ApiException) as e:
            custom.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", "default", "trainjobs", bad)
        assert e.value.status == 422 and "numNode" in e.value.body
        client.close()


def test_a_request_without_the_token_is_401(fake: tuple[FakeKubeServer, Any]) -> None:
    api, _client = fake
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{api.url}/api/v1/namespaces/default/pods", timeout=5)
    assert e.value.code == 401


@pytest.mark.parametrize(("selector", "labels", "ok"), [
    ("a=1", {"a": "1"}, True), ("a==1", {"a": "2"}, False), ("a", {}, False), ("!a", {}, True),
    ("a in (1, 2),b notin (3)", {"a": "2", "b": "4"}, True), ("a notin (1)", {}, True), ("", {"x": "y"}, True),
])
def test_label_selectors(selector: str, labels: dict[str, str], ok: bool) -> None:
    assert selector_matches(selector, labels) is ok
