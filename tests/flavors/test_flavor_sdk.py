"""runyard.log_model / register_model / load_model against a real local server, and in a fresh process."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import runyard
from runyard.client import Client
from runyard.errors import InvalidInput, NotFound
from runyard.sdk import _models
from runyard.testing import LiveServer, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(shared_live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    monkeypatch.setenv("RUNYARD_SERVER", shared_live_server.url)
    monkeypatch.delenv("RUNYARD_PROJECT", raising=False)
    return shared_live_server


@pytest.fixture(autouse=True)
def no_active_run() -> object:
    yield
    run = runyard.active_run()
    if run is not None:
        run.finish("failed")


@pytest.fixture
def client(server: LiveServer) -> Client:
    with Client(server.url) as c:
        yield c


@pytest.fixture
def fitted(xy) -> LogisticRegression:
    x, y = xy
    return LogisticRegression().fit(x, y)


def test_log_model_stores_registers_and_load_model_predicts_the_same(server, client, fitted, xy) -> None:
    x, _ = xy
    run = runyard.init(project="flv-sk")
    version = runyard.log_model(fitted, "clf", input_example=x[:4], description="first")
    assert (version["model"], version["project"], version["version"], version["flavor"]) == ("clf", "flv-sk", 1, "sklearn")
    assert version["run_id"] == run.id and version["description"] == "first"
    assert version["signature"]["inputs"] == [{"name": None, "type": "float64", "shape": [-1, 4]}]
    assert any(r.startswith("scikit-learn==") for r in version["requirements"])
    assert sorted(f[0] for f in version["files"]) == ["model.skops", "runyard-model.json"]
    arts = sorted(a["path"] for a in client.list_artifacts(run.id, prefix="models/"))
    assert arts == ["models/clf/model.skops", "models/clf/runyard-model.json"]
    runyard.finish()

    for uri in ("models:/flv-sk/clf/1", "models:/flv-sk/clf/latest", "models:/flv-sk/clf"):
        np.testing.assert_array_equal(runyard.load_model(uri).predict_proba(x), fitted.predict_proba(x))
    cached = _models.model_cache_dir() / version["snapshot_id"]
    assert (cached / "runyard-model.json").is_file()
    client.set_model_alias("flv-sk", "clf", "production", 1)
    os.environ["RUNYARD_PROJECT"] = "flv-sk"  # unqualified URIs resolve in RUNYARD_PROJECT
    try:
        np.testing.assert_array_equal(runyard.load_model("models:/clf@production").predict(x), fitted.predict(x))
    finally:
        del os.environ["RUNYARD_PROJECT"]


def test_load_model_in_a_fresh_process_with_an_empty_cache(server, fitted, xy, tmp_path) -> None:
    x, _ = xy
    with runyard.init(project="flv-fresh"):
        runyard.log_model(fitted, "digits")
    Client(server.url).set_model_alias("flv-fresh", "digits", "production", 1)
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, json, numpy as np, runyard; m = runyard.load_model('models:/flv-fresh/digits@production'); "
            "print(json.dumps(m.predict(np.load(sys.argv[1])).tolist()))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNYARD_HOME": str(tmp_path / "fresh-home"), "RUNYARD_SERVER": server.url}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.npy")], capture_output=True, text=True, env=env,
                         timeout=240)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == fitted.predict(x).tolist()
    assert list((tmp_path / "fresh-home" / "cache" / "models").iterdir())  # its own per-user cache
    assert list((tmp_path / "fresh-home" / "cache" / "blobs").iterdir())


def test_a_damaged_cache_is_repaired_on_the_next_load(server, fitted, xy) -> None:
    x, _ = xy
    with runyard.init(project="flv-cache"):
        version = runyard.log_model(fitted, "clf")
    runyard.load_model("models:/flv-cache/clf/1")
    skops_file = _models.model_cache_dir() / version["snapshot_id"] / "model.skops"
    with open(skops_file, "r+b") as fh:  # rewritten in place: through the hard link, the blob cache's copy too
        fh.write(b"XXXX")
    np.testing.assert_array_equal(runyard.load_model("models:/flv-cache/clf/1").predict(x), fitted.predict(x))
    (_models.model_cache_dir() / version["snapshot_id"] / "runyard-model.json").unlink()  # a load killed half-way
    np.testing.assert_array_equal(runyard.load_model("models:/flv-cache/clf/1").predict(x), fitted.predict(x))


def test_register_false_then_register_model_takes_the_flavor_from_the_files(server, fitted, xy) -> None:
    x, _ = xy
    run = runyard.init(project="flv-reg")
    stored = runyard.log_model(fitted, "clf", register=False, input_example=x[:2])
    assert stored["artifact_path"] == "models/clf" and stored["flavor"] == "sklearn"
    assert sorted(stored["paths"]) == ["models/clf/model.skops", "models/clf/runyard-model.json"]
    version = runyard.register_model(run, ["models/clf"], "later")
    assert (version["model"], version["flavor"]) == ("later", "sklearn")
    assert version["signature"] == stored["signature"]
    runyard.finish()
    np.testing.assert_array_equal(runyard.load_model("models:/flv-reg/later/1").predict(x), fitted.predict(x))
    again = runyard.register_model(run.id, "models/clf", "later")  # by run id, from another process's point of view
    assert again["version"] == 2 and again["snapshot_id"] == version["snapshot_id"]


def test_plain_files_register_as_files_and_load_as_a_directory(server, tmp_path) -> None:
    run = runyard.init(project="flv-files")
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.txt").write_text("a\nb\n")
    run.log_artifact(tmp_path / "tok", "tokenizer")
    version = runyard.register_model(run, ["tokenizer"], "tok")
    assert version["flavor"] == "files"
    runyard.finish()
    directory = runyard.load_model("models:/flv-files/tok/1")
    assert (directory / "vocab.txt").read_text() == "a\nb\n"
    with runyard.init(project="flv-files"):
        logged = runyard.log_model(tmp_path / "tok", "tok2")
    assert logged["flavor"] == "files"
    assert (runyard.load_model("models:/flv-files/tok2/1") / "vocab.txt").read_text() == "a\nb\n"


def test_pytorch_state_dict_loads_into_a_given_module(server) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
    x = torch.randn(4, 3)
    with runyard.init(project="flv-torch"):
        sd = runyard.log_model(net, "sd", format="state_dict")
        ts = runyard.log_model(net, "ts", input_example=x)
    assert (sd["flavor"], ts["flavor"]) == ("pytorch", "pytorch")
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
    loaded = runyard.load_model("models:/flv-torch/sd/1", model=fresh)
    assert loaded is fresh
    torch.testing.assert_close(fresh(x), net(x))
    torch.testing.assert_close(runyard.load_model("models:/flv-torch/ts/1")(x), net(x))


def test_bad_input_is_refused_before_anything_is_stored(server, fitted, client) -> None:
    for name in ("\ud800", "a\x00b", "x" * 129, "../up", ""):
        with pytest.raises(InvalidInput):
            runyard.log_model(fitted, name)
    assert runyard.active_run() is None  # refused before a run was started
    with pytest.raises(InvalidInput, match="Unknown model flavor"):
        runyard.log_model(fitted, "ok", flavor="pickle")
    with pytest.raises(InvalidInput, match="not a relative path"):
        runyard.log_model(fitted, "ok", artifact_path="../x")
    with pytest.raises(InvalidInput, match="takes no format= option"):
        runyard.log_model(fitted, "ok", format="export")
    with pytest.raises(InvalidInput, match="not a pip requirement"):
        runyard.log_model(fitted, "ok", requirements=["numpy\n--index-url http://evil"])
    with pytest.raises(InvalidInput, match="No model flavor knows"):
        runyard.log_model(object(), "ok")
    assert runyard.active_run() is None  # still no run started
    with pytest.raises(InvalidInput):
        runyard.load_model("models:/")
    with pytest.raises(InvalidInput, match="names no project, and none is set") as e:
        runyard.load_model("models:/clf@production")
    assert "RUNYARD_PROJECT" in e.value.hint
    with pytest.raises(InvalidInput, match="models:/ URI or a directory"):
        runyard.load_model("runs:/1/model")
    with pytest.raises(NotFound):
        runyard.load_model("models:/flv-none/nothing/1")
    runyard.finish()


def _examples() -> list[doctest.DocTest]:
    return sorted((t for t in doctest.DocTestFinder().find(_models) if t.examples), key=lambda t: t.name)


@pytest.mark.parametrize("example", _examples(), ids=lambda t: t.name.rsplit(".", 1)[-1])
def test_docstring_example_runs(example: doctest.DocTest, server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    example.globs = {"runyard": runyard, "Path": Path}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    result = runner.run(example, out=report.append)
    assert result.failed == 0, "".join(report)


def test_a_log_model_killed_before_registering_leaves_no_version_and_register_model_finishes_it(server, client, xy,
                                                                                                   tmp_path) -> None:
    x, _ = xy
    np.save(tmp_path / "x.npy", x)
    script = """
import sys, numpy as np, runyard
from sklearn.linear_model import LogisticRegression
x = np.load(sys.argv[1])
run = runyard.init(project="flv-kill")
print(run.id, flush=True)
runyard.log_model(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), "clf")
print("registered", flush=True)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNYARD_SERVER": server.url,
           "RUNYARD_FAILPOINTS": "sdk.log_model.before_register=600"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "x.npy")], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        run_id = int(proc.stdout.readline())
        wait_for(lambda: len(client.list_artifacts(run_id, prefix="models/clf/")) == 2, timeout_s=120,
                 what="log_model's files uploaded")
    finally:
        proc.kill()
        out, _ = proc.communicate()
    assert "registered" not in out
    with pytest.raises(NotFound):
        client.get_model("flv-kill", "clf")  # nothing half-registered
    version = runyard.register_model(run_id, "models/clf", "clf")  # the files in the run are complete: register them
    assert (version["version"], version["flavor"]) == (1, "sklearn")
    assert runyard.load_model("models:/flv-kill/clf/1").predict(x).shape == (60,)


def test_a_registered_version_holding_a_hostile_skops_file_is_refused_at_load(server, tmp_path) -> None:
    """An editor registers files that claim to be a scikit-learn model but carry os.system: loading refuses them."""
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from runyard import flavors

    flavors.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "m")
    sio.dump(FunctionTransformer(os.system), tmp_path / "m" / "model.skops")
    run = runyard.init(project="flv-hostile")
    run.log_artifact(tmp_path / "m", "models/evil")
    version = runyard.register_model(run, "models/evil", "evil")
    assert version["flavor"] == "sklearn"  # taken from its runyard-model.json
    runyard.finish()
    with pytest.raises(InvalidInput, match=r"holds types runyard does not load.*posix\.system"):
        runyard.load_model("models:/flv-hostile/evil/1")
