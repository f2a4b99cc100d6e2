"""runyard.media's pure parts: the PNG writer and header reader, paths and keys, the CSV row counter."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from runyard import media
from runyard.errors import InvalidInput


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_the_png_writer_is_read_back_by_pillow(channels: int) -> None:
    from PIL import Image

    pixels = np.random.default_rng(channels).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    png = media.encode_png(pixels.tobytes(), 7, 5, channels, caption="ünï ✓")
    img = Image.open(io.BytesIO(png))
    img.load()
    got = np.asarray(img).reshape(5, 7, channels)
    assert (got == pixels).all()
    assert media.png_info(png) == media.PngInfo(7, 5, "ünï ✓")
    assert img.text.get("runyard:caption") == "ünï ✓"  # a standard iTXt chunk other readers see too


def test_png_info_refuses_what_is_not_a_png_header() -> None:
    png = media.encode_png(b"\x00", 1, 1, 1)
    assert media.png_info(png[:20]) is None  # cut inside the header
    assert media.png_info(b"GIF89a" + png[6:]) is None
    assert media.png_info(png[:33]) == media.PngInfo(1, 1, None)  # the header alone is enough
    zero = png[:16] + b"\x00\x00\x00\x00" + png[20:]
    assert media.png_info(zero) is None
    with pytest.raises(ValueError, match="not a PNG"):
        media.with_caption(b"not a png", "c")
    assert media.with_caption(b"anything", None) == b"anything"


@pytest.mark.parametrize(("path", "parsed"), [
    ("media/images/a/b/3-0.png", ("a/b", 3)),
    ("media/images/a/-3-12.png", ("a", -3)),
    ("media/images/a/3.png", None),
    ("media/images/3-0.png", None),  # no key
    ("media/images/a/3-0.PNG", None),
    ("media/images/a/99999999999999999999-0.png", None),  # beyond 64 bits
    ("other/a/3-0.png", None),
])
def test_image_paths(path: str, parsed: tuple[str, int] | None) -> None:
    assert media.parse_image_path(path) == parsed


@pytest.mark.parametrize(("path", "parsed"), [
    ("media/tables/t.csv", ("t", None, "csv")),
    ("media/tables/a/t.parquet", ("a/t", None, "parquet")),
    ("media/tables/a/t/7.csv", ("a/t", 7, "csv")),
    ("media/tables/a/-7.csv", ("a", -7, "csv")),
    ("media/tables/7.csv", None),
    ("media/tables/t.tsv", None),
    ("media/tables/.csv", None),
])
def test_table_paths(path: str, parsed: tuple[str, int | None, str] | None) -> None:
    assert media.parse_table_path(path) == parsed
    if parsed is not None:
        assert media.table_path(parsed[0], parsed[1], parsed[2]) == path


@pytest.mark.parametrize("key", ["loss", "val/acc", "a b", "ünï/✓", "x" * 200])
def test_good_keys(key: str) -> None:
    assert media.media_key_problem(key, "image") is None and media.check_media_key(key, "table") == key


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/./b", "..", "a/..", "a\\b", "a\x00", "\ud800", "a\nb",
                                 "x" * 201, "/".join("a" * 29), "/".join(["\U0001f600" * 49] * 5), "\u202e", 3, None])
def test_bad_keys(key: object) -> None:
    assert media.media_key_problem(key, "image") is not None
    with pytest.raises(InvalidInput, match="An image key"):
        media.check_media_key(key, "image")


def test_a_key_of_many_wide_characters_is_refused_by_its_bytes() -> None:
    key = "/".join(["\U0001f600" * 49] * 5)  # 249 characters, names of 196 bytes, 984 bytes in all
    assert "900 bytes" in (media.media_key_problem(key, "image") or "")


def test_a_table_key_may_not_end_in_an_integer() -> None:
    assert media.media_key_problem("epoch/3", "image") is None
    assert "integer" in (media.media_key_problem("epoch/3", "table") or "")


def test_the_csv_counter_agrees_with_the_csv_module_at_any_chunking() -> None:
    rows = [["a", "b"], ["1", 'two\nlines "quoted"'], ["", "x,y"], ['"', "\r\n"], ["last", "no newline"]]
    text = io.StringIO(newline="")
    csv.writer(text, lineterminator="\n").writerows(rows)
    data = text.getvalue().rstrip("\n").encode()
    for size in (1, 2, 3, 7, len(data)):
        probe = media.CsvProbe("t", None)
        for i in range(0, len(data), size):
            probe.feed(data[i:i + size])
        info = probe.result()
        assert (info.n_rows, info.columns) == (len(rows) - 1, ("a", "b")), size


def test_read_table_limits_and_counts() -> None:
    data = b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(50))
    got = media.read_table(lambda: io.BytesIO(data), "t.csv", 3)
    assert got == {"columns": ["a", "b"], "rows": [[0, "x"], [1, "x"], [2, "x"]], "total": 50, "truncated": True}
    assert media.read_table(lambda: io.BytesIO(data), "t.csv", 3, total=50)["total"] == 50
    assert media.read_table(lambda: io.BytesIO(b""), "t.csv", 3) == {"columns": [], "rows": [], "total": 0, "truncated": False}
    with pytest.raises(InvalidInput, match="not a table"):
        media.read_table(lambda: io.BytesIO(data), "t.txt", 3)


@pytest.mark.parametrize(("step", "words"), [(float("nan"), "finite integer"), (2**63, "64 bits"), (-(2**63) - 1, "64 bits"),
                                             (True, "must be an integer"), (1.5, "finite integer"), ([1], "must be an integer")])
def test_bad_steps(step: object, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        media.check_step(step, "log_image()")


def test_good_steps() -> None:
    assert media.check_step(None, "x") is None
    assert media.check_step(np.int32(4), "x") == 4 and media.check_step(4.0, "x") == 4
