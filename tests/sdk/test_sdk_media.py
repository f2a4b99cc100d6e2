"""log_image, log_table and note against a real server: every input kind, optional packages absent, hostile input."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import runyard
from runyard import media
from runyard.client import Client
from runyard.errors import InvalidInput
from runyard.testing import LiveServer

SOURCE = str(Path(runyard.__file__).resolve().parents[1])


def _images(server: LiveServer, run_id: int, key: str | None = None) -> list[dict]:
    with Client(server.url) as c:
        return c.list_run_images(run_id, key)


def _download(server: LiveServer, run_id: int, path: str) -> bytes:
    with Client(server.url) as c:
        dest = Path(f"/tmp/ry-media-{os.getpid()}-{time.monotonic_ns()}")
        try:
            c.download_artifact(run_id, path, dest)
            return dest.read_bytes()
        finally:
            dest.unlink(missing_ok=True)


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


def test_numpy_pil_figure_and_file_images_are_listed_with_size_and_caption(server: LiveServer, tmp_path: Path) -> None:
    from PIL import Image

    run = runyard.init(project="media")
    gray = (np.arange(12 * 20).reshape(12, 20) % 256).astype(np.uint8)
    assert run.log_image("samples", gray, step=3, caption="gray ünïcode") == "media/images/samples/3-0.png"
    assert run.log_image("samples", np.ones((4, 5, 3)) * 0.5, step=3) == "media/images/samples/3-1.png"  # same step: n=1
    assert run.log_image("samples", np.zeros((2, 2, 1), dtype=bool), step=1) == "media/images/samples/1-0.png"
    run.log_image("val/pil", Image.new("RGBA", (7, 3), (255, 0, 0, 128)), caption="pil")
    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (9, 6), (0, 0, 255)).save(jpeg)
    run.log_image("val/file", str(jpeg))
    png = tmp_path / "plot.png"
    Image.new("L", (3, 8)).save(png)
    run.log_image("val/file", png, caption="as it is")
    assert run._media is not None and run._media.flush(30)
    items = _images(server, run.id)
    got = [(i["key"], i["step"], i["width"], i["height"], i["caption"]) for i in items]
    assert got == [
        ("samples", 1, 2, 2, None),
        ("samples", 3, 20, 12, "gray ünïcode"),
        ("samples", 3, 5, 4, None),
        ("val/file", 0, 9, 6, None),  # default steps count this key's calls
        ("val/file", 1, 3, 8, "as it is"),
        ("val/pil", 0, 7, 3, "pil"),
    ]
    assert [i["key"] for i in _images(server, run.id, "val/pil")] == ["val/pil"]
    assert all(i["time"] > 0 and i["path"].startswith("media/images/") for i in items)
    stored = _download(server, run.id, "media/images/samples/3-0.png")
    assert (_pixels(stored) == gray).all()
    assert (_pixels(_download(server, run.id, "media/images/samples/3-1.png")) == 128).all()  # 0.5 rounds to 128
    run.finish()


def test_a_matplotlib_figure_is_stored_as_its_png(server: LiveServer) -> None:
    matplotlib = pytest.importorskip("matplotlib", reason="the figure test needs matplotlib (the test extra)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [1, 0])
    with runyard.init(project="media") as run:
        run.log_image("plots/loss", fig, step=0, caption="loss")
        plt.close(fig)
    (item,) = _images(server, run.id)
    assert (item["width"], item["height"], item["caption"]) == (100, 50, "loss")


def _run_script(server: LiveServer, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": SOURCE, "RUNYARD_SERVER": server.url, **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env,
                          timeout=120, check=False)


_NO_PIL = """
import builtins, sys
_real = builtins.__import__
def _blocked(name, *a, **k):
    if name == "PIL" or name.startswith("PIL."):
        raise ImportError("No module named 'PIL' (blocked by the test)")
    return _real(name, *a, **k)
builtins.__import__ = _blocked
"""


def test_numpy_alone_encodes_pngs_and_a_jpeg_names_pillow(server: LiveServer, tmp_path: Path) -> None:
    from PIL import Image

    jpeg = tmp_path / "x.jpg"
    Image.new("RGB", (4, 4)).save(jpeg)
    arr = np.random.default_rng(1).integers(0, 256, (9, 13, 4), dtype=np.uint8)
    np.save(tmp_path / "arr.npy", arr)
    out = _run_script(server, _NO_PIL + f"""
import json, numpy as np, runyard
from runyard.errors import InvalidInput
run = runyard.init(project="media")
arr = np.load({str(tmp_path / 'arr.npy')!r})
run.log_image("rgba", arr, step=0, caption="no pillow")
run.log_image("gray", arr[:, :, 0], step=0)
run.log_image("rgb", arr[:, :, :3], step=0)
try:
    run.log_image("jpeg", {str(jpeg)!r})
except InvalidInput as e:
    print("ERR", e.message, "|", e.hint)
run.finish()
assert "PIL" not in sys.modules
print(json.dumps({{"id": run.id}}))
""")
    assert out.returncode == 0, out.stderr
    assert "which is not a PNG file, needs Pillow, which is not installed. | Install it: pip install pillow" in out.stdout
    run_id = json.loads(out.stdout.splitlines()[-1])["id"]
    items = {i["key"]: i for i in _images(server, run_id)}
    assert items["rgba"]["caption"] == "no pillow" and (items["rgba"]["width"], items["rgba"]["height"]) == (13, 9)
    # The home-made encoder's files decode to the same pixels with Pillow.
    assert (_pixels(_download(server, run_id, items["rgba"]["path"])) == arr).all()
    assert (_pixels(_download(server, run_id, items["gray"]["path"])) == arr[:, :, 0]).all()
    assert (_pixels(_download(server, run_id, items["rgb"]["path"])) == arr[:, :, :3]).all()


def test_bad_images_keys_steps_and_captions_raise_clear_errors(server: LiveServer) -> None:
    run = runyard.init(project="media")
    img = np.zeros((2, 2), dtype=np.uint8)
    bad_keys = ["", "a\x00b", "a\ud800", "../escape", "a/../b", "a//b", "/abs", "a\\b", "line\nbreak", "x" * 251]
    for key in bad_keys:
        with pytest.raises(InvalidInput, match="An image key must"):
            run.log_image(key, img)
    for step, rule in [(float("nan"), "finite integer"), (float("inf"), "finite integer"), (2**63, "64 bits"),
                       (1.5, "finite integer"), (True, "must be an integer"), ("3", "must be an integer")]:
        with pytest.raises(InvalidInput, match=rule):
            run.log_image("k", img, step=step)
    for caption, rule in [("a\x00", "NUL"), ("\udc80", "unpaired surrogate"), ("c" * 4097, "at most 4,096")]:
        with pytest.raises(InvalidInput, match=rule):
            run.log_image("k", img, caption=caption)
    for arr, rule in [(np.zeros((2, 2, 2)), "shape HxW"), (np.zeros((0, 3)), "no pixels"),
                      (np.full((2, 2), np.nan), "NaN"), (np.full((2, 2), 2.0), r"\[0, 1\]"),
                      (np.full((2, 2), 300), "0-255"), (np.zeros((2, 2), dtype=complex), "not an image")]:
        with pytest.raises(InvalidInput, match=rule):
            run.log_image("k", arr)
    with pytest.raises(TypeError, match="PIL image, a numpy array"):
        run.log_image("k", object())
    with pytest.raises(FileNotFoundError, match="is not a file"):
        run.log_image("k", "no/such.png")
    assert run.log_image("k", img, step=np.int64(7)) == "media/images/k/7-0.png"  # numpy integers are steps
    assert run.log_image("k", img, step=-(2**63)) == f"media/images/k/{-(2**63)}-0.png"
    run.finish()
    assert run.log_image("k", img) is None  # after finish: reported, not raised


def test_tables_from_dataframes_lists_and_columns_read_back(server: LiveServer) -> None:
    pd = pytest.importorskip("pandas", reason="the DataFrame test needs pandas (the test extra)")
    run = runyard.init(project="media")
    df = pd.DataFrame({"label": ["cat", "dog, big", 'say "hi"'], "p": [0.9, 0.25, None], "n": [1, 2, 3]})
    assert run.log_table("preds", df) == "media/tables/preds.csv"
    assert run.log_table("eval/rows", [{"a": 1, "b": "x\ny"}, {"b": "z", "c": True}], step=2) == "media/tables/eval/rows/2.csv"
    assert run.log_table("cols", {"columns": ["k", "v"], "rows": [["a", 1], ["b", None]]}, format="parquet") \
        == "media/tables/cols.parquet"
    run.log_table("big", {"columns": ["i"], "rows": [[i] for i in range(2500)]})
    assert run._media is not None and run._media.flush(30)
    with Client(server.url) as c:
        tables = {t["key"]: t for t in c.list_tables(run.id)}
        assert tables["preds"] == {"key": "preds", "step": None, "path": "media/tables/preds.csv", "format": "csv",
                                   "rows": 3, "columns": ["label", "p", "n"]}
        assert (tables["eval/rows"]["step"], tables["eval/rows"]["rows"], tables["eval/rows"]["columns"]) == (2, 2, ["a", "b", "c"])
        assert (tables["cols"]["format"], tables["cols"]["rows"], tables["cols"]["columns"]) == ("parquet", 2, ["k", "v"])
        got = c.table_content(run.id, "media/tables/preds.csv")
        assert got["columns"] == ["label", "p", "n"] and got["total"] == 3 and not got["truncated"]
        assert got["rows"] == [["cat", 0.9, 1], ["dog, big", 0.25, 2], ['say "hi"', None, 3]]
        assert c.table_content(run.id, "media/tables/eval/rows/2.csv")["rows"] == [[1, "x\ny", None], [None, "z", "True"]]
        assert c.table_content(run.id, "media/tables/cols.parquet")["rows"] == [["a", 1], ["b", None]]
        big = c.table_content(run.id, "media/tables/big.csv", limit=10)
        assert (len(big["rows"]), big["total"], big["truncated"], big["rows"][-1]) == (10, 2500, True, [9])
    run.finish()


def test_bad_tables_raise_clear_errors(server: LiveServer) -> None:
    run = runyard.init(project="media")
    with pytest.raises(InvalidInput, match="must not end in an integer"):
        run.log_table("epoch/3", [{"a": 1}])
    with pytest.raises(InvalidInput, match="format must be one of csv, parquet"):
        run.log_table("t", [{"a": 1}], format="xlsx")
    with pytest.raises(InvalidInput, match="row 1 has 1 cells but there are 2 columns"):
        run.log_table("t", {"columns": ["a", "b"], "rows": [[1, 2], [3]]})
    with pytest.raises(InvalidInput, match="exactly the keys 'columns' and 'rows'"):
        run.log_table("t", {"a": [1, 2]})
    with pytest.raises(InvalidInput, match="item 1 is int"):
        run.log_table("t", [{"a": 1}, 2])
    with pytest.raises(InvalidInput, match=r"row 0, column 'a' holds a NUL"):
        run.log_table("t", [{"a": "x\x00"}])
    with pytest.raises(InvalidInput, match="unpaired surrogate"):
        run.log_table("t", [{"\ud800": 1}])
    with pytest.raises(InvalidInput, match="finite integer"):
        run.log_table("t", [{"a": 1}], step=float("-inf"))
    with pytest.raises(TypeError, match="DataFrame, a list of dicts"):
        run.log_table("t", "a,b\n1,2")
    pd = pytest.importorskip("pandas")
    with pytest.raises(InvalidInput, match="does not make a Parquet table"):
        run.log_table("t", pd.DataFrame({"a": [1, "x"]}), format="parquet")  # one column of two types
    with pytest.raises(InvalidInput, match="unpaired surrogate"):
        run.log_table("t", pd.DataFrame({"a": ["\udc80"]}, dtype=object))
    run.finish()


def test_parquet_without_pyarrow_names_it(server: LiveServer) -> None:
    out = _run_script(server, """
import builtins
_real = builtins.__import__
def _blocked(name, *a, **k):
    if name.split(".")[0] == "pyarrow":
        raise ImportError("blocked by the test")
    return _real(name, *a, **k)
builtins.__import__ = _blocked
import runyard
from runyard.errors import InvalidInput
run = runyard.init(project="media")
try:
    run.log_table("t", [{"a": 1}], format="parquet")
except InvalidInput as e:
    print(e.message, "|", e.hint)
print(run.log_table("t", [{"a": 1}]))
run.finish()
""")
    assert out.returncode == 0, out.stderr
    assert "log_table(format='parquet') needs pyarrow, which is not installed. | Install it: pip install pyarrow" in out.stdout
    assert out.stdout.splitlines()[-1] == "media/tables/t.csv"


def test_note_set_append_and_hostile_text(server: LiveServer) -> None:
    run = runyard.init(project="media")
    runyard.note("# Baseline\nlr **0.1**")
    runyard.note("Plateau after epoch 3.", append=True)
    with Client(server.url) as c:
        note = c.get_note(run.id)
    assert note["text"] == "# Baseline\nlr **0.1**\n\nPlateau after epoch 3."
    assert note["updated_by"] == "local" and note["updated_at"].endswith("Z")
    with pytest.raises(InvalidInput, match="NUL"):
        runyard.note("a\x00b")
    with pytest.raises(InvalidInput, match="unpaired surrogate"):
        runyard.note("\ud83d alone")
    with pytest.raises(InvalidInput, match="at most 100,000 characters"):
        runyard.note("x" * 100_001)
    with pytest.raises(TypeError, match="takes a string"):
        runyard.note(b"bytes")  # type: ignore[arg-type]
    runyard.note("x" * 100_000)  # the limit itself fits
    runyard.finish()


def test_images_never_wait_for_the_server_and_go_once_it_is_back(live_servers, tmp_path: Path) -> None:  # noqa: ANN001
    server = live_servers.start("away", env={"RUNYARD_SCHEDULER": "0"})
    with Client(server.url) as c:
        c.create_project("media")
        run_id = c.create_run("media", name="outage")["id"]
    server.stop()
    marker = tmp_path / "logged"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import numpy as np, runyard
        run = runyard.init()  # attaches to the launched run: no request
        for i in range(5):
            run.log_image("k", np.full((3, 3), i, dtype=np.uint8), step=i)
        run.log_table("t", [{{"a": 1}}])
        open({str(marker)!r}, "w").write("logged")
        runyard.finish()  # waits for the server, up to RUNYARD_SDK_FLUSH_TIMEOUT_S
    """)], env={**os.environ, "PYTHONPATH": SOURCE, "RUNYARD_SERVER": server.url, "RUNYARD_RUN_ID": str(run_id),
                "RUNYARD_SDK_FLUSH_TIMEOUT_S": "120"}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        # Every call returned with the server down; the process now waits in finish() for it.
        assert marker.exists() and proc.poll() is None
        server.start()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert [i["step"] for i in _images(server, run_id)] == [0, 1, 2, 3, 4]
    with Client(server.url) as c:
        assert [t["key"] for t in c.list_tables(run_id)] == ["t"]


@pytest.mark.slow
def test_a_process_killed_while_logging_images_leaves_a_consistent_index(server: LiveServer, tmp_path: Path) -> None:
    """SIGKILL mid-upload: every listed image downloads, and is a whole PNG of the size listed."""
    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import json, numpy as np, runyard
        run = runyard.init(project="media")
        open({str(marker)!r}, "w").write(str(run.id))
        i = 0
        while True:
            run.log_image("stream", np.random.rand(256, 256, 3), step=i)
            i += 1
    """)], env={**os.environ, "PYTHONPATH": SOURCE, "RUNYARD_SERVER": server.url})
    try:
        deadline = time.monotonic() + 60
        run_id = None
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text():
                run_id = int(marker.read_text())
                if len(_images(server, run_id)) >= 5:
                    break
            time.sleep(0.2)
        assert run_id is not None
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    # An upload whose body the server had whole may still be committed after the kill: wait until nothing changes.
    seen = None
    while True:
        with Client(server.url) as c:
            artifacts = {a["path"]: a for a in c.list_artifacts(run_id)}
        items = _images(server, run_id)
        if (artifacts.keys(), items) == seen:
            break
        seen = (artifacts.keys(), items)
        time.sleep(1)
    assert len(items) >= 5
    for item in items:
        assert item["path"] in artifacts
        png = _download(server, run_id, item["path"])
        info = media.png_info(png)
        assert info is not None and (info.width, info.height) == (item["width"], item["height"]) == (256, 256)
        assert png.endswith(b"IEND\xaeB`\x82")  # the whole file, not a prefix
    # Nothing half-uploaded is listed among the artifacts either.
    assert all(p in {i["path"] for i in items} for p in artifacts)


def test_images_tables_and_notes_on_a_postgresql_server(live_servers, pg_url: str,  # noqa: ANN001
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server = live_servers.start("pg", database_url=pg_url, env={"RUNYARD_SCHEDULER": "0"})
    monkeypatch.setenv("RUNYARD_SERVER", server.url)
    with runyard.init(project="media") as run:
        run.log_image("a/b", np.zeros((3, 4)), step=2**62, caption="✓ \U0001f600")
        run.log_table("t", [{"ünï": "x\ny", "n": 1}], step=1)
        run.note("# PostgreSQL ✓")
    (image,) = _images(server, run.id)
    assert (image["key"], image["step"], image["width"], image["height"], image["caption"]) == (
        "a/b", 2**62, 4, 3, "✓ \U0001f600")
    with Client(server.url) as c:
        (table,) = c.list_tables(run.id)
        assert (table["step"], table["rows"], table["columns"]) == (1, 1, ["ünï", "n"])
        assert c.table_content(run.id, table["path"])["rows"] == [["x\ny", 1]]
        assert c.get_note(run.id)["text"] == "# PostgreSQL ✓"
        # Names PostgreSQL text cannot hold, in files uploaded by hand, are listed cleaned (never a 500).
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.table({"a\x00b": [1]}), buf)
        c.upload_artifact(run.id, "media/tables/p.parquet", buf.getvalue())
        c.upload_artifact(run.id, "media/tables/c.csv", b"x\x00y,\xff\n1,2\n")
        c.upload_artifact(run.id, "media/images/n/0-0.png", media.encode_png(b"\x00", 1, 1, 1, "cap\x00tion"))
        listed = {t["key"]: t["columns"] for t in c.list_tables(run.id)}
        assert listed["p"] == ["a\ufffdb"] and listed["c"] == ["x\ufffdy", "\ufffd"]
        assert _images(server, run.id, "n")[0]["caption"] == "cap\ufffdtion"


def test_files_unsent_at_finish_are_saved_and_runyard_sync_sends_them(live_servers, tmp_path: Path,  # noqa: ANN001
                                                                      runyard_home: Path) -> None:
    server = live_servers.start("sync", env={"RUNYARD_SCHEDULER": "0"})
    with Client(server.url) as c:
        c.create_project("media")
        run_id = c.create_run("media", name="offline")["id"]
    server.stop()
    out = _run_script(server, """
        import numpy as np, runyard
        run = runyard.init()
        run.log_image("k", np.zeros((2, 3), dtype=np.uint8), step=4, caption="saved")
        run.log_table("t", [{"a": 1}])
        runyard.finish()
    """, env={"RUNYARD_RUN_ID": str(run_id), "RUNYARD_SDK_FLUSH_TIMEOUT_S": "1", "RUNYARD_HOME": str(runyard_home)})
    assert out.returncode == 0, out.stderr
    saved = runyard_home / "spool" / str(run_id) / "artifacts"
    assert "send them with `runyard sync`" in out.stderr
    assert sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file()) == [
        "media/images/k/4-0.png", "media/tables/t.csv"]
    server.start()
    from typer.testing import CliRunner

    from runyard.cli import app

    res = CliRunner().invoke(app, ["sync"], env={"RUNYARD_SERVER": server.url})
    assert res.exit_code == 0, res.output
    assert f"run {run_id}: sent 0 metric points in 0 batches, 2 images and tables" in res.output
    (image,) = _images(server, run_id)
    assert (image["step"], image["caption"], image["width"]) == (4, "saved", 3)
    with Client(server.url) as c:
        assert [t["path"] for t in c.list_tables(run_id)] == ["media/tables/t.csv"]
    assert not (runyard_home / "spool" / str(run_id)).exists()
