"""A thin layer over the official ``kubernetes`` client: plain dicts in and out, one error type, watch streams.

Every call goes through ``ApiClient.call_api`` with the object's REST path, so built-in and
custom kinds (TrainJob, PyTorchJob, RayJob) are handled alike, without the typed models.
The client comes from the ``kubernetes`` extra (``pip install 'runyard[kubernetes]'``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from runyard.errors import BackendError, SpecError

__all__ = ["KubeApi", "KubeApiError", "load_client"]


class KubeApiError(BackendError):
    """The API server answered with an error ``Status`` (or could not be reached: ``status`` 0)."""

    def __init__(self, status: int, reason: str, message: str, hint: str = "") -> None:
        super().__init__(f"Kubernetes API: {status} {reason}: {message}".strip(),
                         hint or "Check the cluster with `runyard backends test NAME`.")
        self.status = status
        self.reason = reason


def load_client(kubeconfig: str | None, context: str | None, in_cluster: bool, timeout_s: float) -> Any:
    """An ``ApiClient`` from a kubeconfig (or the pod's service account).

    Raises:
        SpecError: the ``kubernetes`` package is missing, or the kubeconfig cannot be read.
    """
    try:
        import kubernetes.client
        import kubernetes.config
    except ModuleNotFoundError as e:
        raise SpecError("The kubernetes backend needs the official Kubernetes client, which is not installed.",
                        "Install it: `pip install 'runyard[kubernetes]'`.") from e
    cfg = kubernetes.client.Configuration()
    try:
        if in_cluster:
            kubernetes.config.load_incluster_config(client_configuration=cfg)
        else:
            path = os.path.expanduser(kubeconfig) if kubeconfig else None
            kubernetes.config.load_kube_config(config_file=path, context=context, client_configuration=cfg,
                                               persist_config=False)
    except (kubernetes.config.ConfigException, OSError, TypeError, ValueError) as e:
        where = "the pod's service account" if in_cluster else (kubeconfig or "$KUBECONFIG or ~/.kube/config")
        raise SpecError(f"Cannot load the Kubernetes credentials from {where}: {e}.",
                        "Set kubeconfig (and context) in the backend's entry to a working kubeconfig "
                        "(`kubectl --kubeconfig FILE get pods` works with it), or in_cluster: true inside a pod.") from e
    cfg.retries = 0  # failures are the caller's to retry (the watch loop resumes; the scheduler polls again)
    return kubernetes.client.ApiClient(cfg)


def _error_from(e: Exception) -> KubeApiError:
    status = getattr(e, "status", 0) or 0
    body = getattr(e, "body", None)
    reason, message = getattr(e, "reason", "") or type(e).__name__, str(e)
    if body:
        try:
            data = json.loads(body)
            reason, message = data.get("reason") or reason, data.get("message") or message
        except (TypeError, ValueError):
            message = str(body)[:500]
    hint = ""
    if status == 401:
        hint = "The credentials were refused: refresh the kubeconfig's token (or the service account's)."
    elif status == 403:
        hint = "The account lacks a permission: apply the Role in docs/backends.md (Kubernetes) to it."
    elif status == 0:
        hint = "Is the API server reachable from the Runyard server? `kubectl cluster-info` with the same kubeconfig."
    return KubeApiError(int(status), str(reason), message.strip().splitlines()[0] if message.strip() else "", hint)


class KubeApi:
    """REST calls on one API server with plain dicts. Thread-safe (the client's pool is)."""

    def __init__(self, client: Any, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s

    @property
    def host(self) -> str:
        return str(self.client.configuration.host)

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None,
                content_type: str = "application/json") -> dict[str, Any]:
        """One call; the answer's JSON.

        Raises:
            KubeApiError: an error status, or the server cannot be reached (status 0).
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            resp = self.client.call_api(path, method, query_params=list((query or {}).items()), header_params=headers,
                                        body=body, auth_settings=["BearerToken"], _preload_content=False,
                                        _return_http_data_only=True, _request_timeout=self.timeout_s)
            data = resp.data
        except ApiException as e:
            raise _error_from(e) from e
        except (HTTPError, OSError) as e:
            raise _error_from(e) from e
        return json.loads(data) if data else {}

    def text(self, path: str, *, query: Mapping[str, Any] | None = None) -> str:
        """A GET whose answer is plain text (a pod's log).

        Raises:
            KubeApiError: an error status, or the server cannot be reached (status 0).
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            resp = self.client.call_api(path, "GET", query_params=list((query or {}).items()),
                                        header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"],
                                        _preload_content=False, _return_http_data_only=True,
                                        _request_timeout=self.timeout_s)
            return resp.data.decode(errors="replace")
        except ApiException as e:
            raise _error_from(e) from e
        except (HTTPError, OSError) as e:
            raise _error_from(e) from e

    def watch(self, path: str, query: Mapping[str, Any], timeout_s: float) -> Iterator[dict[str, Any]]:
        """The events of one watch request (``watch=true``), until the server ends it after ``timeout_s``.

        Raises:
            KubeApiError: the request failed, or the stream was cut (status 0).
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        params = {**query, "watch": "true", "timeoutSeconds": int(timeout_s), "allowWatchBookmarks": "true"}
        try:
            resp = self.client.call_api(path, "GET", query_params=list(params.items()),
                                        header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
                                        _preload_content=False, _return_http_data_only=True,
                                        _request_timeout=(self.timeout_s, timeout_s + self.timeout_s))
        except ApiException as e:
            raise _error_from(e) from e
        except (HTTPError, OSError) as e:
            raise _error_from(e) from e
        try:
            buffer = b""
            for chunk in resp.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)
        except (HTTPError, OSError, ValueError) as e:
            raise KubeApiError(0, "WatchCut", f"the watch on {path} was cut: {e}") from e
        finally:
            resp.release_conn()
