"""The image and table lists, the table reader, the note, and how run files are sent (types, sandbox, downloads)."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from runyard import media
from runyard.client import Client
from runyard.errors import InvalidInput, NotFound
from runyard.server._guard import FILE_CSP
from runyard.testing import LiveServer

V1 = "/api/v1"


def _png(width: int, height: int, caption: str | None = None) -> bytes:
    return media.encode_png(bytes(width * height * 3), width, height, 3, caption)


@pytest.fixture
def run_id(client: Client, project: str) -> int:
    return int(client.create_run(project, name="media")["id"])


def _get(server: LiveServer, route: str, **params: str) -> httpx.Response:
    return httpx.get(server.url + V1 + route, params=params, timeout=30)


# ------------------------------------------------------------------ serving files
@pytest.mark.parametrize(("name", "view", "content_type", "disposition"), [
    ("media/images/k/0-0.png", "true", "image/png", "inline"),
    ("photo.JPG", "true", "image/jpeg", "inline"),
    ("anim.gif", "true", "image/gif", "inline"),
    ("pic.webp", "true", "image/webp", "inline"),
    ("media/images/k/0-0.png", "false", "image/png", 'attachment; filename="0-0.png"'),
    ("train.log", "true", "text/plain; charset=utf-8", "inline"),
    ("table.csv", "true", "text/plain; charset=utf-8", "inline"),
    ("config.yaml", "false", "text/plain; charset=utf-8", 'attachment; filename="config.yaml"'),
    # Anything a browser could run code from: shown only in view mode, and only under the sandbox.
    ("evil.svg", "true", "image/svg+xml", "inline"),
    ("evil.svg", "false", "application/octet-stream", 'attachment; filename="evil.svg"'),
    ("page.html", "true", "text/html; charset=utf-8", "inline"),
    ("page.html", "false", "application/octet-stream", 'attachment; filename="page.html"'),
    ("nb.ipynb", "true", "application/octet-stream", 'attachment; filename="nb.ipynb"'),
    ("data.xml", "true", "application/octet-stream", 'attachment; filename="data.xml"'),
    ("page.xhtml", "true", "application/octet-stream", 'attachment; filename="page.xhtml"'),
    ("model.bin", "true", "application/octet-stream", 'attachment; filename="model.bin"'),
    ("noext", "true", "application/octet-stream", 'attachment; filename="noext"'),
])
def test_files_are_sent_with_a_safe_type_under_the_sandbox(shared_server: LiveServer, client: Client, run_id: int,
                                                           name: str, view: str, content_type: str, disposition: str) -> None:
    body = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
    client.upload_artifact(run_id, name, body)
    resp = _get(shared_server, f"/runs/{run_id}/artifacts/{name}", view=view)
    assert resp.status_code == 200 and resp.content == body
    assert resp.headers["content-type"] == content_type
    assert resp.headers["content-disposition"].startswith(disposition)
    # Every file answer: the files' CSP (sandbox, no scripts, opaque origin) and nosniff.
    assert resp.headers["content-security-policy"] == FILE_CSP
    assert FILE_CSP.startswith("sandbox;") and "allow-scripts" not in FILE_CSP and "script-src" not in FILE_CSP
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_a_download_names_the_file_safely(shared_server: LiveServer, client: Client, run_id: int) -> None:
    client.upload_artifact(run_id, 'out/ré"sumé;x.txt', b"x")
    resp = _get(shared_server, f"/runs/{run_id}/artifacts/out/ré\"sumé;x.txt")
    assert resp.headers["content-disposition"] == (
        "attachment; filename=\"r__sum__x.txt\"; filename*=UTF-8''r%C3%A9%22sum%C3%A9%3Bx.txt")


# ------------------------------------------------------------------ the image list
def test_the_image_list_reads_png_headers_of_any_upload(shared_server: LiveServer, client: Client, run_id: int) -> None:
    client.upload_artifact(run_id, "media/images/b/2-0.png", _png(3, 2, "b at 2"))
    client.upload_artifact(run_id, "media/images/a/x/10-0.png", _png(5, 7))
    client.upload_artifact(run_id, "media/images/a/x/9-0.png", _png(1, 1))
    client.upload_artifact(run_id, "media/images/a/x/-1-3.png", _png(1, 1))
    client.upload_artifact(run_id, "media/images/bad/0-0.png", b"not a png")  # stored, not listed
    client.upload_artifact(run_id, "media/images/flat.png", _png(1, 1))  # no step in the path: not listed
    client.upload_artifact(run_id, "media/images/c/0-0.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)  # truncated header
    items = client.list_run_images(run_id)
    assert [(i["key"], i["step"], i["width"], i["height"], i["caption"]) for i in items] == [
        ("a/x", -1, 1, 1, None), ("a/x", 9, 1, 1, None), ("a/x", 10, 5, 7, None), ("b", 2, 3, 2, "b at 2")]
    assert [i["path"] for i in client.list_run_images(run_id, "b")] == ["media/images/b/2-0.png"]
    assert client.list_run_images(run_id, "nope") == []
    # A later upload of the path replaces its row; one that is no image any more removes it.
    client.upload_artifact(run_id, "media/images/b/2-0.png", _png(8, 9))
    assert [(i["width"], i["caption"]) for i in client.list_run_images(run_id, "b")] == [(8, None)]
    client.upload_artifact(run_id, "media/images/b/2-0.png", b"garbage")
    assert client.list_run_images(run_id, "b") == []


def test_a_hostile_caption_is_cleaned_and_cut(shared_server: LiveServer, client: Client, run_id: int) -> None:
    text = b"\xff\xfe\x00<script>" + b"y" * 6000  # invalid UTF-8, a NUL, markup and a flood, right after the header
    plain = _png(1, 1)
    hostile = plain[:33] + media._chunk(b"iTXt", media.CAPTION_KEYWORD + b"\x00\x00\x00\x00\x00" + text) + plain[33:]
    client.upload_artifact(run_id, "media/images/h/0-0.png", hostile)
    (item,) = client.list_run_images(run_id, "h")
    assert item["caption"].startswith("\ufffd\ufffd\ufffd<script>") and len(item["caption"]) == media.CAPTION_MAX


def test_the_image_list_of_thousands_is_one_query(shared_server: LiveServer, client: Client, run_id: int) -> None:
    png = _png(2, 2)
    for step in range(300):
        client.upload_artifact(run_id, f"media/images/many/{step}-0.png", png)
    items = client.list_run_images(run_id)
    assert [i["step"] for i in items] == list(range(300))


def test_image_list_errors(shared_server: LiveServer, client: Client, run_id: int) -> None:
    with pytest.raises(NotFound):
        client.list_run_images(999_999_999)
    resp = _get(shared_server, f"/runs/{run_id}/images", key="a\x00b")
    assert resp.status_code == 400 and "NUL" in resp.json()["message"]


# ------------------------------------------------------------------ tables
def test_tables_list_and_content(shared_server: LiveServer, client: Client, run_id: int) -> None:
    csv_text = 'a,b\n1,"two\nlines"\n3,"say ""hi"""\n,4.5\n'
    client.upload_artifact(run_id, "media/tables/t.csv", csv_text.encode())
    client.upload_artifact(run_id, "media/tables/t/7.csv", b"x\n1")  # no newline at the end
    client.upload_artifact(run_id, "media/tables/e/m/3.csv", b"only,header\n")
    client.upload_artifact(run_id, "media/tables/9.csv", b"x\n1\n")  # not listed: a key may not end in an integer
    tables = client.list_tables(run_id)
    assert [(t["key"], t["step"], t["rows"], t["columns"]) for t in tables] == [
        ("e/m", 3, 0, ["only", "header"]), ("t", None, 3, ["a", "b"]), ("t", 7, 1, ["x"])]
    got = client.table_content(run_id, "media/tables/t.csv")
    assert got == {"path": "media/tables/t.csv", "columns": ["a", "b"],
                   "rows": [[1, "two\nlines"], [3, 'say "hi"'], [None, 4.5]], "total": 3, "truncated": False}
    assert client.table_content(run_id, "media/tables/t.csv", limit=1)["truncated"] is True
    assert client.table_content(run_id, "media/tables/t.csv", limit=0)["rows"] == []


def test_the_table_reader_takes_any_csv_tsv_or_parquet_artifact(shared_server: LiveServer, client: Client,
                                                                 run_id: int) -> None:
    client.upload_artifact(run_id, "results.tsv", b"k\tv\nx\t12345678901234567890\ny\tnan\n")
    got = client.table_content(run_id, "results.tsv")
    # Numbers JavaScript cannot hold exactly, and NaN, stay strings.
    assert got["rows"] == [["x", "12345678901234567890"], ["y", "nan"]]
    client.upload_artifact(run_id, "raw.csv", b"c\xff\x00l\n\xed\xa0\x80v\n")  # invalid UTF-8, a NUL, an encoded surrogate
    got = client.table_content(run_id, "raw.csv")
    assert got["columns"] == ["c\ufffd\ufffdl"] and got["rows"] == [["\ufffd\ufffd\ufffdv"]]
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"i": list(range(3000)), "f": [float("nan")] + [0.5] * 2999, "s": ["é"] * 3000}), buf)
    client.upload_artifact(run_id, "media/tables/p.parquet", buf.getvalue())
    (table,) = [t for t in client.list_tables(run_id) if t["key"] == "p"]
    assert (table["format"], table["rows"], table["columns"]) == ("parquet", 3000, ["i", "f", "s"])
    got = client.table_content(run_id, "media/tables/p.parquet", limit=2)
    assert got == {"path": "media/tables/p.parquet", "columns": ["i", "f", "s"], "rows": [[0, None, "é"], [1, 0.5, "é"]],
                   "total": 3000, "truncated": True}


def test_a_large_csv_is_counted_without_loading_it(shared_server: LiveServer, client: Client, run_id: int) -> None:
    rows = 60_000
    body = b"i,s\n" + b"".join(b'%d,"x\ny"\n' % i for i in range(rows))  # under the test server's 1 MiB upload cap
    client.upload_artifact(run_id, "media/tables/big.csv", body)
    (table,) = [t for t in client.list_tables(run_id) if t["key"] == "big"]
    assert table["rows"] == rows
    got = client.table_content(run_id, "media/tables/big.csv", limit=2)
    assert got["rows"] == [[0, "x\ny"], [1, "x\ny"]] and got["total"] == rows and got["truncated"]


@pytest.mark.parametrize(("params", "status", "words"), [
    ({"path": "../x.csv"}, 400, "contains '..'"),
    ({"path": "a\x00.csv"}, 400, "NUL"),
    ({"path": "nope.csv"}, 404, "has no artifact 'nope.csv'"),
    ({"path": "model.bin"}, 400, "only .csv, .tsv and .parquet files"),
    ({"path": "bad.parquet"}, 400, "not a Parquet file that can be read"),
    ({"path": "ok.csv", "limit": "10001"}, 400, "limit"),
    ({"path": "ok.csv", "limit": "-1"}, 400, "limit"),
    ({}, 400, "path: Field required"),
])
def test_table_reader_errors(shared_server: LiveServer, client: Client, run_id: int, params: dict[str, str], status: int,
                             words: str) -> None:
    client.upload_artifact(run_id, "model.bin", b"\x00\x01")
    client.upload_artifact(run_id, "bad.parquet", b"PAR1 not really")
    client.upload_artifact(run_id, "ok.csv", b"a\n1\n")
    resp = _get(shared_server, f"/runs/{run_id}/tables/content", **params)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["message"]


# ------------------------------------------------------------------ the note
def test_the_note_round_trips_and_refuses_what_it_cannot_hold(shared_server: LiveServer, client: Client, run_id: int) -> None:
    assert client.get_note(run_id) == {"text": "", "updated_at": None, "updated_by": None}
    note = client.set_note(run_id, "# Title\n\n- ünïcode ✓ \U0001f600")
    assert note["text"] == "# Title\n\n- ünïcode ✓ \U0001f600" and note["updated_by"] == "local"
    assert client.get_note(run_id) == note
    url = f"{shared_server.url}{V1}/runs/{run_id}/note"
    for body, words in [(b'{"text": "a\\u0000b"}', "NUL"), (b'{"text": "\\ud800"}', "unpaired surrogate"),
                        (json.dumps({"text": "x" * 100_001}).encode(), "at most 100000 characters"),
                        (b'{"text": 5}', "text"), (b"{}", "text")]:
        resp = httpx.put(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert resp.status_code == 400 and words in resp.json()["message"], (body[:40], resp.text)
    assert client.get_note(run_id)["text"].startswith("# Title")  # nothing was written
    client.set_note(run_id, "x" * 100_000)
    client.set_note(run_id, "")
    assert client.get_note(run_id)["text"] == ""
    with pytest.raises(NotFound):
        client.set_note(999_999_999, "x")
    with pytest.raises(InvalidInput):
        client.table_content(run_id, "../../etc/passwd.csv")
