"""The SDK's public surface: exact exports, a light import, and the docstring examples run for real."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import pytest

import runyard
import runyard.sdk
from runyard.sdk import _api, _run
from runyard.testing import LiveServer

EXPECTED = ["Run", "active_run", "finish", "init", "load_model", "log", "log_artifact", "log_image", "log_model", "log_params",
            "log_table", "note", "params", "register_model", "set_tags", "should_stop", "use_dataset"]


def test_exports_are_exactly_the_sdk_names() -> None:
    assert sorted(runyard.sdk.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(runyard, name) is getattr(runyard.sdk, name)


def test_import_loads_no_http_client_and_no_numpy() -> None:
    code = ("import sys, json, runyard; runyard.log; runyard.init; "
            "print(json.dumps(sorted(m for m in ('httpx', 'http.client', 'numpy', 'pandas', 'orjson') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    tests = finder.find(_api) + finder.find(_run.Run, "Run", module=_run)
    return sorted((t for t in tests if t.examples), key=lambda t: t.name)


@pytest.mark.parametrize("example", _examples(), ids=lambda t: t.name.rsplit(".", 1)[-1] if "Run." not in t.name else t.name)
def test_docstring_example_runs(example: doctest.DocTest, server: LiveServer, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    example.globs = {"runyard": runyard, "Path": Path}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    result = runner.run(example, out=report.append)
    assert result.failed == 0, "".join(report)


def test_a_token_view_shares_connections_and_sends_its_own_token() -> None:
    """The local agent reports for many runs through one connection pool, each with its run's token."""
    from http_helpers import TestServer

    from runyard.client import Client

    with TestServer() as srv:
        base = Client(srv.url, "ignored-by-the-view")
        view = base.with_token("a-token")
        assert view.health()["status"] == "ok"
        base.with_token(None).health()
        view.close()  # a view leaves the shared pool open
        base.health()
        base.close()
        assert [s.headers.get("authorization") for s in srv.seen] == [
            "Bearer a-token", "Bearer ignored-by-the-view", "Bearer ignored-by-the-view"]
        assert len(srv.connections()) == 1  # one connection: the views share the base's pool
