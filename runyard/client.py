"""A typed HTTP client for Runyard's REST API, used by the SDK, the CLI and the task runner.

Every failure surfaces as a ``RunyardError`` rebuilt from the server's
``{code, message, hint}`` answer, or ``ServerUnreachable`` when no server answers.
Keep this module's imports light: it is loaded inside every run and by every CLI
command, which is why HTTP goes through :mod:`runyard._http` (the standard
library's ``http.client``) rather than httpx.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Self

from runyard._http import BodyError, Response, Session, TransportError
from runyard.errors import InvalidInput, RunyardError, ServerUnreachable, from_payload

if TYPE_CHECKING:
    from runyard.spool import SpoolClient

__all__ = ["RUN_FIELDS", "SUMMARIES", "Client", "run_rows"]

CSRF_HEADER = "X-CSRF-Token"

_loads: Callable[[bytes], Any]
try:  # orjson is a dependency; the fallback keeps the client working where it cannot load (a run's
    # container image whose Python differs from the host's: the SDK is mounted there as plain source)
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    _loads = orjson.loads
except ImportError:  # pragma: no cover - exercised by the container tests
    import json
    import math

    def _finite(obj: Any) -> Any:
        if isinstance(obj, float) and not math.isfinite(obj):
            return None  # as orjson writes NaN and ±inf
        if isinstance(obj, dict):
            return {k: _finite(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [_finite(v) for v in obj]
        return obj

    def _dumps(obj: Any) -> bytes:
        try:
            return json.dumps(obj, allow_nan=False, ensure_ascii=False).encode()
        except ValueError:
            return json.dumps(_finite(obj), ensure_ascii=False).encode()

    _loads = json.loads


# The columns of an exported run before its params and metrics (runs_df, `runyard ls --csv`).
RUN_FIELDS = ("id", "project", "experiment_id", "number", "name", "status", "status_message", "attempt",
              "exit_code", "backend", "created_at", "started_at", "ended_at", "duration_s")
SUMMARIES = ("last", "min", "max", "step", "count")


def run_rows(runs: Sequence[dict[str, Any]], *, summaries: Sequence[str] = ("last", "min", "max")
             ) -> tuple[list[str], list[list[Any]]]:
    """Runs (as ``GET /runs`` gives them) as a table: the columns and one row per run.

    Columns: :data:`RUN_FIELDS`, then ``params.<name>`` for every param any run has, then
    ``metrics.<key>.<summary>`` for every metric key and summary asked, then ``tags.<name>``; a run
    without one has ``None`` there. Params and tags in name order, metrics by key.
    """
    bad = [s for s in summaries if s not in SUMMARIES]
    if bad:
        raise InvalidInput(f"Unknown metric summary {bad[0]!r}.", f"Use some of: {', '.join(SUMMARIES)}.")
    params = sorted({k for r in runs for k in r.get("params") or {}})
    metrics = sorted({k for r in runs for k in r.get("metrics") or {}})
    tags = sorted({k for r in runs for k in r.get("tags") or {}})
    columns = [*RUN_FIELDS, *(f"params.{k}" for k in params),
               *(f"metrics.{k}.{s}" for k in metrics for s in summaries), *(f"tags.{k}" for k in tags)]
    rows = []
    for r in runs:
        start, end = r.get("started_at"), r.get("ended_at")
        fields = {**r, "duration_s": (end - start) if start is not None and end is not None else None}
        row = [fields.get(f) for f in RUN_FIELDS]
        p, m, t = r.get("params") or {}, r.get("metrics") or {}, r.get("tags") or {}
        row += [p.get(k) for k in params]
        row += [(m[k] or {}).get(s) if k in m else None for k in metrics for s in summaries]
        row += [t.get(k) for k in tags]
        rows.append(row)
    return columns, rows


class Client:
    """Talks to one server. Thread-safe (its pool of connections is); reuse one per process.

    Args:
        base_url: e.g. ``http://127.0.0.1:8765``; ``/api/v1`` is added.
        token: API token sent as ``Authorization: Bearer``.
        timeout_s: per-request timeout.
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": "runyard-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = Session(self.base_url + "/api/v1", headers=headers, timeout_s=timeout_s)
        self._owns_http = True
        self._auth: dict[str, str] = {}  # per-request Authorization of a with_token() view

    def with_token(self, token: str | None) -> Client:
        """A client for the same server that sends ``token``, sharing this one's connections.

        For the local agent, which reports for many runs, each with its own token: a new
        client per run would cost a TLS context and a TCP connection each time.
        Closing the view leaves the shared connections open.
        """
        view = Client.__new__(Client)
        view.base_url, view._http, view._owns_http = self.base_url, self._http, False
        view._auth = {"Authorization": f"Bearer {token}"} if token else {}
        return view

    def retarget(self, base_url: str) -> None:
        """Send the next requests to ``base_url``: the same server at a new address (a restarted local server).

        Requests in flight on other threads finish (or fail) on the old connections, which are closed.
        """
        old = self._http
        self._http = Session(base_url.rstrip("/") + "/api/v1", headers=old.headers, timeout_s=old.timeout_s)
        self.base_url = base_url.rstrip("/")
        if self._owns_http:
            old.close()

    @classmethod
    def from_env(cls) -> Client | SpoolClient:
        """The client for the configured server (``RUNYARD_SERVER``, credentials, or the embedded one).

        The token is RUNYARD_TOKEN, else the one ``runyard login`` saved for that server.
        Inside a task whose compute node cannot reach the server (``RUNYARD_SPOOL_DIR``
        set by the runner), a ``runyard.spool.SpoolClient``: the methods a task's runner and
        SDK call, writing to the spool (it has no ``create_run``, nor most others).
        """
        if os.environ.get("RUNYARD_SPOOL_DIR"):
            from runyard.spool import SpoolClient

            return SpoolClient.from_env()
        from runyard._local import resolve_server

        url, token = resolve_server()
        return cls(url, token)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- plumbing
    def request(self, method: str, path: str, *, json: Any = None, content: Any = None, params: Any = None,
                headers: dict[str, str] | None = None, timeout_s: float | None = None) -> Response:
        """One request to ``/api/v1{path}``; the answer if its status is below 400.

        Args:
            json: a body sent as JSON (instead of ``content``).
            content: bytes, a binary file (sent with its size when it can seek) or an iterable of bytes.
            params: the query, a dict or a sequence of pairs; list values repeat their key.

        Raises:
            RunyardError: the server's error, rebuilt from its ``{code, message, hint}`` answer.
            ServerUnreachable: no answer (refused, timed out, reset, TLS or proxy failure).
            InvalidInput: a file body shrank while it was sent.
        """
        if self._auth:
            headers = {**self._auth, **(headers or {})}
        if json is not None:
            content = _dumps(json)
            headers = {**(headers or {}), "Content-Type": "application/json"}
        try:
            resp = self._http.request(method, path, params=params, content=content, headers=headers, timeout_s=timeout_s)
        except TransportError as e:
            raise ServerUnreachable(
                f"Cannot reach the Runyard server at {self.base_url}: {e}.",
                f"Is it up? Try `curl {self.base_url}/api/v1/health`, or `runyard server status`.",
            ) from e
        except BodyError as e:
            raise InvalidInput(str(e), "Upload it again once nothing writes to the file.") from e
        if resp.status_code >= 400:
            raise _error(resp)
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A request whose answer is a JSON object, decoded (not validated: the server's schema is trusted)."""
        resp = self.request(method, path, **kwargs)
        answer: dict[str, Any] = _loads(resp.content)
        return answer

    def _send(self, method: str, path: str, **kwargs: Any) -> None:
        """A request whose answer has no body (the endpoints that answer 204)."""
        self.request(method, path, **kwargs)

    # ------------------------------------------------------------------ server
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health", timeout_s=5.0)

    # -------------------------------------------------------------------- auth
    def login(self, username: str, password: str) -> dict[str, Any]:
        """Sign in with a password: the session cookie is kept, and later writes send its CSRF header."""
        answer = self._json("POST", "/auth/login", json={"username": username, "password": password})
        self._http.headers[CSRF_HEADER] = answer["csrf_token"]
        return answer

    def logout(self) -> bool:
        """End the session this client signed in with (if any)."""
        ended: bool = self._json("POST", "/auth/logout")["signed_out"]
        self._http.headers.pop(CSRF_HEADER, None)
        self._http.cookies.clear()
        return ended

    def me(self) -> dict[str, Any]:
        return self._json("GET", "/me")

    def create_token(self, name: str = "", expires_in_days: float | None = None) -> dict[str, Any]:
        """A new personal token: ``{"token": secret (shown once), "info": {...}}``."""
        return self._json("POST", "/tokens", json={"name": name, "expires_in_days": expires_in_days})

    def list_tokens(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", "/tokens")["items"]
        return items

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return self._json("DELETE", f"/tokens/{token_id}")

    def revoke_run_token(self, run_id: int) -> dict[str, Any]:
        """End run ``run_id``'s token at once (admins and owners of the run's project)."""
        return self._json("DELETE", f"/runs/{run_id}/token")

    def create_user(self, username: str, password: str, *, email: str = "", is_admin: bool = False) -> dict[str, Any]:
        return self._json("POST", "/users",
                          json={"username": username, "password": password, "email": email, "is_admin": is_admin})

    def list_users(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", "/users")["items"]
        return items

    def update_user(self, username: str, **fields: Any) -> dict[str, Any]:
        """Change ``email``, ``is_admin`` or ``disabled`` (admins)."""
        return self._json("PATCH", f"/users/{_q(username)}", json=fields)

    def set_password(self, username: str, password: str, old_password: str | None = None) -> None:
        self._send("PUT", f"/users/{_q(username)}/password", json={"password": password, "old_password": old_password})

    def list_members(self, project: str) -> dict[str, Any]:
        return self._json("GET", f"/projects/{_q(project)}/members")

    def share_project(self, project: str, username: str, role: str) -> dict[str, Any]:
        return self._json("PUT", f"/projects/{_q(project)}/members/{_q(username)}", json={"role": role})

    def unshare_project(self, project: str, username: str) -> None:
        self._send("DELETE", f"/projects/{_q(project)}/members/{_q(username)}")

    def update_project(self, name: str, *, description: str | None = None, visibility: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in (("description", description), ("visibility", visibility)) if v is not None}
        return self._json("PATCH", f"/projects/{_q(name)}", json=body)

    def audit(self, *, limit: int = 100, action: str | None = None, actor: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("limit", limit), ("action", action), ("actor", actor)) if v is not None}
        items: list[dict[str, Any]] = self._json("GET", "/audit", params=params)["items"]
        return items

    # ---------------------------------------------------------------- projects
    def create_project(self, name: str, description: str = "", visibility: str = "private",
                       tags: dict[str, str] | None = None) -> dict[str, Any]:
        return self._json("POST", "/projects", json={"name": name, "description": description, "visibility": visibility,
                                                     "tags": tags or {}})

    def list_projects(self, q: str | None = None, *, tags: Sequence[str] = ()) -> list[dict[str, Any]]:
        """``tags``: filters ``KEY`` (has the tag) or ``KEY:VALUE``; a project must match every one."""
        params: list[tuple[str, str]] = [("q", q)] if q else []
        params += [("tag", t) for t in tags]
        items: list[dict[str, Any]] = self._json("GET", "/projects", params=params or None)["items"]
        return items

    def set_project_tags(self, name: str, tags: dict[str, str] | None = None, *, remove: Sequence[str] = ()) -> dict[str, Any]:
        """Add or overwrite ``tags`` and delete the ``remove`` keys, all or nothing; returns the project."""
        return self._json("POST", f"/projects/{_q(name)}/tags", json={"tags": tags or {}, "remove": list(remove)})

    def get_project(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/projects/{name}")

    # ---------------------------------------------------------------- datasets
    def list_datasets(self, project: str, q: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The project's datasets (``q``: names containing it), each with its latest version's files and size."""
        params = {k: v for k, v in (("q", q), ("limit", limit)) if v is not None}
        items: list[dict[str, Any]] = self._json("GET", f"/projects/{_q(project)}/datasets", params=params or None)["items"]
        return items

    def get_dataset(self, project: str, name: str) -> dict[str, Any]:
        """A dataset with its versions, newest first (without their files)."""
        return self._json("GET", f"/projects/{_q(project)}/datasets/{_q(name)}")

    def create_dataset_version(self, project: str, name: str, *, snapshot_id: str | None = None,
                               refs: Sequence[Sequence[Any]] = (), message: str = "", tags: dict[str, str] | None = None,
                               description: str | None = None) -> dict[str, Any]:
        """Push a version: ``{"created": bool, "version": {...}}``; created false when the content equals the latest's."""
        body: dict[str, Any] = {"snapshot_id": snapshot_id, "refs": [list(r) for r in refs], "message": message,
                                "tags": tags or {}}
        if description is not None:
            body["description"] = description
        return self._json("POST", f"/projects/{_q(project)}/datasets/{_q(name)}/versions", json=body)

    def get_dataset_version(self, project: str, name: str, version: int | str | None = None) -> dict[str, Any]:
        """One version (None or "latest": the newest) with its files, refs and the models trained on it."""
        v = "latest" if version is None else str(version)
        return self._json("GET", f"/projects/{_q(project)}/datasets/{_q(name)}/versions/{_q(v)}")

    def diff_datasets(self, project: str, name: str, a: int | str, b: int | str = "latest") -> dict[str, Any]:
        """``{added, removed, changed, unchanged}`` from version ``a`` to ``b``."""
        return self._json("GET", f"/projects/{_q(project)}/datasets/{_q(name)}/diff", params={"a": str(a), "b": str(b)})

    def delete_dataset_version(self, project: str, name: str, version: int, *, force: bool = False) -> None:
        """Delete a version (owners); refused while a registered model depends on it, or runs read it and not force."""
        self._send("DELETE", f"/projects/{_q(project)}/datasets/{_q(name)}/versions/{int(version)}",
                   params={"force": "true"} if force else None)

    # ------------------------------------------------------------- experiments
    def create_experiment(self, project: str, name: str, config: dict[str, Any], snapshot_id: str | None = None,
                          backend: str | None = None) -> dict[str, Any]:
        """``backend`` overrides the config's ``backend:`` (None: the config's, else local)."""
        return self._json("POST", "/experiments", json={"project": project, "name": name, "config": config,
                                                        "snapshot_id": snapshot_id, "backend": backend})

    def list_experiments(self, project: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", "/experiments", params={"project": project} if project else None)["items"]
        return items

    def get_experiment(self, experiment_id: int) -> dict[str, Any]:
        return self._json("GET", f"/experiments/{experiment_id}")

    def cancel_experiment(self, experiment_id: int) -> dict[str, Any]:
        return self._json("POST", f"/experiments/{experiment_id}/cancel")

    def experiment_keys(self, experiment_id: int) -> dict[str, list[str]]:
        """``{"params": [...], "metrics": [...]}``: the names the experiment's runs have."""
        return self._json("GET", f"/experiments/{experiment_id}/keys")

    def experiment_columns(self, experiment_id: int, fields: Sequence[str]) -> dict[str, Any]:
        """``{"ids": [...], "columns": {field: [...]}}``: values of params and metrics for every run."""
        return self._json("GET", f"/experiments/{experiment_id}/columns", params=[("fields", f) for f in fields])

    # -------------------------------------------------------------------- runs
    def create_run(self, project: str, *, name: str = "", params: dict[str, Any] | None = None,
                   tags: dict[str, str] | None = None, experiment_id: int | None = None, status: str = "running") -> dict[str, Any]:
        return self._json("POST", "/runs", json={"project": project, "name": name, "params": params or {}, "tags": tags or {},
                                                 "experiment_id": experiment_id, "status": status})

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self._json("GET", f"/runs/{run_id}")

    def list_runs(self, *, project: str | None = None, experiment_id: int | None = None, status: Sequence[str] = (),
                  filters: Sequence[str] = (), order_by: str | None = None, limit: int = 100, offset: int = 0,
                  fields: Sequence[str] | None = None) -> dict[str, Any]:
        params: list[tuple[str, Any]] = [("limit", limit), ("offset", offset)]
        params += [("fields", f) for f in fields or ()]
        if project:
            params.append(("project", project))
        if experiment_id is not None:
            params.append(("experiment_id", experiment_id))
        params += [("status", s) for s in status]
        params += [("filter", f) for f in filters]
        if order_by:
            params.append(("order_by", order_by))
        return self._json("GET", "/runs", params=params)

    def iter_runs(self, *, project: str | None = None, experiment_id: int | None = None, status: Sequence[str] = (),
                  filters: Sequence[str] = (), order_by: str | None = None, page_size: int = 1000,
                  limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every run that matches (``limit`` at most), page after page of ``GET /runs``.

        Runs created while it pages may shift a run from one page to the next (the list is newest first):
        pass ``order_by="id asc"`` for an export that sees each run once whatever is added meanwhile.
        """
        offset = 0
        while limit is None or offset < limit:
            size = page_size if limit is None else min(page_size, limit - offset)
            page = self.list_runs(project=project, experiment_id=experiment_id, status=status, filters=filters,
                                  order_by=order_by, limit=size, offset=offset)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def runs_df(self, *, project: str | None = None, filter: str | Sequence[str] = (),  # noqa: A002
                experiment_id: int | None = None, status: Sequence[str] = (), order_by: str | None = "id asc",
                summaries: Sequence[str] = ("last", "min", "max"), limit: int | None = None) -> Any:
        """The matching runs as a pandas DataFrame: one row per run, its fields, ``params.<name>`` and
        ``metrics.<key>.<summary>`` columns (``last``, ``min``, ``max``, ``step``, ``count``), indexed by run id.

        ``filter`` takes the expressions of ``runyard ls --filter`` (one, or a list that is ANDed). pandas is
        optional for Runyard: without it this raises an error that says to install it.
        """
        try:
            import pandas as pd
        except ImportError as e:
            raise InvalidInput("runs_df needs pandas, which is not installed.",
                               "Install it with `pip install pandas` (or use `runyard ls --csv`).") from e
        filters = [filter] if isinstance(filter, str) else list(filter)
        runs = list(self.iter_runs(project=project, experiment_id=experiment_id, status=status, filters=filters,
                                   order_by=order_by, limit=limit))
        columns, rows = run_rows(runs, summaries=summaries)
        frame = pd.DataFrame(rows, columns=columns)
        return frame.set_index("id", drop=True) if len(frame.columns) else frame

    def list_images(self, *, project: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """The container images runs ran in (``GET /images``), most recently used first."""
        params: list[tuple[str, Any]] = [("limit", limit)]
        if project:
            params.append(("project", project))
        items: list[dict[str, Any]] = self._json("GET", "/images", params=params)["items"]
        return items

    def update_run(self, run_id: int, status: str, message: str | None = None, exit_code: int | None = None) -> dict[str, Any]:
        return self._json("PATCH", f"/runs/{run_id}", json={"status": status, "message": message, "exit_code": exit_code})

    def cancel_run(self, run_id: int) -> dict[str, Any]:
        return self._json("POST", f"/runs/{run_id}/cancel")

    def restart_run(self, run_id: int) -> dict[str, Any]:
        """Queue a failed run again as its next attempt (``attempt`` + 1, same id)."""
        return self._json("POST", f"/runs/{run_id}/restart")

    def heartbeat(self, run_id: int) -> str:
        """Mark the run alive; returns its status (canceled/pruned means: stop the task)."""
        status: str = self._json("POST", f"/runs/{run_id}/heartbeat")["status"]
        return status

    def update_task(self, run_id: int, role: str, rank: int, **fields: Any) -> dict[str, Any]:
        """Record a task's status/host/pid/exit_code/attempt/address."""
        return self._json("PUT", f"/runs/{run_id}/tasks/{role}/{rank}", json={k: v for k, v in fields.items() if v is not None})

    def report(self, run_id: int, *, task: dict[str, Any] | None = None, run: dict[str, Any] | None = None,
               then: dict[str, Any] | None = None) -> dict[str, Any]:
        """A task runner's report (its task's fields and/or the run's status) in one request;
        ``then`` (``{"task", "run"}``) is a second report applied after it in the same transaction."""
        body: dict[str, Any] = {"task": task, "run": run}
        if then is not None:
            body["then"] = then
        return self._json("POST", f"/runs/{run_id}/report", json=body)

    def rendezvous(self, run_id: int, attempt: int, tasks: list[str], wait_s: float = 0) -> dict[str, Any]:
        """The rendezvous addresses of the attempt's tasks; waits up to ``wait_s`` until ``tasks`` all published one."""
        return self._json("GET", f"/runs/{run_id}/rendezvous",
                          params={"attempt": attempt, "task": tasks, "wait": wait_s}, timeout_s=wait_s + 30)

    def log_params(self, run_id: int, params: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/runs/{run_id}/params", json={"params": params})

    def set_tags(self, run_id: int, tags: dict[str, str]) -> dict[str, Any]:
        return self._json("POST", f"/runs/{run_id}/tags", json={"tags": {k: str(v) for k, v in tags.items()}})

    # ----------------------------------------------------------------- metrics
    def log_metrics(self, run_id: int, keys: list[str], steps: list[int], values: list[float | None], timestamps: list[float],
                    batch_id: str | None = None) -> dict[str, Any]:
        return self._json("POST", f"/runs/{run_id}/metrics",
                          json={"batch_id": batch_id, "keys": keys, "steps": steps, "values": values, "timestamps": timestamps})

    def metric_summaries(self, run_id: int) -> dict[str, Any]:
        return self._json("GET", f"/runs/{run_id}/metrics")

    def metric_history(self, run_id: int, key: str, max_points: int | None = None,
                       attempt: int | str | None = None) -> dict[str, Any]:
        """A metric's points: the latest attempt's, or ``attempt="all"`` (each point's attempt in ``attempts``) or one attempt's."""
        params: dict[str, Any] = {}
        if max_points:
            params["max_points"] = max_points
        if attempt is not None:
            params["attempt"] = attempt
        return self._json("GET", f"/runs/{run_id}/metrics/{_q(key)}", params=params or None)

    # -------------------------------------------------------------------- logs
    def append_logs(self, run_id: int, task: str, lines: list[dict[str, Any]], *, batch_id: str | None = None) -> int:
        """Append lines of a task; with ``batch_id``, a batch sent again is stored once."""
        body: dict[str, Any] = {"task": task, "lines": lines}
        if batch_id is not None:
            body["batch_id"] = batch_id
        offset: int = self._json("POST", f"/runs/{run_id}/logs", json=body)["offset"]
        return offset

    def read_logs(self, run_id: int, offset: int = 0, *, task: str | None = None, limit: int = 1000, wait_s: float = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"offset": offset, "limit": limit, "wait": wait_s}
        if task:
            params["task"] = task
        return self._json("GET", f"/runs/{run_id}/logs", params=params, timeout_s=wait_s + 30)

    def tail_logs(self, run_id: int, n: int = 20, *, stream: str | None = None, task: str | None = None) -> list[dict[str, Any]]:
        """The last ``n`` log lines of a run (of one stream: stdout, stderr or system), oldest first."""
        params: dict[str, Any] = {"tail": n}
        if stream:
            params["stream"] = stream
        if task:
            params["task"] = task
        lines: list[dict[str, Any]] = self._json("GET", f"/runs/{run_id}/logs", params=params)["lines"]
        return lines

    # --------------------------------------------------------------- artifacts
    def upload_artifact(self, run_id: int, path: str, data: bytes | BinaryIO | Iterator[bytes]) -> dict[str, Any]:
        return self._json("PUT", f"/runs/{run_id}/artifacts/{_q(path)}", content=data,
                          headers={"Content-Type": "application/octet-stream"}, timeout_s=3600)

    def list_artifacts(self, run_id: int, prefix: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", f"/runs/{run_id}/artifacts",
                                                 params={"prefix": prefix} if prefix else None)["items"]
        return items

    def download_artifact(self, run_id: int, path: str, dest: Path, *, progress: Callable[[int], object] | None = None) -> int:
        """Stream one artifact to ``dest``; ``progress(n_bytes)`` is called per chunk. Returns its size."""
        return self._download(f"/runs/{run_id}/artifacts/{_q(path)}", dest, progress)

    # ----------------------------------------------------------- blobs/snapshots
    # --------------------------------------------------------------- media, note
    def list_run_images(self, run_id: int, key: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", f"/runs/{run_id}/images",
                                                 params={"key": key} if key is not None else None)["items"]
        return items

    def list_tables(self, run_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", f"/runs/{run_id}/tables")["items"]
        return items

    def table_content(self, run_id: int, path: str, limit: int = 1000) -> dict[str, Any]:
        return self._json("GET", f"/runs/{run_id}/tables/content", params={"path": path, "limit": limit})

    def get_note(self, run_id: int) -> dict[str, Any]:
        return self._json("GET", f"/runs/{run_id}/note")

    def set_note(self, run_id: int, text: str) -> dict[str, Any]:
        return self._json("PUT", f"/runs/{run_id}/note", json={"text": text})

    def missing_blobs(self, digests: list[str]) -> list[str]:
        missing: list[str] = self._json("POST", "/blobs/missing", json={"digests": digests})["missing"]
        return missing

    def upload_blob(self, digest: str, data: bytes | BinaryIO) -> None:
        self._send("PUT", f"/blobs/{digest}", content=data, headers={"Content-Type": "application/octet-stream"}, timeout_s=3600)

    # --- batched blob uploads (POST /blobs/batch)
    def upload_blobs(self, items: Iterable[tuple[str, int, BinaryIO | str | os.PathLike[str]]]) -> dict[str, Any]:
        """Upload many blobs in one streamed request: ``(sha256, size, file object or path)`` each, read as sent.

        The body frames each blob as its sha256 (64 hex characters), its size (20 decimal digits) and its bytes;
        the server checks each, stores them and records them together. Keep a batch under the server's limits
        (10,000 blobs, 256 MiB); files of several MiB go faster with :meth:`upload_blob`.

        Returns:
            ``{"n_blobs": stored, "size": their bytes}``.

        Raises:
            InvalidInput: a file is shorter than its size, or the server refused a blob (it names the digest).
            NotFound, RunyardError: a server without the route answers 404 or 405 (code ``method_not_allowed``).
        """
        return self._json("POST", "/blobs/batch", content=_blob_frames(items),
                          headers={"Content-Type": "application/octet-stream"}, timeout_s=3600)

    def download_blob(self, digest: str, dest: Path) -> int:
        return self._download(f"/blobs/{digest}", dest, None)

    def create_snapshot(self, files: list[list[Any]], *, git_commit: str | None = None, git_branch: str | None = None,
                        git_dirty: bool = False, git_diff: str = "") -> dict[str, Any]:
        return self._json("POST", "/snapshots", json={"files": files, "git_commit": git_commit, "git_branch": git_branch,
                                                      "git_dirty": git_dirty, "git_diff": git_diff})

    def get_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        return self._json("GET", f"/snapshots/{snapshot_id}")

    # ---------------------------------------------------------- model registry
    # Models live in a project; every answer is the REST API's JSON (docs/models.md): Model, ModelVersion.
    def list_models(self, project: str, q: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The project's models by name (``q``: names containing it)."""
        params = {k: v for k, v in (("q", q), ("limit", limit)) if v is not None}
        items: list[dict[str, Any]] = self._json("GET", f"/projects/{_seg(project)}/models", params=params or None)["items"]
        return items

    def create_model(self, project: str, name: str, *, description: str = "", tags: dict[str, str] | None = None
                     ) -> dict[str, Any]:
        """An empty model (registering a version creates one too); Conflict when it exists."""
        return self._json("POST", f"/projects/{_seg(project)}/models",
                          json={"name": name, "description": description, "tags": tags or {}})

    def get_model(self, project: str, name: str) -> dict[str, Any]:
        """The model with its ``versions`` and ``alias_history``."""
        return self._json("GET", _model_path(project, name))

    def update_model(self, project: str, name: str, *, description: str | None = None,
                     tags: dict[str, str] | None = None) -> dict[str, Any]:
        """Change the description and/or replace the tags (None: unchanged)."""
        body = {k: v for k, v in (("description", description), ("tags", tags)) if v is not None}
        return self._json("PATCH", _model_path(project, name), json=body)

    def create_model_version(self, project: str, name: str, *, run_id: int | None = None, paths: Sequence[str] | None = None,
                             snapshot_id: str | None = None, flavor: str = "files", signature: dict[str, Any] | None = None,
                             requirements: Sequence[str] | None = None, description: str = "",
                             tags: dict[str, str] | None = None) -> dict[str, Any]:
        """Register a new version (creating the model if missing): from ``run_id``'s artifacts under ``paths``
        (files or directories; the version's paths are relative to their common directory), or from an
        uploaded ``snapshot_id`` (with the ``run_id`` that made it, if any). Returns the ModelVersion."""
        body: dict[str, Any] = {"flavor": flavor, "requirements": list(requirements or ()), "description": description,
                                "tags": tags or {}}
        for key, value in (("run_id", run_id), ("snapshot_id", snapshot_id), ("signature", signature)):
            if value is not None:
                body[key] = value
        if paths is not None:
            body["paths"] = list(paths)
        return self._json("POST", f"{_model_path(project, name)}/versions", json=body, timeout_s=3600)

    def get_model_version(self, project: str, name: str, version: int) -> dict[str, Any]:
        return self._json("GET", f"{_model_path(project, name)}/versions/{int(version)}")

    def update_model_version(self, project: str, name: str, version: int, *, description: str | None = None,
                             tags: dict[str, str] | None = None) -> dict[str, Any]:
        body = {k: v for k, v in (("description", description), ("tags", tags)) if v is not None}
        return self._json("PATCH", f"{_model_path(project, name)}/versions/{int(version)}", json=body)

    def archive_model_version(self, project: str, name: str, version: int, unarchive: bool = False) -> dict[str, Any]:
        """Archive a version (or bring it back with ``unarchive=True``); returns it."""
        action = "unarchive" if unarchive else "archive"
        return self._json("POST", f"{_model_path(project, name)}/versions/{int(version)}/{action}")

    def set_model_alias(self, project: str, name: str, alias: str, version: int) -> dict[str, Any]:
        """Point ``alias`` at ``version``: ``{alias, version, from_version}``."""
        return self._json("PUT", f"{_model_path(project, name)}/aliases/{_seg(alias)}", json={"version": int(version)})

    def delete_model_alias(self, project: str, name: str, alias: str) -> dict[str, Any]:
        """Remove ``alias``: ``{alias, version: None, from_version}``."""
        return self._json("DELETE", f"{_model_path(project, name)}/aliases/{_seg(alias)}")

    def resolve_model(self, uri: str, project: str | None = None) -> dict[str, Any]:
        """The ModelVersion a ``models:/`` URI names; ``project`` for an unqualified URI.

        Raises:
            InvalidInput: a malformed URI (checked here first, with the same rule as the server).
        """
        from runyard.names import parse_model_uri

        parse_model_uri(uri)
        params = {"uri": uri, **({"project": project} if project else {})}
        return self._json("GET", "/models/resolve", params=params)

    # ------------------------------------------------------------------ lineage
    def run_datasets(self, run_id: int) -> list[dict[str, Any]]:
        """The dataset versions a run read: ``[{name, project, dataset, version, content_id, snapshot_id, n_files,
        size, refs}]``."""
        items: list[dict[str, Any]] = self._json("GET", f"/runs/{run_id}/datasets")["items"]
        return items

    def record_run_dataset(self, run_id: int, name: str, ref: str) -> dict[str, Any]:
        """Record that a run reads the dataset version ``ref`` names (``digits:latest`` resolves to a number) as ``name``."""
        return self._json("POST", f"/runs/{run_id}/datasets", json={"name": name, "ref": ref})

    # --- run models: the registered model versions a run used ---
    def run_models(self, run_id: int) -> list[dict[str, Any]]:
        """The model versions a run used: ``[{name, project, model, version, uri, snapshot_id, flavor, status, n_files,
        size, recorded_at}]``."""
        items: list[dict[str, Any]] = self._json("GET", f"/runs/{run_id}/models")["items"]
        return items

    def record_run_model(self, run_id: int, name: str, uri: str) -> dict[str, Any]:
        """Record that a run uses the model version ``uri`` names (an alias or ``latest`` resolves to a number) as
        ``name``."""
        from runyard.names import parse_model_uri

        parse_model_uri(uri)
        return self._json("POST", f"/runs/{run_id}/models", json={"name": name, "uri": uri})

    def lineage(self, uri: str, *, project: str | None = None) -> dict[str, Any]:
        """The lineage graph of ``models:/…``, ``runs:/ID`` or ``datasets:/…``: ``{root, nodes, edges, truncated}``."""
        params = {"uri": uri} if project is None else {"uri": uri, "project": project}
        return self._json("GET", "/lineage", params=params)

    def _download(self, path: str, dest: Path, progress: Callable[[int], object] | None) -> int:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        size = 0
        try:
            with self._http.stream("GET", path, timeout_s=3600, headers=self._auth or None) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error(resp)
                with open(tmp, "wb") as f:
                    for chunk in resp.iter_bytes(1024 * 1024):
                        f.write(chunk)
                        size += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
        except TransportError as e:
            tmp.unlink(missing_ok=True)
            raise ServerUnreachable(f"Download from {self.base_url} failed: {e}.", "Check the server and retry.") from e
        tmp.replace(dest)
        return size


_FRAME_BLOCK = 1024 * 1024


def _blob_frames(items: Iterable[tuple[str, int, BinaryIO | str | os.PathLike[str]]]) -> Iterator[bytes]:
    """The body of POST /blobs/batch: per blob its sha256, its size in 20 digits, then ``size`` bytes of its file,
    in pieces of about 1 MiB (small blobs share a piece)."""
    pending = bytearray()
    for digest, size, source in items:
        if len(digest) != 64 or not 0 <= size < 10**20:
            raise InvalidInput(f"Cannot frame blob {digest!r} of {size} bytes.", "Pass a sha256 hex digest and the file's size.")
        pending += digest.encode("ascii") + b"%020d" % size
        f = open(source, "rb") if isinstance(source, (str, os.PathLike)) else source  # noqa: SIM115
        try:
            left = size
            while left:
                block = f.read(min(left, _FRAME_BLOCK))
                if not block:
                    raise InvalidInput(f"The file of blob {digest} ended after {size - left:,} of its {size:,} bytes: "
                                       "it shrank while it was sent.", "Upload it again once nothing writes to the file.")
                pending += block
                left -= len(block)
                if len(pending) >= _FRAME_BLOCK:
                    yield bytes(pending)
                    pending.clear()
        finally:
            if f is not source:
                f.close()
    if pending:
        yield bytes(pending)


def _q(path: str) -> str:
    """Percent-encode a metric key or artifact path for a URL, keeping its slashes."""
    from urllib.parse import quote

    return quote(path, safe="/")


def _seg(text: str) -> str:
    """Percent-encode one path segment (a name: slashes too)."""
    from urllib.parse import quote

    return quote(str(text), safe="")


def _model_path(project: str, name: str) -> str:
    return f"/projects/{_seg(project)}/models/{_seg(name)}"


def _error(resp: Response) -> RunyardError:
    try:
        payload = _loads(resp.content)
        if isinstance(payload, dict) and "message" in payload:
            return from_payload(payload)
    except ValueError:
        pass
    return RunyardError(f"The server answered {resp.status_code}: {resp.text[:200]}", None)
