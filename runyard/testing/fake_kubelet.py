"""A fake kubelet and fake operators for the fake API server (:mod:`runyard.testing.fake_kube`).

No kubelet can run on the machines the Kubernetes backend is tested on: :class:`FakeKubelet` stands
in for it, and for the controllers that turn workload objects into pods (the Job controller,
Kubeflow Trainer, the training operator, KubeRay), so that the backend contract can run real
tasks: each pod's command runs as a local subprocess.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.testing.fake_kube import ApiError, FakeKubeServer, now

__all__ = ["FakeKubelet"]


@dataclass
class _Pod:
    name: str
    owner_kind: str
    owner_name: str
    proc: subprocess.Popen[bytes] | None = None
    workdir: str = ""
    exit_code: int | None = None
    deleted: bool = False
    log: list[str] = field(default_factory=list)
    argv: list[str] | None = None  # instead of the container's command (a RayJob's entrypoint on its head)
    idle: bool = False  # runs nothing (a Ray worker: KubeRay's `ray start` is not simulated)


class FakeKubelet:
    """Runs the pods of Jobs, TrainJobs, v1 training kinds and RayJobs as local subprocesses, as kubelet and operators would.

    A Job (``completions`` pods; ``completionMode: Indexed`` gives each ``JOB_COMPLETION_INDEX``),
    a TrainJob (``trainer.numNodes`` pods, each with ``JOB_COMPLETION_INDEX``; the real Trainer goes
    through a JobSet, skipped here) or a v1 kind (one pod per replica, labelled with its
    ``training.kubeflow.org/replica-type`` and ``replica-index``) gets Pods owned by it; each pod's
    first container runs here with its ``command``/``args``, its ``env`` (``secretKeyRef`` read from the
    Secret, ``fieldRef`` from the pod: ``status.podIP`` is 127.0.0.1) over this process's ``PATH``
    and ``PYTHONPATH`` (this machine's Python stands in for the image), in a directory of its own
    (``TMPDIR`` too). Pod status follows the process; the owner gets ``Complete``/``Failed``
    (Job, TrainJob) or ``Succeeded``/``Failed`` (v1) when its pods end. A deleted pod's process gets
    SIGTERM, then SIGKILL after the pod's grace period. A RayJob's head pod runs its entrypoint (KubeRay's Ray
    nodes are not simulated: worker pods run nothing); its status follows the entrypoint.

    Args:
        api: the fake API server.
        root: where pods' directories go.
        hold: kinds whose objects are left alone (the test moves them itself).
    """

    def __init__(self, api: FakeKubeServer, root: Path, *, namespace: str = "default") -> None:
        self.api = api
        self.root = Path(root)
        self.namespace = namespace
        self._pods: dict[str, _Pod] = {}
        self._seen: set[str] = set()  # uids of owners already given pods
        self._finished: set[tuple[str, str]] = set()  # owners given their end
        self._waiting: list[tuple[_Pod, Mapping[str, Any], dict[str, Any], dict[str, str]]] = []  # not started yet
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="fake-kubelet", daemon=True)
        api.log_source = self.pod_logs

    def start(self) -> FakeKubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and every pod process it started (by its own pid)."""
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            pods = list(self._pods.values())
        for pod in pods:
            self._kill(pod, 1.0)

    def pod_logs(self, name: str) -> str:
        """What the pod's container printed so far (its ``kubectl logs``)."""
        with self._lock:
            pod = self._pods.get(name)
        if pod is None:
            return ""
        if pod.workdir:
            try:
                return Path(pod.workdir, "pod.log").read_text(errors="replace")
            except OSError:
                pass
        return "".join(pod.log)

    # -------------------------------------------------------------- the loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 - a test double must keep running; the failure is printed
                print(f"fake kubelet: {e!r}", file=sys.stderr)
            self._stop.wait(0.05)

    def _tick(self) -> None:
        for obj in self.api.objects():
            uid = obj["metadata"]["uid"]
            if uid in self._seen or obj["metadata"].get("deletionTimestamp"):
                continue
            kind = obj.get("kind")
            if kind == "Job" and not (obj["spec"].get("suspend")):
                self._seen.add(uid)
                self._start_job(obj)
            elif kind == "TrainJob" and not obj["spec"].get("suspend"):
                self._seen.add(uid)
                self._start_trainjob(obj)
            elif kind in ("PyTorchJob", "TFJob", "XGBoostJob", "JAXJob"):
                self._seen.add(uid)
                self._start_v1(obj)
            elif kind == "RayJob":
                self._seen.add(uid)
                self._start_rayjob(obj)
        self._start_waiting()
        live = {o["metadata"]["name"] for o in self.api.objects("Pod")}
        with self._lock:
            pods = list(self._pods.values())
        for pod in pods:
            if pod.name not in live and not pod.deleted:
                pod.deleted = True
                threading.Thread(target=self._kill, args=(pod, 5.0), daemon=True).start()
            elif not pod.deleted and pod.proc is not None and pod.exit_code is None and pod.proc.poll() is not None:
                pod.exit_code = pod.proc.returncode
                self._pod_ended(pod)

    # -------------------------------------------------------------- creating pods
    def _owner_ref(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
                "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}

    def _start_job(self, job: Mapping[str, Any]) -> None:
        spec = job["spec"]
        n = int(spec.get("completions") or 1)
        indexed = spec.get("completionMode") == "Indexed"
        template = spec["template"]
        name = job["metadata"]["name"]
        for i in range(n):
            labels = {**(template.get("metadata") or {}).get("labels", {}), "job-name": name,
                      "batch.kubernetes.io/job-name": name}
            extra = {"JOB_COMPLETION_INDEX": str(i)} if indexed else {}
            if indexed:
                labels["batch.kubernetes.io/job-completion-index"] = str(i)
            pod_name = f"{name}-{i}-{uuid.uuid4().hex[:5]}" if indexed else f"{name}-{uuid.uuid4().hex[:5]}"
            self._run_pod(job, pod_name, labels, template["spec"], extra)
        self.api.set_status("Job", name, {"active": n, "startTime": now()}, self.namespace)

    def _start_trainjob(self, tj: Mapping[str, Any]) -> None:
        trainer = tj["spec"].get("trainer") or {}
        n = int(trainer.get("numNodes") or 1)
        name = tj["metadata"]["name"]
        container = {"name": "node", "image": trainer.get("image", "runtime-image"), "command": trainer.get("command"),
                     "args": trainer.get("args"), "env": trainer.get("env") or []}
        for i in range(n):
            labels = {**(tj["metadata"].get("labels") or {}), "jobset.sigs.k8s.io/jobset-name": name}
            self._run_pod(tj, f"{name}-node-0-{i}-{uuid.uuid4().hex[:5]}", labels, {"containers": [container]},
                          {"JOB_COMPLETION_INDEX": str(i), "PET_NODE_RANK": str(i), "PET_NNODES": str(n)})

    def _start_v1(self, obj: Mapping[str, Any]) -> None:
        specs = next(v for k, v in obj["spec"].items() if k.endswith("ReplicaSpecs"))
        name = obj["metadata"]["name"]
        for rtype, spec in specs.items():
            for i in range(int(spec.get("replicas") or 0)):
                labels = {**((spec["template"].get("metadata") or {}).get("labels") or {}),
                          "training.kubeflow.org/job-name": name,
                          "training.kubeflow.org/replica-type": rtype.lower(),
                          "training.kubeflow.org/replica-index": str(i)}
                self._run_pod(obj, f"{name}-{rtype.lower()}-{i}", labels, spec["template"]["spec"], {})
        self.api.set_status(obj["kind"], name, {"conditions": [
            {"type": "Created", "status": "True", "reason": f"{obj['kind']}Created", "lastTransitionTime": now()}]},
            self.namespace)

    def _env(self, container: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "HOME")}
        exe_dir = os.path.dirname(sys.executable)
        env["PATH"] = exe_dir + os.pathsep + env.get("PATH", os.defpath)
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            source = var.get("valueFrom") or {}
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = next((s for s in self.api.objects("Secret") if s["metadata"]["name"] == ref["name"]), None)
                if secret is None:
                    raise LookupError(f"secret {ref['name']} not found")  # a real kubelet retries
                data = secret.get("data") or {}
                if ref["key"] in data:
                    import base64

                    env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
                else:
                    env[var["name"]] = (secret.get("stringData") or {})[ref["key"]]
            elif "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                m = re.match(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
                if m:
                    env[var["name"]] = (pod["metadata"].get(m.group(1)) or {}).get(m.group(2), "")
                elif path == "metadata.name":
                    env[var["name"]] = pod["metadata"]["name"]
                elif path == "metadata.namespace":
                    env[var["name"]] = self.namespace
                elif path in ("status.podIP", "status.hostIP"):
                    env[var["name"]] = "127.0.0.1"
        return env

    def _start_rayjob(self, rj: Mapping[str, Any]) -> None:
        # KubeRay makes a RayCluster (head and worker pods running `ray start`) and submits the entrypoint
        # to the head. Here the head pod runs the entrypoint itself with the head container's environment;
        # worker pods are made but run nothing.
        name = rj["metadata"]["name"]
        cluster = rj["spec"]["rayClusterSpec"]
        head = cluster["headGroupSpec"]["template"]
        self.api.set_status("RayJob", name, {"jobDeploymentStatus": "Initializing"}, self.namespace)
        for group in cluster.get("workerGroupSpecs") or []:
            for i in range(int(group.get("replicas") or 0)):
                labels = {**((group["template"].get("metadata") or {}).get("labels") or {}), "ray.io/node-type": "worker"}
                self._run_pod(rj, f"{name}-{group['groupName']}-{i}", labels, group["template"]["spec"], {}, idle=True)
        labels = {**((head.get("metadata") or {}).get("labels") or {}), "ray.io/node-type": "head"}
        self._run_pod(rj, f"{name}-head", labels, head["spec"], {"RAY_ADDRESS": "127.0.0.1:6379"},
                      argv=["/bin/sh", "-c", rj["spec"]["entrypoint"]])
        self.api.set_status("RayJob", name, {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, self.namespace)

    def _run_pod(self, owner: Mapping[str, Any], pod_name: str, labels: Mapping[str, str], spec: Mapping[str, Any],
                 extra_env: Mapping[str, str], *, argv: list[str] | None = None, idle: bool = False) -> None:
        pod_obj = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod_name, "labels": dict(labels), "ownerReferences": [self._owner_ref(owner)]},
                   "spec": {k: v for k, v in spec.items()}}
        pod_obj["spec"]["restartPolicy"] = "Never"
        self.api.create(pod_obj, self.namespace)
        pod = _Pod(pod_name, owner["kind"], owner["metadata"]["name"], argv=argv, idle=idle)
        with self._lock:
            self._pods[pod_name] = pod
            self._waiting.append((pod, owner, pod_obj, dict(extra_env)))
        self._start_waiting()

    def _start_waiting(self) -> None:
        """Start the pods whose Secrets exist now; the others wait, as a kubelet retries them."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for pod, owner, pod_obj, extra_env in waiting:
            if pod.deleted:
                continue
            container = pod_obj["spec"]["containers"][0]
            try:
                env = self._env(container, pod_obj)
            except LookupError as e:
                with self._lock:
                    self._waiting.append((pod, owner, pod_obj, extra_env))
                if not pod.log:
                    pod.log.append(str(e))
                    self._set_pod_status(pod.name, {"phase": "Pending", "containerStatuses": [
                        {"name": container["name"], "ready": False, "restartCount": 0, "image": container.get("image", ""),
                         "imageID": "", "state": {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}}]})
                continue
            pod.log.clear()
            env.update(extra_env)
            pod.workdir = tempfile.mkdtemp(prefix=f"{pod.name}-", dir=self.root)
            env["TMPDIR"] = pod.workdir
            argv = pod.argv or list(container.get("command") or []) + list(container.get("args") or [])
            if pod.idle:
                argv = ["sleep", "3600"]
            with open(os.path.join(pod.workdir, "pod.log"), "wb") as out:
                pod.proc = subprocess.Popen(argv, env=env, cwd=pod.workdir, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
            self._set_pod_status(pod.name, {"phase": "Running", "podIP": "127.0.0.1", "startTime": now(),
                                            "containerStatuses": [{"name": container["name"], "ready": True,
                                                                   "restartCount": 0, "image": container.get("image", ""),
                                                                   "imageID": "", "state": {"running": {"startedAt": now()}}}]})
            if owner["kind"] in ("PyTorchJob", "TFJob", "XGBoostJob", "JAXJob"):
                self._v1_running(owner)

    def _set_pod_status(self, name: str, status: Mapping[str, Any]) -> None:
        try:
            self.api.set_status("Pod", name, status, self.namespace)
        except ApiError:
            pass  # deleted meanwhile

    def _v1_running(self, owner: Mapping[str, Any]) -> None:
        try:
            current = self.api.get(self.api.resource_by_kind(owner["kind"]), self.namespace, owner["metadata"]["name"])
        except ApiError:
            return
        conds = [c for c in (current.get("status") or {}).get("conditions") or [] if c["type"] != "Running"]
        conds.append({"type": "Running", "status": "True", "reason": f"{owner['kind']}Running", "lastTransitionTime": now()})
        self.api.set_status(owner["kind"], owner["metadata"]["name"], {"conditions": conds}, self.namespace)

    # -------------------------------------------------------------- ending pods
    def _kill(self, pod: _Pod, grace_s: float) -> None:
        proc = pod.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the group is the pod's (start_new_session), not yet reaped
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def _pod_ended(self, pod: _Pod) -> None:
        code = pod.exit_code or 0
        try:
            pod.log.append(Path(pod.workdir, "pod.log").read_text(errors="replace") if pod.workdir else "")
        except OSError:
            pass
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "finishedAt": now()}
        try:
            self.api.set_status("Pod", pod.name, {"phase": "Succeeded" if code == 0 else "Failed",
                                                  "containerStatuses": [{"name": "main", "ready": False, "restartCount": 0,
                                                                         "image": "", "imageID": "",
                                                                         "state": {"terminated": terminated}}]},
                                self.namespace)
        except ApiError:
            return  # deleted meanwhile
        with self._lock:
            group = [p for p in self._pods.values() if (p.owner_kind, p.owner_name) == (pod.owner_kind, pod.owner_name)]
            siblings = [p for p in group if not p.idle]
            failed = [p for p in siblings if p.exit_code not in (None, 0)]
            if not failed and any(p.exit_code is None for p in siblings):
                return
            owner = (pod.owner_kind, pod.owner_name)
            if owner in self._finished:
                return
            self._finished.add(owner)
        self._finish_owner(pod.owner_kind, pod.owner_name, ok=not failed, n=len(siblings), n_failed=len(failed))
        for p in group:  # backoffLimit 0 / the operator's failure: the other pods are stopped; so are idle ones
            if (failed or p.idle) and p.exit_code is None and p.proc is not None:
                threading.Thread(target=self._kill, args=(p, 5.0), daemon=True).start()

    def _finish_owner(self, kind: str, name: str, *, ok: bool, n: int, n_failed: int) -> None:
        at = now()
        try:
            if kind == "Job":
                conds = ([{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                           "lastTransitionTime": at},
                          {"type": "Complete", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": at}]
                         if ok else
                         [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": at},
                          {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                           "message": "Job has reached the specified backoff limit", "lastTransitionTime": at}])
                self.api.set_status("Job", name, {"active": 0, "succeeded": n - n_failed, "failed": n_failed,
                                                  "conditions": conds, "completionTime": at if ok else None},
                                    self.namespace)
            elif kind == "RayJob":
                self.api.set_status("RayJob", name, {"jobDeploymentStatus": "Complete" if ok else "Failed",
                                                     "jobStatus": "SUCCEEDED" if ok else "FAILED",
                                                     **({} if ok else {"reason": "AppFailed",
                                                                       "message": "the entrypoint failed"})},
                                    self.namespace)
            elif kind == "TrainJob":
                cond = ({"type": "Complete", "status": "True", "reason": "JobsCompleted", "message": "TrainJob is completed",
                         "lastTransitionTime": at} if ok else
                        {"type": "Failed", "status": "True", "reason": "JobsFailed", "message": "TrainJob has failed",
                         "lastTransitionTime": at})
                self.api.set_status("TrainJob", name, {"conditions": [cond]}, self.namespace)
            else:
                current = self.api.get(self.api.resource_by_kind(kind), self.namespace, name)
                conds = [c | {"status": "False"} if c["type"] == "Running" else c
                         for c in (current.get("status") or {}).get("conditions") or []]
                conds.append({"type": "Succeeded" if ok else "Failed", "status": "True",
                              "reason": f"{kind}{'Succeeded' if ok else 'Failed'}", "lastTransitionTime": at})
                self.api.set_status(kind, name, {"conditions": conds}, self.namespace)
        except ApiError:
            pass  # the owner was deleted meanwhile
