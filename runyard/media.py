"""A run's media: images (PNG) and tables (CSV, Parquet) among its artifacts, and how each side reads them.

Where they are stored (keys follow :func:`media_key_problem`)::

    media/images/<key>/<step>-<n>.png        n: 0, 1, ... per key and step in one process
    media/tables/<key>.csv | .parquet        a table logged without a step
    media/tables/<key>/<step>.csv | .parquet

The files carry everything the image and table lists show, so any way an artifact reaches the
server (an SDK upload, a spool the backend carries back, a plain ``log_artifact``) indexes it:

- an image's width and height are read from its PNG header, its caption from an ``iTXt`` chunk
  with the keyword :data:`CAPTION_KEYWORD` (placed right after the header, so the first
  :data:`HEAD_BYTES` of the file hold it);
- a CSV table's columns are its first row and its row count the records after it; a Parquet
  table's come from its footer (pyarrow on the server).

Pure helpers for both sides: the PNG encoder of the SDK (numpy without Pillow), the probes the
server feeds an upload through while it streams in, and the bounded table reader of the content
endpoint. Optional packages (pyarrow) are imported only where needed.
"""

from __future__ import annotations

import csv
import io
import math
import operator
import re
import struct
import zlib
from collections.abc import Callable
from itertools import islice
from typing import IO, Any, NamedTuple

import runyard.names as names
from runyard.errors import InvalidInput

__all__ = [
    "CAPTION_KEYWORD",
    "CAPTION_MAX",
    "HEAD_BYTES",
    "IMAGE_PREFIX",
    "MAX_TABLE_LIMIT",
    "NOTE_MAX",
    "TABLE_FORMATS",
    "TABLE_PREFIX",
    "CsvProbe",
    "ImageProbe",
    "MediaInfo",
    "PngInfo",
    "check_media_key",
    "check_step",
    "encode_png",
    "image_path",
    "is_png",
    "media_key_problem",
    "parquet_shape",
    "parse_image_path",
    "parse_table_path",
    "png_info",
    "probe_for",
    "read_table",
    "table_format",
    "table_path",
    "with_caption",
]

IMAGE_PREFIX = "media/images/"
TABLE_PREFIX = "media/tables/"
TABLE_FORMATS = ("csv", "parquet")
CAPTION_KEYWORD = b"runyard:caption"
CAPTION_MAX = 4096
HEAD_BYTES = 64 * 1024
MAX_TABLE_LIMIT = 10_000
NOTE_MAX = 100_000  # characters of a run's note (Markdown)
_MAX_KEY_DEPTH = 28  # MAX_PATH_DEPTH (32) less media/images/ and the file name, with room to spare
_MAX_PART_BYTES = 200  # = runyard.artifacts.MAX_NAME_BYTES (artifacts is a layer above)
_MAX_KEY_BYTES = 900  # with media/images/ and /<step>-<n>.png, within MAX_PATH_BYTES (1024)
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_IMAGE_NAME = re.compile(r"(-?\d+)-(\d+)\.png")
_INT = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_JS_SAFE = 2**53


# ------------------------------------------------------------------ keys, steps, paths
def media_key_problem(key: Any, kind: str) -> str | None:
    """``None`` for a usable image or table key (``kind``: "image" or "table"), else the rule it breaks.

    A key is a metric-like name (:func:`runyard.names.key_problem`) that also makes a path inside
    the run: names separated by '/', none of them empty, '.' or '..', no backslash, at most
    28 levels, 200 bytes a name and 900 bytes in all. A table key's last name must not be an integer: the path
    ``media/tables/x/3.csv`` is table ``x`` at step 3.
    """
    problem = names.key_problem(key)
    if problem is not None:
        return problem
    parts = key.split("/")
    if "\\" in key or any(p in ("", ".", "..") for p in parts):
        return "must be names separated by '/' (a path inside the run), without empty names, '.', '..' or backslashes"
    if len(parts) > _MAX_KEY_DEPTH:
        return f"must have at most {_MAX_KEY_DEPTH} levels separated by '/', but has {len(parts)}"
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        return f"must be at most {_MAX_KEY_BYTES} bytes (UTF-8) long, to make a path of the run"
    if any(len(p.encode("utf-8")) > _MAX_PART_BYTES for p in parts):
        return f"must have names of at most {_MAX_PART_BYTES} bytes (UTF-8) between its '/'"
    if kind == "table" and _INT.fullmatch(parts[-1]):
        return "must not end in an integer name (media/tables/x/3.csv is table 'x' at step 3)"
    return None


def check_media_key(key: Any, kind: str) -> str:
    """``key`` when it is a usable ``kind`` ("image" or "table") key.

    Raises:
        InvalidInput: naming the rule, the value and the fix.
    """
    problem = media_key_problem(key, kind)
    if problem is None:
        return str(key)
    shown = repr(key) if not isinstance(key, str) or len(key) <= 80 else repr(key[:77] + "...")
    raise InvalidInput(f"An {kind} key {problem}, but got {shown}.",
                       "Use a short name such as 'samples' or 'val/confusion'.")


def check_step(step: Any, what: str) -> int | None:
    """A step as an int (None stays None): ints, numpy integers and integral floats within 64 bits.

    Raises:
        InvalidInput: a bool, a non-integral or non-finite number, or one beyond 64 bits.
    """
    if step is None:
        return None
    if isinstance(step, bool):
        raise InvalidInput(f"{what} step must be an integer, but got {step!r}.", "Pass an int such as the epoch.")
    try:
        value = operator.index(step)
    except TypeError:
        if isinstance(step, float) and math.isfinite(step) and step.is_integer():
            value = int(step)
        elif isinstance(step, float):
            raise InvalidInput(f"{what} step must be a finite integer, but got {step!r}.",
                               "Pass an int such as the epoch or iteration.") from None
        else:
            raise InvalidInput(f"{what} step must be an integer, but got {type(step).__name__} {step!r:.60}.",
                               "Pass an int such as the epoch or iteration.") from None
    problem = names.int_problem(value)
    if problem is not None:
        raise InvalidInput(f"{what} step {problem}.", "Pass a smaller step.")
    return value


def image_path(key: str, step: int, n: int) -> str:
    return f"{IMAGE_PREFIX}{key}/{step}-{n}.png"


def table_path(key: str, step: int | None, fmt: str) -> str:
    return f"{TABLE_PREFIX}{key}.{fmt}" if step is None else f"{TABLE_PREFIX}{key}/{step}.{fmt}"


def parse_image_path(path: str) -> tuple[str, int] | None:
    """(key, step) of ``media/images/<key>/<step>-<n>.png``, else None."""
    if not path.startswith(IMAGE_PREFIX):
        return None
    key, _, name = path[len(IMAGE_PREFIX):].rpartition("/")
    m = _IMAGE_NAME.fullmatch(name)
    if m is None or media_key_problem(key, "image") is not None:
        return None
    step = int(m.group(1))
    return (key, step) if names.int_problem(step) is None else None


def table_format(path: str) -> str | None:
    """"csv", "tsv" or "parquet" by the file's extension, else None."""
    ext = path.rpartition(".")[2].lower()
    return ext if ext in ("csv", "tsv", "parquet") else None


def parse_table_path(path: str) -> tuple[str, int | None, str] | None:
    """(key, step or None, format) of a table under ``media/tables/``, else None."""
    if not path.startswith(TABLE_PREFIX):
        return None
    stem, _, ext = path[len(TABLE_PREFIX):].rpartition(".")
    if ext not in TABLE_FORMATS or not stem:
        return None
    key, _, last = stem.rpartition("/")
    if key and _INT.fullmatch(last) and names.int_problem(int(last)) is None:
        if media_key_problem(key, "table") is None:
            return key, int(last), ext
        return None
    return (stem, None, ext) if media_key_problem(stem, "table") is None else None


# ------------------------------------------------------------------ PNG
class PngInfo(NamedTuple):
    width: int
    height: int
    caption: str | None


def is_png(data: bytes) -> bool:
    return data[:8] == _PNG_SIG


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _caption_chunk(caption: str) -> bytes:
    # iTXt: keyword NUL, compression flag and method (0: none), language tag NUL, translated keyword NUL, UTF-8 text.
    return _chunk(b"iTXt", CAPTION_KEYWORD + b"\x00\x00\x00\x00\x00" + caption.encode("utf-8"))


def encode_png(pixels: bytes, width: int, height: int, channels: int, caption: str | None = None) -> bytes:
    """A PNG of 8-bit ``pixels`` (rows top to bottom, ``channels`` bytes a pixel: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).

    Rows are stored unfiltered (filter type 0) and compressed with zlib: a plain, valid PNG that needs
    no imaging library.
    """
    color = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError(f"{len(pixels)} bytes of pixels do not make {width}x{height}x{channels}")
    raw = bytearray()
    for y in range(height):
        raw += b"\x00"  # the row's filter type: none
        raw += pixels[y * stride:(y + 1) * stride]
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    out = _PNG_SIG + _chunk(b"IHDR", header)
    if caption:
        out += _caption_chunk(caption)
    return out + _chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + _chunk(b"IEND", b"")


def with_caption(png: bytes, caption: str | None) -> bytes:
    """``png`` with a caption chunk right after its header, where :func:`png_info` finds it first."""
    if not caption:
        return png
    if not is_png(png) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    return png[:end] + _caption_chunk(caption) + png[end:]


def png_info(head: bytes) -> PngInfo | None:
    """Width, height and caption from the first bytes of a PNG file; None when it is not one.

    Reads chunks until the image data (or the end of ``head``): the caption chunk this module
    writes sits right after the header. A caption that is not valid text is cleaned
    (:func:`runyard.names.clean_log_text`) and cut to :data:`CAPTION_MAX` characters.
    """
    if not is_png(head) or len(head) < 33 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    if width == 0 or height == 0 or width > 2**31 - 1 or height > 2**31 - 1:
        return None
    caption = None
    pos = 33
    while pos + 8 <= len(head):
        length = struct.unpack(">I", head[pos:pos + 4])[0]
        kind = head[pos + 4:pos + 8]
        if kind in (b"IDAT", b"IEND") or pos + 12 + length > len(head):
            break
        if kind == b"iTXt" and caption is None:
            data = head[pos + 8:pos + 8 + length]
            keyword, _, rest = data.partition(b"\x00")
            if keyword == CAPTION_KEYWORD and len(rest) >= 2 and rest[0] == 0:
                _lang, _, rest = rest[2:].partition(b"\x00")
                _translated, _, text = rest.partition(b"\x00")
                caption = names.clean_log_text(text.decode("utf-8", "replace"))[:CAPTION_MAX]
        pos += 12 + length
    return PngInfo(width, height, caption)


# ------------------------------------------------------------------ the upload probes
class MediaInfo(NamedTuple):
    """What the image and table lists show of one artifact (the store's index row)."""

    kind: str  # "image" | "table"
    key: str
    step: int | None
    caption: str | None = None
    width: int = 0
    height: int = 0
    format: str = ""
    n_rows: int = -1
    columns: tuple[str, ...] = ()


class ImageProbe:
    """Keeps the first :data:`HEAD_BYTES` of an upload to ``media/images/<key>/<step>-<n>.png``."""

    def __init__(self, key: str, step: int) -> None:
        self.key, self.step = key, step
        self._head = bytearray()

    def feed(self, chunk: bytes) -> None:
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[:HEAD_BYTES - len(self._head)]

    def result(self) -> MediaInfo | None:
        info = png_info(bytes(self._head))
        if info is None:
            return None  # not a PNG: stored as a plain artifact, not listed among the images
        return MediaInfo("image", self.key, self.step, info.caption, info.width, info.height, "png")


class CsvProbe:
    """Counts the records of a CSV upload as it streams in, and reads its header row.

    A record ends at a newline outside double quotes (RFC 4180; a quoted cell may hold newlines,
    and an escaped quote ``""`` toggles twice). The count is exact for such files.
    """

    def __init__(self, key: str, step: int | None, fmt: str = "csv") -> None:
        self.key, self.step, self.fmt = key, step, fmt
        self._head = bytearray()
        self._quoted = False
        self._newlines = 0
        self._last = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[:HEAD_BYTES - len(self._head)]
        if b'"' not in chunk:
            if not self._quoted:
                self._newlines += chunk.count(b"\n")
        else:
            for i, part in enumerate(chunk.split(b'"')):
                if i:
                    self._quoted = not self._quoted
                if not self._quoted:
                    self._newlines += part.count(b"\n")
        self._last = chunk[-1:]

    def n_records(self) -> int:
        return self._newlines + (1 if self._last not in (b"", b"\n") else 0)

    def result(self) -> MediaInfo:
        text = bytes(self._head).decode("utf-8", "replace")
        try:
            header = next(csv.reader(io.StringIO(text, newline=""), delimiter="\t" if self.fmt == "tsv" else ","), [])
        except csv.Error:
            header = []
        columns = tuple(names.clean_log_text(c) for c in header)
        return MediaInfo("table", self.key, self.step, format=self.fmt, n_rows=max(self.n_records() - 1, 0),
                         columns=columns)


def probe_for(path: str) -> ImageProbe | CsvProbe | None:
    """The probe an upload to ``path`` streams through; None for an artifact that is not media (or a Parquet
    table, whose footer is read once it is stored: :func:`parquet_shape`)."""
    image = parse_image_path(path)
    if image is not None:
        return ImageProbe(*image)
    table = parse_table_path(path)
    if table is not None and table[2] == "csv":
        return CsvProbe(table[0], table[1])
    return None


def parquet_shape(f: IO[bytes]) -> tuple[int, tuple[str, ...]] | None:
    """(rows, columns) from a Parquet file's footer; None without pyarrow or for a file that is not Parquet."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        meta = pq.ParquetFile(f).metadata
        columns = tuple(names.clean_log_text(str(c)) for c in meta.schema.to_arrow_schema().names)
    except Exception:  # noqa: BLE001  (pyarrow raises several kinds for a file that is not Parquet)
        return None
    return int(meta.num_rows), columns


# ------------------------------------------------------------------ reading a table
def _cell(value: Any) -> Any:
    """A JSON cell: None, a number (finite, and exact in JavaScript) or a string."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_JS_SAFE <= value <= _JS_SAFE else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else (None if math.isnan(value) else str(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _csv_cell(text: str) -> Any:
    """A CSV cell as JSON: '' is null, a decimal number is a number, anything else the string."""
    if text == "":
        return None
    if len(text) <= 40 and _NUMBER.fullmatch(text):
        if _INT.fullmatch(text):
            return _cell(int(text))
        value = float(text)
        return value if math.isfinite(value) else text
    return text


def read_table(open_file: Callable[[], IO[bytes]], path: str, limit: int, total: int | None = None) -> dict[str, Any]:
    """The first ``limit`` rows of a CSV, TSV or Parquet file: ``{columns, rows, total, truncated}``.

    Never loads the whole file: CSV rows are parsed one at a time and the rest only counted
    (not even read when ``total``, the row count the table list recorded, is given); Parquet
    row groups are read until ``limit`` rows, the total comes from the footer.

    Raises:
        InvalidInput: not a .csv, .tsv or .parquet path, a file that does not parse, or Parquet
            without pyarrow.
    """
    fmt = table_format(path)
    if fmt is None:
        raise InvalidInput(f"{path!r} is not a table: only .csv, .tsv and .parquet files can be read as one.",
                           "Pick a .csv, .tsv or .parquet artifact.")
    if fmt == "parquet":
        return _read_parquet(open_file, path, limit)
    with open_file() as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text, delimiter="\t" if fmt == "tsv" else ",")
        try:
            header = next(reader, [])
            rows = [[_csv_cell(names.clean_log_text(c)) for c in row] for row in islice(reader, limit)]
            more = total - len(rows) if total is not None and total >= len(rows) else sum(1 for _ in reader)
        except csv.Error as e:
            raise InvalidInput(f"{path!r} is not a CSV file that can be read ({e}).",
                               "Download it to look at it: GET /api/v1/runs/RUN/artifacts/PATH.") from None
    return {"columns": [names.clean_log_text(c) for c in header], "rows": rows, "total": len(rows) + more,
            "truncated": more > 0}


def _read_parquet(open_file: Callable[[], IO[bytes]], path: str, limit: int) -> dict[str, Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput(f"Reading the Parquet table {path!r} needs pyarrow on the server, which is not installed.",
                           "Install it where the server runs: pip install 'runyard[media]' (or pyarrow).") from None
    with open_file() as f:
        try:
            pf = pq.ParquetFile(f)
            total = pf.metadata.num_rows
            columns = list(pf.schema_arrow.names)
            rows: list[list[Any]] = []
            if limit > 0:
                for batch in pf.iter_batches(batch_size=min(limit, 1024)):
                    for record in batch.to_pylist():
                        rows.append([_cell(record.get(c)) for c in columns])
                        if len(rows) >= limit:
                            break
                    if len(rows) >= limit:
                        break
        except Exception as e:  # noqa: BLE001  (pyarrow raises several kinds for a broken file)
            raise InvalidInput(f"{path!r} is not a Parquet file that can be read ({type(e).__name__}: {str(e)[:200]}).",
                               "Download it to look at it: GET /api/v1/runs/RUN/artifacts/PATH.") from None
    return {"columns": columns, "rows": rows, "total": total, "truncated": total > len(rows)}

