"""Run tokens end with their run: refused after the grace, revocable, renewed by a restart;
a disabled user's tokens all end and their queued runs are canceled. On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest
from sec_helpers import GRACE_S, SecServer
from typer.testing import CliRunner

from runyard.cli import app
from runyard.client import Client

V1 = "/api/v1"
_n = itertools.count()


def _send(url: str, token: str, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(method, url + V1 + path, headers={"Authorization": f"Bearer {token}", **kw.pop("headers", {})},  # type: ignore[arg-type]
                         timeout=30, **kw)  # type: ignore[arg-type]


def _writes(run_id: int) -> dict[str, tuple[str, str, dict[str, object]]]:
    """One write of each kind a run's token makes: params, metrics, logs, tags, artifacts."""
    return {
        "params": ("POST", f"/runs/{run_id}/params", {"json": {"params": {"lr": 0.1}}}),
        "metrics": ("POST", f"/runs/{run_id}/metrics",
                    {"json": {"keys": ["loss"], "steps": [1], "values": [0.5], "timestamps": [time.time()]}}),
        "logs": ("POST", f"/runs/{run_id}/logs", {"json": {"lines": [{"text": "late line"}]}}),
        "tags": ("POST", f"/runs/{run_id}/tags", {"json": {"tags": {"late": "1"}}}),
        "artifacts": ("PUT", f"/runs/{run_id}/artifacts/model.pt",
                      {"content": b"replaced", "headers": {"Content-Type": "application/octet-stream"}}),
    }


def _statuses(sec: SecServer, token: str, run_id: int) -> dict[str, int]:
    return {kind: _send(sec.url, token, method, path, **kw).status_code  # type: ignore[arg-type]
            for kind, (method, path, kw) in _writes(run_id).items()}


def _dispatched_run(sec: SecServer, admin: Client) -> tuple[int, str]:
    project = f"tok{next(_n)}"
    run_id = admin.create_run(project, status="queued")["id"]
    return run_id, sec.claim(run_id)


def test_an_ended_runs_token_works_through_the_grace_then_is_refused_for_every_write(sec_server: SecServer) -> None:
    with sec_server.admin() as admin:
        run_id, token = _dispatched_run(sec_server, admin)
        assert set(_statuses(sec_server, token, run_id).values()) == {200, 201}, "a running run's token writes"
        admin.update_run(run_id, "succeeded", exit_code=0)
        ended_at = admin.get_run(run_id)["ended_at"]

        # The final flush right after the end is accepted.
        within = _statuses(sec_server, token, run_id)
        assert time.time() < ended_at + GRACE_S, "the grace passed before the check: the machine is too slow for this test"
        assert set(within.values()) <= {200, 201}, within

        time.sleep(max(0.0, ended_at + GRACE_S - time.time()) + 0.3)
        after = _statuses(sec_server, token, run_id)
        assert set(after.values()) == {401}, after
        body = _send(sec_server.url, token, "POST", f"/runs/{run_id}/params", json={"params": {"x": 1}}).json()
        assert f"Run {run_id} ended at " in body["message"] and "token expired at" in body["message"], body
        # Nothing the refused writes carried was stored; model.pt is the one written while the run was live.
        run = admin.get_run(run_id)
        assert "x" not in run["params"]
        data = httpx.get(f"{sec_server.url}{V1}/runs/{run_id}/artifacts/model.pt",
                         headers={"Authorization": f"Bearer {sec_server.admin_token}"}, timeout=30).content
        assert data == b"replaced"


def test_a_revoked_run_token_is_refused_at_once_and_only_owners_and_admins_revoke(sec_server: SecServer) -> None:
    with sec_server.admin() as admin:
        admin.create_user(f"own{next(_n)}", "owner-pw-1234")
        owner_name = admin.list_users()[-1]["username"]
    owner = sec_server.user_token(owner_name, "owner-pw-1234")
    project = f"rev{next(_n)}"
    with Client(sec_server.url, owner) as c:
        c.create_project(project)
        run_id = c.create_run(project, status="queued")["id"]
    token = sec_server.claim(run_id)
    assert _send(sec_server.url, token, "POST", f"/runs/{run_id}/params", json={"params": {"a": 1}}).status_code == 200

    # The run's own token cannot revoke; another user does not even see the run.
    assert _send(sec_server.url, token, "DELETE", f"/runs/{run_id}/token").status_code == 403
    with sec_server.admin() as admin:
        admin.create_user(f"str{next(_n)}", "stranger-pw-12")
        stranger_name = admin.list_users()[-1]["username"]
    stranger = sec_server.user_token(stranger_name, "stranger-pw-12")
    assert _send(sec_server.url, stranger, "DELETE", f"/runs/{run_id}/token").status_code == 404

    with Client(sec_server.url, owner) as c:
        assert c.revoke_run_token(run_id) == {"run_id": run_id, "revoked": 1}
    refused = _send(sec_server.url, token, "POST", f"/runs/{run_id}/params", json={"params": {"b": 1}})
    assert refused.status_code == 401 and f"The token of run {run_id} was revoked at " in refused.json()["message"]
    assert set(_statuses(sec_server, token, run_id).values()) == {401}
    with sec_server.admin() as admin:
        assert admin.revoke_run_token(run_id)["revoked"] == 0  # nothing left to end
        assert admin.audit(action="token.revoke_run")[0]["target"] == f"run:{run_id}"
        with pytest.raises(Exception, match="No run with id"):
            admin.revoke_run_token(10**9)


def test_a_restarted_run_gets_a_working_token_and_the_old_attempts_stays_refused(sec_server: SecServer) -> None:
    with sec_server.admin() as admin:
        run_id, first = _dispatched_run(sec_server, admin)
        admin.update_run(run_id, "failed", exit_code=1)
        time.sleep(GRACE_S + 0.3)
        assert _statuses(sec_server, first, run_id)["params"] == 401
        assert admin.restart_run(run_id)["attempt"] == 2
        second = sec_server.claim(run_id, attempt=2)
        admin.update_run(run_id, "running")
    assert set(_statuses(sec_server, second, run_id).values()) <= {200, 201}
    assert set(_statuses(sec_server, first, run_id).values()) == {401}


def test_disabling_a_user_ends_all_their_tokens_and_cancels_their_queued_runs(sec_server: SecServer) -> None:
    name = f"dis{next(_n)}"
    project = f"dp{next(_n)}"
    with sec_server.admin() as admin:
        admin.create_user(name, "disabled-pw-12")
    personal = sec_server.user_token(name, "disabled-pw-12")
    session = httpx.Client(base_url=sec_server.url, timeout=30)
    session.post(V1 + "/auth/login", json={"username": name, "password": "disabled-pw-12"}).raise_for_status()
    assert session.get(V1 + "/me").json()["user"]["username"] == name
    with Client(sec_server.url, personal) as c:
        exp = c.create_experiment(project, "exp", {"project": project, "command": "python train.py"})
        queued = [c.create_run(project, experiment_id=exp["id"], status="queued")["id"] for _ in range(3)]
        live = c.create_run(project, experiment_id=exp["id"], status="queued")["id"]
    live_token = sec_server.claim(live)
    assert _send(sec_server.url, live_token, "POST", f"/runs/{live}/params", json={"params": {"a": 1}}).status_code == 200

    with sec_server.admin() as admin:
        admin.update_user(name, disabled=True)
        for run_id in queued:
            run = admin.get_run(run_id)
            assert (run["status"], run["status_message"]) == ("canceled", "owner disabled"), run
            assert run["ended_at"] is not None
        assert admin.get_run(live)["status"] == "starting"  # not queued: only its token ends
    assert _send(sec_server.url, personal, "GET", "/me").status_code == 401
    assert session.get(V1 + "/me").status_code == 401
    session.close()
    assert set(_statuses(sec_server, live_token, live).values()) == {401}
    with sec_server.admin() as admin:
        admin.update_user(name, disabled=False)
    assert _send(sec_server.url, personal, "GET", "/me").status_code == 401  # ended for good, not paused


def test_the_cli_revokes_a_runs_token(sec_server: SecServer) -> None:
    with sec_server.admin() as admin:
        run_id, token = _dispatched_run(sec_server, admin)
    env = {"RUNYARD_SERVER": sec_server.url, "RUNYARD_TOKEN": sec_server.admin_token}
    res = CliRunner().invoke(app, ["tokens", "revoke-run", str(run_id)], env=env)
    assert res.exit_code == 0 and res.stdout == f"Run {run_id}'s token revoked.\n", res.output
    assert _statuses(sec_server, token, run_id)["metrics"] == 401
    res = CliRunner().invoke(app, ["tokens", "revoke-run", str(run_id)], env=env)
    assert res.exit_code == 0 and "had no valid token" in res.stdout, res.output
