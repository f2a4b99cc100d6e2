"""A fake Kubernetes API server, in-process on 127.0.0.1:0, for the Kubernetes backend's tests.

No real API server can run on the machines these tests run on (no registry ships kube-apiserver;
kind, k3s and minikube need Docker), so this stands in for one. It serves what the backend uses,
with the API's semantics:

- create (``uid``, ``resourceVersion``, ``creationTimestamp``, ``generation``; 409 AlreadyExists;
  ``dryRun=All`` validates and stores nothing), get (404 NotFound), list with label selectors
  (``a=b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x)``), replace (409 Conflict on a stale
  ``resourceVersion``), merge patch and JSON patch, the ``/status`` subresource (the main
  endpoint ignores ``status``; ``/status`` changes only it);
- watch (``watch=true``/``1``; the official client 35 sends ``watch=True``) from a
  ``resourceVersion``, ending after ``timeoutSeconds``; a ``resourceVersion`` older than the
  compacted history gets an ``ERROR`` event with a 410 Gone ``Status`` (:meth:`FakeKubeServer.compact`),
  and :meth:`FakeKubeServer.drop_watches` cuts every open watch, as a load balancer does;
- pod logs (``pods/NAME/log``, ``tailLines``) from the fake kubelet;
- delete with ``propagationPolicy`` (Foreground and Background delete every object that names it
  in ``ownerReferences``, recursively; Orphan leaves them);
- discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/GROUP/VERSION``); a custom kind is served only
  once its CRD (``apiextensions.k8s.io/v1``) is created *and* established (:meth:`establish`, automatic
  unless ``auto_establish=False``);
- 422 Invalid for an object that fails its schema (:mod:`runyard.testing.kube_schemas`);
- 401 for a request without the server's bearer token.

:class:`runyard.testing.fake_kubelet.FakeKubelet` stands in for the kubelet and the controllers (Job controller, Kubeflow
Trainer, training-operator, KubeRay): it turns Jobs, TrainJobs, the v1 kinds and RayJobs into Pods and runs
each pod's command as a local subprocess with the pod's environment (``secretKeyRef`` and
``fieldRef`` resolved; this machine's Python stands in for the image), then reports pod and object
status through ``/status`` as the real controllers do. Tests that move objects through their
conditions themselves do not start it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["CRDS", "ApiError", "FakeKubeServer", "crd_manifest", "json_patch", "merge_patch", "now",
           "selector_matches", "write_kubeconfig"]

# Built-in resources: (group, version) → {plural: (kind, namespaced, has status subresource)}.
_BUILTIN: dict[tuple[str, str], dict[str, tuple[str, bool, bool]]] = {
    ("", "v1"): {"pods": ("Pod", True, True), "secrets": ("Secret", True, False), "services": ("Service", True, True),
                 "namespaces": ("Namespace", False, True), "events": ("Event", True, False),
                 "nodes": ("Node", False, True)},
    ("batch", "v1"): {"jobs": ("Job", True, True)},
    ("apiextensions.k8s.io", "v1"): {"customresourcedefinitions": ("CustomResourceDefinition", False, True)},
}

#: The custom kinds the backend may use: kind → (group, version, plural).
CRDS: dict[str, tuple[str, str, str]] = {
    "TrainJob": ("trainer.kubeflow.org", "v1alpha1", "trainjobs"),
    "PyTorchJob": ("kubeflow.org", "v1", "pytorchjobs"),
    "TFJob": ("kubeflow.org", "v1", "tfjobs"),
    "XGBoostJob": ("kubeflow.org", "v1", "xgboostjobs"),
    "JAXJob": ("kubeflow.org", "v1", "jaxjobs"),
    "RayJob": ("ray.io", "v1", "rayjobs"),
}


def crd_manifest(kind: str) -> dict[str, Any]:
    """A CustomResourceDefinition for one of :data:`CRDS` (its schema is checked by the fake, not by this object)."""
    group, version, plural = CRDS[kind]
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": [{"name": version, "served": True, "storage": True,
                                   "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def write_kubeconfig(path: Path, url: str, token: str, namespace: str = "default", context: str = "fake") -> Path:
    """A kubeconfig file naming ``url`` with a bearer ``token`` (context ``context``)."""
    data = {"apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": url}}],
            "users": [{"name": context, "user": {"token": token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}]}
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)
    return path


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
           "reason": reason, "code": code}
    if details:
        out["details"] = dict(details)
    return out


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.body = _status(code, reason, message, details)
        self.code = code


# ------------------------------------------------------------------ label selectors
_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` match a label selector string (equality- and set-based requirements)."""
    for req in _split_selector(selector or ""):
        req = req.strip()
        m = _SET_RE.match(req)
        if m:
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            present = m.group(1) in labels and labels[m.group(1)] in values
            if (m.group(2) == "in") != present:
                return False
        elif "!=" in req:
            k, v = (s.strip() for s in req.split("!=", 1))
            if labels.get(k) == v:
                return False
        elif "=" in req:
            k, v = (s.strip() for s in req.replace("==", "=").split("=", 1))
            if labels.get(k) != v:
                return False
        elif req.startswith("!"):
            if req[1:].strip() in labels:
                return False
        elif req not in labels:
            return False
    return True


# ------------------------------------------------------------------ patches
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Any, ops: list[Mapping[str, Any]]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1] if parts else ""
        kind = op["op"]
        if kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op["value"]:
                raise ApiError(422, "Invalid", f"test operation at {op['path']} failed")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last)
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch operation {kind!r}")
    return doc


# ------------------------------------------------------------------ the store
@dataclass
class _Event:
    rv: int
    type: str
    key: tuple[str, str, str, str, str]  # group, version, plural, namespace, name
    obj: dict[str, Any]


@dataclass
class _Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status_sub: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


class FakeKubeServer:
    """The fake API server. Start with :meth:`start` (or as a context manager); stop with :meth:`stop`.

    Args:
        token: the bearer token every request must carry (401 otherwise).
        validate: ``validate(obj) -> list[str]`` for creates and replaces (default:
            :func:`runyard.testing.kube_schemas.manifest_errors`); a non-empty answer is a 422.
        auto_establish: CRDs are established as they are created (``False``: call :meth:`establish`).

    Attributes:
        forbidden: what the caller may not do (403), for RBAC tests.
    """

    def __init__(self, token: str = "fake-token", *, validate: Callable[[Mapping[str, Any]], list[str]] | None = None,
                 auto_establish: bool = True) -> None:
        self.token = token
        #: ``(verb, plural)`` pairs answered 403 Forbidden, as RBAC would (verbs: get, list, watch, create,
        #: update, patch, delete).
        self.forbidden: set[tuple[str, str]] = set()
        if validate is None:
            from runyard.testing.kube_schemas import manifest_errors

            validate = manifest_errors
        self._validate = validate
        self.auto_establish = auto_establish
        self._objects: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        self._events: list[_Event] = []
        self._rv = 100
        self._compacted = 0  # watches from a resourceVersion below this get 410 Gone
        self._cond = threading.Condition()
        self._watch_epoch = 0  # bumped by drop_watches: open watches end abruptly
        self.requests: list[tuple[str, str]] = []  # (method, path with query), for tests
        self._open: dict[str, int] = {}  # plural → watches open now
        self.deletions: list[tuple[str, str, str]] = []  # (kind, name, propagationPolicy) of each delete, for tests
        self.log_source: Callable[[str], str] | None = None  # pod name → its log (set by FakeKubelet)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake API server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeKubeServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fake-kube-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self.drop_watches()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeKubeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- test controls
    def install_crd(self, kind: str) -> None:
        """Create the CRD of one of :data:`CRDS` (established now unless ``auto_establish`` is off)."""
        self.create(crd_manifest(kind))

    def establish(self, crd_name: str) -> None:
        """Mark a CRD ``Established`` (its kind is then served)."""
        key = ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "", crd_name)
        with self._cond:
            obj = copy.deepcopy(self._objects[key])
            obj.setdefault("status", {})["conditions"] = [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": now()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "lastTransitionTime": now()}]
            self._put(key, obj, "MODIFIED")

    def compact(self) -> int:
        """Forget the event history up to now (as etcd compaction does): older watches get 410 Gone."""
        with self._cond:
            self._compacted = self._rv
            self._events.clear()
            return self._rv

    def drop_watches(self) -> None:
        """Cut every open watch connection (the client sees the stream end)."""
        with self._cond:
            self._watch_epoch += 1
            self._cond.notify_all()

    def pod_log(self, name: str, tail_lines: int = 0) -> str:
        """A pod's log (``pods/NAME/log``), from the ``log_source`` a fake kubelet sets; ``tail_lines`` > 0: the last ones."""
        text = self.log_source(name) if self.log_source is not None else ""
        if tail_lines > 0:
            text = "".join(text.splitlines(keepends=True)[-tail_lines:])
        return text

    def open_watches(self, plural: str) -> int:
        """How many watches of ``plural`` (``jobs``, ``pods`` ...) are open now."""
        with self._cond:
            return self._open.get(plural, 0)

    def objects(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Copies of the stored objects (of one kind)."""
        with self._cond:
            return [copy.deepcopy(o) for o in self._objects.values() if kind is None or o.get("kind") == kind]

    # -------------------------------------------------------------- in-process API (also used by the handler)
    def resource(self, group: str, version: str, plural: str) -> _Resource:
        builtin = _BUILTIN.get((group, version), {})
        if plural in builtin:
            kind, namespaced, status_sub = builtin[plural]
            return _Resource(group, version, plural, kind, namespaced, status_sub)
        with self._cond:
            for crd in self._objects.values():
                if crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                if spec["group"] != group or spec["names"]["plural"] != plural:
                    continue
                if not any(v["name"] == version and v.get("served") for v in spec["versions"]):
                    continue
                if not _established(crd):
                    break
                return _Resource(group, version, plural, spec["names"]["kind"], spec.get("scope") == "Namespaced", True)
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({group or 'core'}/{version} {plural})")

    def _resource_of(self, obj: Mapping[str, Any]) -> _Resource:
        api = str(obj.get("apiVersion", ""))
        group, _, version = api.rpartition("/")
        for (g, v), plurals in _BUILTIN.items():
            if (g, v) == (group, version):
                for plural, (kind, _ns, _st) in plurals.items():
                    if kind == obj.get("kind"):
                        return self.resource(g, v, plural)
        for kind, (g, v, plural) in CRDS.items():
            if kind == obj.get("kind") and (g, v) == (group, version):
                return self.resource(g, v, plural)
        raise ApiError(404, "NotFound", f"no resource for {api} {obj.get('kind')}")

    def create(self, obj: Mapping[str, Any], namespace: str = "default", *, dry_run: bool = False,
               res: _Resource | None = None) -> dict[str, Any]:
        """Create ``obj`` (as a POST would), returning the stored object."""
        res = res or self._resource_of(obj)
        obj = copy.deepcopy(dict(obj))
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{res.kind}.metadata.name: Required value: name or generateName is required")
        if res.kind not in ("CustomResourceDefinition", "Namespace", "Event", "Node"):
            errors = self._check(obj)
            if errors:
                raise ApiError(422, "Invalid", f"{res.kind}.{res.group or 'core'} {name!r} is invalid: " + "; ".join(errors),
                                {"name": name, "kind": res.kind, "causes": [{"message": e} for e in errors]})
        ns = namespace if res.namespaced else ""
        key = (res.group, res.version, res.plural, ns, name)
        with self._cond:
            if key in self._objects:
                raise ApiError(409, "AlreadyExists", f'{res.plural}.{res.group or "core"} "{name}" already exists',
                                {"name": name, "kind": res.plural})
            if dry_run:
                return obj
            if res.namespaced:
                meta["namespace"] = ns
            meta.update({"uid": str(uuid.uuid4()), "creationTimestamp": now(), "generation": 1})
            if res.kind == "CustomResourceDefinition":
                obj["status"] = {"conditions": []}
            self._put(key, obj, "ADDED")
            stored = copy.deepcopy(obj)
        if res.kind == "CustomResourceDefinition" and self.auto_establish:
            self.establish(name)
            return self.get(res, "", name)
        return stored

    def _check(self, obj: Mapping[str, Any]) -> list[str]:
        try:
            return self._validate({k: v for k, v in obj.items() if k != "status"})
        except KeyError:
            return []  # a kind without a schema here (a test's own object): accepted as the API would with none

    def _put(self, key: tuple[str, str, str, str, str], obj: dict[str, Any], kind: str) -> None:
        # The caller holds self._cond.
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if kind == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        self._events.append(_Event(self._rv, kind, key, copy.deepcopy(obj)))
        self._cond.notify_all()

    def get(self, res: _Resource, namespace: str, name: str) -> dict[str, Any]:
        key = (res.group, res.version, res.plural, namespace if res.namespaced else "", name)
        with self._cond:
            if key not in self._objects:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found',
                                {"name": name, "kind": res.plural})
            return copy.deepcopy(self._objects[key])

    def list(self, res: _Resource, namespace: str | None, selector: str = "") -> dict[str, Any]:
        with self._cond:
            items = [copy.deepcopy(o) for k, o in self._objects.items()
                     if k[:3] == (res.group, res.version, res.plural) and (namespace is None or k[3] == namespace)
                     and selector_matches(selector, o["metadata"].get("labels") or {})]
            rv = str(self._rv)
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": {"resourceVersion": rv},
                "items": sorted(items, key=lambda o: o["metadata"]["name"])}

    def update(self, res: _Resource, namespace: str, name: str, new: Mapping[str, Any], *, status: bool) -> dict[str, Any]:
        """Replace the object (``status``: only its status; otherwise everything but its status)."""
        key = (res.group, res.version, res.plural, namespace if res.namespaced else "", name)
        with self._cond:
            if key not in self._objects:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found',
                                {"name": name, "kind": res.plural})
            old = self._objects[key]
            want_rv = (new.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.plural} "{name}": the object '
                                "has been modified; please apply your changes to the latest version and try again")
            obj = copy.deepcopy(old)
            if status:
                obj["status"] = copy.deepcopy(new.get("status") or {})
            else:
                keep_status = obj.get("status")
                obj = copy.deepcopy(dict(new))
                meta = obj.setdefault("metadata", {})
                for k in ("uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp"):
                    if k in old["metadata"]:
                        meta[k] = old["metadata"][k]
                if res.status_sub:
                    obj.pop("status", None)
                    if keep_status is not None:
                        obj["status"] = keep_status
                if obj.get("spec") != old.get("spec"):
                    meta["generation"] = old["metadata"].get("generation", 1) + 1
        if not status and res.kind not in ("CustomResourceDefinition", "Namespace", "Event"):
            errors = self._check(obj)
            if errors:
                raise ApiError(422, "Invalid", f"{res.kind} {name!r} is invalid: " + "; ".join(errors))
        with self._cond:
            if key not in self._objects:
                raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found')
            self._put(key, obj, "MODIFIED")
            return copy.deepcopy(obj)

    def patch(self, res: _Resource, namespace: str, name: str, body: Any, content_type: str, *,
              status: bool) -> dict[str, Any]:
        current = self.get(res, namespace, name)
        if "json-patch" in content_type:
            patched = json_patch(current, body)
        else:  # merge patch; a strategic merge patch is treated as one (lists are replaced)
            patched = merge_patch(current, body)
        patched.setdefault("metadata", {}).pop("resourceVersion", None)
        return self.update(res, namespace, name, patched, status=status)

    def set_status(self, kind: str, name: str, status: Mapping[str, Any], namespace: str = "default") -> dict[str, Any]:
        """Merge ``status`` into an object's status (what a controller does through ``/status``)."""
        res = self.resource_by_kind(kind)
        return self.patch(res, namespace, name, {"status": dict(status)}, "application/merge-patch+json", status=True)

    def resource_by_kind(self, kind: str) -> _Resource:
        for (g, v), plurals in _BUILTIN.items():
            for plural, (k, _ns, _st) in plurals.items():
                if k == kind:
                    return self.resource(g, v, plural)
        g, v, plural = CRDS[kind]
        return self.resource(g, v, plural)

    def delete(self, res: _Resource, namespace: str, name: str, propagation: str = "Background") -> dict[str, Any]:
        key = (res.group, res.version, res.plural, namespace if res.namespaced else "", name)
        with self._cond:
            if key not in self._objects:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found',
                                {"name": name, "kind": res.plural})
            obj = copy.deepcopy(self._objects[key])
            self.deletions.append((res.kind, name, propagation))
            if propagation == "Foreground":
                # The owner is marked first (deletionTimestamp + the foregroundDeletion finalizer), its
                # dependents go, then the owner: watchers see MODIFIED, the dependents' DELETED, DELETED.
                obj["metadata"]["deletionTimestamp"] = now()
                obj["metadata"]["finalizers"] = ["foregroundDeletion"]
                self._put(key, obj, "MODIFIED")
                obj = copy.deepcopy(obj)
            if propagation != "Orphan":
                self._cascade(obj["metadata"]["uid"])
            obj["metadata"].pop("finalizers", None)
            self._put(key, obj, "DELETED")
        return _status(200, "", "") | {"status": "Success", "details": {"name": name, "kind": res.plural,
                                                                        "uid": obj["metadata"]["uid"]}}

    def delete_object(self, kind: str, name: str, namespace: str = "default", propagation: str = "Background") -> None:
        """Delete by kind (for tests and the fake kubelet)."""
        self.delete(self.resource_by_kind(kind), namespace, name, propagation)

    def _cascade(self, uid: str) -> None:
        # The caller holds self._cond.
        owned = [(k, o) for k, o in self._objects.items()
                 if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])]
        for key, child in owned:
            self._cascade(child["metadata"]["uid"])
            if key in self._objects:
                self._put(key, copy.deepcopy(child), "DELETED")

    def watch(self, res: _Resource, namespace: str | None, selector: str, since: int | None,
              timeout_s: float) -> Iterator[dict[str, Any]]:
        """Events after ``since`` (``None``: the current objects as ADDED first), until ``timeout_s`` or a drop."""
        with self._cond:
            self._open[res.plural] = self._open.get(res.plural, 0) + 1
        try:
            yield from self._watch(res, namespace, selector, since, timeout_s)
        finally:
            with self._cond:
                self._open[res.plural] -= 1

    def _watch(self, res: _Resource, namespace: str | None, selector: str, since: int | None,
               timeout_s: float) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            epoch = self._watch_epoch
            if since is None:
                sent = self._rv
                initial = [copy.deepcopy(o) for k, o in self._objects.items()
                           if k[:3] == (res.group, res.version, res.plural) and (namespace is None or k[3] == namespace)
                           and selector_matches(selector, o["metadata"].get("labels") or {})]
            else:
                if since < self._compacted:
                    yield {"type": "ERROR", "object": _status(410, "Expired", f"too old resource version: {since} "
                                                                          f"({self._compacted})")}
                    return
                sent = since
                initial = []
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        while True:
            with self._cond:
                while True:
                    if self._watch_epoch != epoch:
                        raise ConnectionAbortedError("watch dropped")
                    if since is not None and since < self._compacted:
                        yield {"type": "ERROR", "object": _status(410, "Expired", "too old resource version")}
                        return
                    pending = [e for e in self._events if e.rv > sent]
                    if pending:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._cond.wait(min(remaining, 0.5))
            for ev in pending:
                sent = ev.rv
                if ev.key[:3] != (res.group, res.version, res.plural):
                    continue
                if namespace is not None and ev.key[3] != namespace:
                    continue
                if not selector_matches(selector, ev.obj["metadata"].get("labels") or {}):
                    continue
                yield {"type": ev.type, "object": copy.deepcopy(ev.obj)}

    # -------------------------------------------------------------- discovery
    def discovery(self, group: str | None, version: str | None) -> dict[str, Any]:
        if group is None:  # /apis
            groups: dict[str, list[str]] = {}
            for (g, v) in _BUILTIN:
                if g:
                    groups.setdefault(g, []).append(v)
            for crd in self.objects("CustomResourceDefinition"):
                if _established(crd):
                    for v in crd["spec"]["versions"]:
                        if v.get("served") and v["name"] not in groups.setdefault(crd["spec"]["group"], []):
                            groups[crd["spec"]["group"]].append(v["name"])
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}} for g, vs in sorted(groups.items())]}
        resources = []
        for plural, (kind, namespaced, status_sub) in _BUILTIN.get((group, version or ""), {}).items():
            resources.append({"name": plural, "kind": kind, "namespaced": namespaced, "singularName": kind.lower(),
                              "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            if status_sub:
                resources.append({"name": f"{plural}/status", "kind": kind, "namespaced": namespaced,
                                  "singularName": "", "verbs": ["get", "patch", "update"]})
        for crd in self.objects("CustomResourceDefinition"):
            spec = crd["spec"]
            if spec["group"] == group and _established(crd) and any(
                    v["name"] == version and v.get("served") for v in spec["versions"]):
                names = spec["names"]
                resources.append({"name": names["plural"], "kind": names["kind"], "namespaced": True,
                                  "singularName": names.get("singular", ""),
                                  "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
                resources.append({"name": f"{names['plural']}/status", "kind": names["kind"], "namespaced": True,
                                  "singularName": "", "verbs": ["get", "patch", "update"]})
        if not resources:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({group}/{version})")
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _established(crd: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


_PATH_RE = re.compile(r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))"
                      r"(?:/namespaces/(?P<ns>[^/]+))?(?:/(?P<plural>[^/]+))?(?:/(?P<name>[^/]+))?(?:/(?P<sub>status|log))?/?$")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        return json.loads(self._raw) if self._raw else None

    def _handle(self, method: str) -> None:
        fake = self.fake
        fake.requests.append((method, self.path))
        # The body is read first, whatever the answer: left unread, it would be taken for the next request.
        n = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(n) if n else b""
        try:
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            path = url.path.rstrip("/") or "/"
            if method == "GET" and path == "/api":
                return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
            if method == "GET" and path == "/apis":
                return self._send(200, fake.discovery(None, None))
            if method == "GET" and path == "/version":
                return self._send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake"})
            m = _PATH_RE.match(path)
            if not m:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
            group, version = (m["g"], m["v"]) if m["g"] else ("", m["cv"])
            if m["plural"] is None and m["ns"] is None:
                if method != "GET":
                    raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
                return self._send(200, fake.discovery(group, version))
            if m["plural"] is None:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
            res = fake.resource(group, version, m["plural"])
            ns = m["ns"] or ""
            name, sub = m["name"], m["sub"]
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method) or (
                "get" if name else ("watch" if query.get("watch", "").lower() in ("true", "1") else "list"))
            if (verb, res.plural) in fake.forbidden:
                raise ApiError(403, "Forbidden", f'{res.plural}.{res.group or "core"} is forbidden: User "fake" cannot '
                                                 f'{verb} resource "{res.plural}" in API group "{res.group}" in the '
                                                 f'namespace "{ns}"')
            if method == "GET" and name is None:
                if query.get("watch", "").lower() in ("true", "1"):
                    return self._watch(res, m["ns"], query)
                return self._send(200, fake.list(res, m["ns"], query.get("labelSelector", "")))
            if method == "GET" and sub == "log" and res.kind == "Pod":
                fake.get(res, ns, name)  # 404 for an unknown pod
                text = fake.pod_log(name, int(query.get("tailLines") or 0))
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            if method == "GET":
                return self._send(200, fake.get(res, ns, name))
            if method == "POST" and name is None:
                dry = query.get("dryRun") == "All"
                return self._send(200 if dry else 201, fake.create(self._body() or {}, ns, dry_run=dry, res=res))
            if method == "PUT" and name:
                return self._send(200, fake.update(res, ns, name, self._body() or {}, status=sub == "status"))
            if method == "PATCH" and name:
                return self._send(200, fake.patch(res, ns, name, self._body(), self.headers.get("Content-Type", ""),
                                                  status=sub == "status"))
            if method == "DELETE" and name:
                body = self._body() or {}
                if query.get("dryRun") == "All" or "All" in (body.get("dryRun") or []):
                    return self._send(200, fake.get(res, ns, name))  # checked (404 when missing), nothing deleted
                policy = body.get("propagationPolicy") or query.get("propagationPolicy") or "Background"
                return self._send(200, fake.delete(res, ns, name, policy))
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
        except ApiError as e:
            self._send(e.code, e.body)
        except ValueError as e:
            self._send(400, _status(400, "BadRequest", f"the request body is not JSON: {e}"))

    def _watch(self, res: _Resource, namespace: str | None, query: Mapping[str, str]) -> None:
        rv = query.get("resourceVersion")
        since = int(rv) if rv not in (None, "", "0") else None
        timeout_s = float(query.get("timeoutSeconds") or 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in self.fake.watch(res, namespace, query.get("labelSelector", ""), since, timeout_s):
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except ConnectionAbortedError:
            self.close_connection = True  # dropped: no final chunk, the client sees the stream cut
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")
