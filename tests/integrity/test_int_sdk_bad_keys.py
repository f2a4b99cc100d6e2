"""The SDK at the edge: one bad metric name loses only its own points; bad text in init() fails at the call.

A batch the server refuses is dropped whole, so a name it would refuse (NUL, an unpaired surrogate,
a bidi override) is dropped by the SDK, alone, at log() time with one warning: the good points
logged with it reach the server and the run still succeeds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import runyard
from runyard.client import Client
from runyard.errors import InvalidInput
from runyard.testing import LiveServer


@pytest.fixture
def sdk_server(shared_live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("RUNYARD_SERVER", shared_live_server.url)
    for var in ("RUNYARD_PROJECT", "RUNYARD_SDK_BUFFER_POINTS", "RUNYARD_SDK_FLUSH_TIMEOUT_S"):
        monkeypatch.delenv(var, raising=False)
    yield shared_live_server
    if runyard.active_run() is not None:
        runyard.finish("failed")


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["loss\x00", "loss\ud800", "loss\u202e"], ids=["nul", "surrogate", "bidi"])
def test_fifteen_good_points_and_one_bad_name_store_fifteen(sdk_server: LiveServer, bad: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    project = f"sdk-{uuid.uuid4().hex[:8]}"
    run = runyard.init(project=project)
    for step in range(15):
        points = {"loss": 1.0 / (step + 1)}
        if step == 7:
            points[bad] = 0.5  # in the same call, hence the same batch, as good points
        runyard.log(points, step=step)
    runyard.finish()

    err = capsys.readouterr().err
    assert err.count("a metric name must be a string of") == 1, err
    assert "Its points are dropped" in err
    with Client(sdk_server.url) as client:
        assert client.metric_history(run.id, "loss")["total"] == 15
        assert sorted(client.metric_summaries(run.id)) == ["loss"]
        assert client.get_run(run.id)["status"] == "succeeded"


@pytest.mark.slow
@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"params": {"lr": "a\ud800"}}, "params.lr holds an unpaired surrogate"),
    ({"params": {"opt": {"name": "a\x00"}}}, "params.opt.name holds a NUL character"),
    ({"tags": {"stage": "a\x00"}}, "tags.stage holds a NUL character"),
    ({"name": "x\u202ey"}, "A run name must be"),
    ({"name": "x" * 300}, "300 characters"),
], ids=["param-surrogate", "nested-param-nul", "tag-nul", "name-bidi", "name-long"])
def test_init_refuses_text_the_server_would_refuse_before_connecting(sdk_server: LiveServer, kwargs: dict,
                                                                      needle: str) -> None:
    project = f"sdk-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidInput, match=needle.replace(".", r"\.")):
        runyard.init(project=project, **kwargs)
    assert runyard.active_run() is None
    with Client(sdk_server.url) as client:
        assert project not in [p["name"] for p in client.list_projects()]  # refused before any request
