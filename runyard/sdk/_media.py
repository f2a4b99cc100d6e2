"""Images and tables as files, and the background thread that uploads them.

``log_image`` and ``log_table`` turn their input into bytes in the caller's thread (so a buffer the
training loop reuses may change right after), check everything that could fail on the server
(key, step, size of the values), and hand the bytes to a :class:`MediaUploader`: one daemon thread
per run that uploads them as artifacts (:mod:`runyard.media` names the paths), retrying while the
server is away. Nothing here waits for the network.

Optional packages are imported only for the input that needs them: numpy for arrays (Pillow
encodes them when installed, else :func:`runyard.media.encode_png`), Pillow for PIL images and
image files other than PNG, matplotlib's own ``savefig`` for figures, pandas for DataFrames and
pyarrow for Parquet.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import runyard.names as names
from runyard import media
from runyard.errors import InvalidInput, RunyardError, ServerUnreachable, http_status
from runyard.sdk._report import Reporter

if TYPE_CHECKING:
    from runyard.client import Client
    from runyard.spool import SpoolClient

__all__ = ["DEFAULT_BUFFER_MB", "SPOOL_MEDIA", "MediaUploader", "image_png", "table_bytes"]

DEFAULT_BUFFER_MB = 256
SPOOL_MEDIA = "artifacts"  # under a run's spool directory: files close() could not upload, by artifact path
_BACKOFF_MIN_S = 0.5
_BACKOFF_MAX_S = 10.0


def _missing(package: str, pip: str, what: str) -> InvalidInput:
    return InvalidInput(f"{what} needs {package}, which is not installed.", f"Install it: pip install {pip}")


def _module_of(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


# ------------------------------------------------------------------ images
def image_png(image: Any, caption: str | None) -> bytes:
    """``image`` as PNG bytes with ``caption`` in them (:func:`runyard.media.with_caption`).

    Raises:
        TypeError: an input of no known kind.
        InvalidInput: an array of an unusable shape, type or range; a package it needs is missing;
            a file that is not an image.
        FileNotFoundError: a path that does not exist.
    """
    if isinstance(image, (str, os.PathLike)):
        return _file_png(Path(image), caption)
    module = _module_of(image)
    if module == "PIL" and hasattr(image, "save"):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return media.with_caption(buf.getvalue(), caption)
    if module == "matplotlib" and hasattr(image, "savefig"):
        buf = io.BytesIO()
        image.savefig(buf, format="png")
        return media.with_caption(buf.getvalue(), caption)
    if hasattr(image, "__array__") or hasattr(image, "__array_interface__") or isinstance(image, (list, tuple)):
        return _array_png(image, caption)
    raise TypeError(f"log_image() takes a PIL image, a numpy array (HxW, HxWx1, HxWx3 or HxWx4), a matplotlib "
                    f"Figure or the path of an image file, but got {type(image).__name__}.")


def _file_png(path: Path, caption: str | None) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"log_image(): {str(path)!r} is not a file (cwd: {os.getcwd()}).")
    data = path.read_bytes()
    if media.is_png(data):
        try:
            return media.with_caption(data, caption)
        except ValueError:
            raise InvalidInput(f"log_image(): {str(path)!r} starts like a PNG but has no header chunk.",
                               "Pass a valid PNG file, or the image itself (an array or a PIL image).") from None
    try:
        from PIL import Image
    except ImportError:
        raise _missing("Pillow", "pillow", f"log_image() of {str(path)!r}, which is not a PNG file,") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            buf = io.BytesIO()
            img.save(buf, format="PNG")
    except OSError as e:
        raise InvalidInput(f"log_image(): {str(path)!r} is not an image Pillow can read ({e}).",
                           "Pass a PNG, JPEG, GIF or WebP file.") from None
    return media.with_caption(buf.getvalue(), caption)


def _array_png(image: Any, caption: str | None) -> bytes:
    try:
        import numpy as np
    except ImportError:
        raise _missing("numpy", "numpy", "log_image() of an array") from None
    try:
        arr = np.asarray(image)
    except Exception as e:  # noqa: BLE001  (a foreign __array__ may raise anything)
        raise InvalidInput(f"log_image(): cannot make an array of {type(image).__name__} ({e}).",
                           "Pass a numpy array, e.g. tensor.detach().cpu().numpy().") from None
    shape = arr.shape
    if arr.ndim == 3 and shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise InvalidInput(f"log_image() takes an array of shape HxW, HxWx1, HxWx3 or HxWx4, but got shape {shape}.",
                           "For a CxHxW tensor, pass arr.transpose(1, 2, 0).")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInput(f"log_image(): the array of shape {shape} has no pixels.", "Pass an image at least 1x1.")
    kind = arr.dtype.kind
    if kind == "b":
        arr = arr.astype(np.uint8) * 255
    elif kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidInput("log_image(): the float array holds NaN or infinite values.",
                               "Replace them first, e.g. np.nan_to_num(arr).")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidInput(f"log_image(): a float array must hold values in [0, 1], but they span [{lo:g}, {hi:g}].",
                               "Scale it, e.g. (arr - arr.min()) / (arr.max() - arr.min()), or pass uint8 values 0-255.")
        arr = (arr * 255.0 + 0.5).astype(np.uint8)
    elif kind in "iu":
        if arr.dtype != np.uint8:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi > 255:
                raise InvalidInput(f"log_image(): an integer array must hold values 0-255, but they span [{lo}, {hi}].",
                                   "Scale it to 0-255 and pass arr.astype('uint8'), or floats in [0, 1].")
            arr = arr.astype(np.uint8)
    else:
        raise InvalidInput(f"log_image(): an array of dtype {arr.dtype} is not an image.",
                           "Pass uint8 values 0-255 or floats in [0, 1].")
    arr = np.ascontiguousarray(arr)
    try:
        from PIL import Image
    except ImportError:
        channels = 1 if arr.ndim == 2 else arr.shape[2]
        return media.encode_png(arr.tobytes(), arr.shape[1], arr.shape[0], channels, caption)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return media.with_caption(buf.getvalue(), caption)


# ------------------------------------------------------------------ tables
def _columns_rows(data: Any) -> tuple[list[str], list[list[Any]]]:
    if isinstance(data, Mapping):
        if set(data) != {"columns", "rows"}:
            raise InvalidInput(f"log_table() takes a dict with exactly the keys 'columns' and 'rows', but got keys "
                               f"{sorted(map(str, data))}.", "Pass {'columns': ['a', 'b'], 'rows': [[1, 2], [3, 4]]}.")
        columns = list(data["columns"])
        rows = [list(r) for r in data["rows"]]
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise InvalidInput(f"log_table(): row {i} has {len(row)} cells but there are {len(columns)} columns.",
                                   "Give every row one cell per column (None for a missing one).")
        return [str(c) for c in columns], rows
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        columns_seen: dict[str, None] = {}
        for i, record in enumerate(data):
            if not isinstance(record, Mapping):
                raise InvalidInput(f"log_table(): a list must hold dicts (one per row), but item {i} is "
                                   f"{type(record).__name__}.", "Pass [{'a': 1, 'b': 2}, ...], or {'columns': ..., 'rows': ...}.")
            columns_seen.update(dict.fromkeys(map(str, record)))
        columns = list(columns_seen)
        return columns, [[{str(k): v for k, v in r.items()}.get(c) for c in columns] for r in data]
    raise TypeError(f"log_table() takes a pandas DataFrame, a list of dicts or {{'columns': [...], 'rows': [[...]]}}, "
                    f"but got {type(data).__name__}.")


def _check_cells(columns: list[str], rows: list[list[Any]]) -> list[list[Any]]:
    for c in columns:
        names.check_text(c, f"log_table() column {c!r:.60}")
    out = []
    for i, row in enumerate(rows):
        clean = []
        for c, v in zip(columns, row, strict=True):
            if v is not None and not isinstance(v, (bool, int, float, str)):
                item = getattr(v, "item", None)  # numpy scalars
                v = item() if callable(item) and getattr(v, "ndim", 1) == 0 else str(v)
            if isinstance(v, str):
                problem = names.text_problem(v)
                if problem is not None:
                    raise InvalidInput(f"log_table(): the cell of row {i}, column {c!r:.60} {problem}.",
                                       "Remove the character, or replace it with a printable one.")
            clean.append(v)
        out.append(clean)
    return out


def table_bytes(data: Any, fmt: str) -> bytes:
    """``data`` as a CSV (header row, then one row per record; None is an empty cell) or a Parquet file.

    Raises:
        TypeError: an input of no known kind.
        InvalidInput: an unknown format, ragged rows, text the store cannot hold, pyarrow missing for Parquet.
    """
    if fmt not in media.TABLE_FORMATS:
        raise InvalidInput(f"log_table() format must be one of {', '.join(media.TABLE_FORMATS)}, but got {fmt!r}.",
                           "Pass format='csv' (the default) or format='parquet'.")
    if _module_of(data) == "pandas" and hasattr(data, "to_csv"):
        for c in data.columns:
            names.check_text(str(c), f"log_table() column {str(c)!r:.60}")
        if fmt == "csv":
            try:
                return bytes(data.to_csv(index=False).encode("utf-8"))
            except UnicodeEncodeError as e:
                raise InvalidInput(f"log_table(): the DataFrame holds an unpaired surrogate ({e.reason}), which is not "
                                   f"Unicode text.", "Replace it, e.g. df.replace('\\ud800', '', regex=True).") from None
        try:
            import pyarrow  # noqa: F401  (pandas' own message names several engines)
        except ImportError:
            raise _missing("pyarrow", "pyarrow", "log_table(format='parquet')") from None
        buf = io.BytesIO()
        try:
            data.to_parquet(buf, index=False)
        except (ValueError, TypeError) as e:  # e.g. column names that are not strings, mixed-type columns
            raise InvalidInput(f"log_table(): the DataFrame does not make a Parquet table ({e}).",
                               "Give it string column names and one type per column, or use format='csv'.") from None
        return buf.getvalue()
    columns, rows = _columns_rows(data)
    rows = _check_cells(columns, rows)
    if fmt == "csv":
        text = io.StringIO(newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return text.getvalue().encode("utf-8")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise _missing("pyarrow", "pyarrow", "log_table(format='parquet')") from None
    try:
        table = pa.table({c: [row[i] for row in rows] for i, c in enumerate(columns)})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInput(f"log_table(): the columns do not make a Parquet table ({e}).",
                           "Give each column values of one type, or use format='csv'.") from None
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


# ------------------------------------------------------------------ the uploader
class MediaUploader:
    """Uploads a run's image and table files in the background, oldest first.

    Args:
        client: the run's client (thread-safe), or a spooling task's SpoolClient.
        run_id: returns the run's id, None while a run started with the server away was not created.
        reporter: where problems are told, once each.
        cap_bytes: most bytes waiting; a file beyond is dropped and reported (memory stays bounded).

        spool_dir: where :meth:`close` saves the files still unsent (under ``artifacts/``), for
            ``runyard sync``; None: they are lost (reported).

    A 4xx answer drops the file (reported once per error code); no answer or a 5xx keeps it and
    retries, 0.5 s doubling to 10 s. :meth:`close` waits for the queue up to a timeout, then saves
    what is left. Thread safety: :meth:`put`, :meth:`flush` and :meth:`close` from any thread.
    """

    def __init__(self, client: Client | SpoolClient, run_id: Callable[[], int | None], reporter: Reporter,
                 cap_bytes: int, spool_dir: Path | None = None) -> None:
        self._client = client
        self._spool_dir = spool_dir
        self._run_id = run_id
        self._reporter = reporter
        self._cap = cap_bytes
        self._queue: deque[tuple[str, bytes]] = deque()
        self._bytes = 0
        self._busy = False
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._main, name="runyard-media", daemon=True)
        self._thread.start()

    def put(self, path: str, data: bytes) -> bool:
        """Queue one file; False (reported) when the queue is full."""
        with self._cond:
            if self._bytes + len(data) > self._cap and self._queue:
                self._reporter.once("media-full", (
                    f"more than {self._cap // 1048576} MiB of images and tables are waiting for the server "
                    f"(RUNYARD_SDK_MEDIA_BUFFER_MB); {path!r} and later ones are dropped until it catches up."))
                return False
            self._queue.append((path, data))
            self._bytes += len(data)
            self._cond.notify_all()
        return True

    def flush(self, timeout_s: float) -> bool:
        """Wait until every queued file was uploaded (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 1.0))
        return True

    def close(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the queue, stop the thread, and save what is left for ``runyard sync``.

        Returns:
            True when every file reached the server (or was refused for good).
        """
        ok = self.flush(timeout_s)
        with self._cond:
            self._stopping = True
            left = list(self._queue)
            self._queue.clear()
            self._bytes = 0
            self._cond.notify_all()
        if left:
            self._save(left)
        return ok

    def _save(self, left: list[tuple[str, bytes]]) -> None:
        name = self._run_id()
        if self._spool_dir is not None:
            root = self._spool_dir / SPOOL_MEDIA
            try:
                for path, data in left:
                    dest = root / path
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, dest)  # a whole file or none: `runyard sync` never sends half of one
            except OSError as e:
                self._reporter.once("media-left", f"{len(left)} images or tables of run {name} could not be uploaded, "
                                                  f"nor saved in {root} ({e}), and are lost.")
                return
            self._reporter.once("media-left", f"{len(left)} images or tables of run {name} could not be uploaded in "
                                              f"time; they are saved in {root}: send them with `runyard sync` once the "
                                              f"server is back.")
            return
        self._reporter.once("media-left", f"{len(left)} images or tables of run {name} could not be uploaded in time "
                                          f"and are lost, e.g. {left[0][0]!r}.")

    def _main(self) -> None:
        backoff = 0.0
        retry_at = 0.0  # while the server is away, new files do not hasten the next attempt
        while True:
            with self._cond:
                while not self._stopping:
                    wait_s = retry_at - time.monotonic()
                    if self._queue and wait_s <= 0:
                        break
                    self._cond.wait(wait_s if self._queue else None)
                if self._stopping:
                    return
                path, data = self._queue[0]
                self._busy = True
            done = self._upload(path, data)
            with self._cond:
                self._busy = False
                if done and self._queue and self._queue[0][0] == path:
                    self._queue.popleft()
                    self._bytes -= len(data)
                self._cond.notify_all()
            if done:
                backoff = retry_at = 0.0
            else:
                backoff = min(max(backoff * 2, _BACKOFF_MIN_S), _BACKOFF_MAX_S)
                retry_at = time.monotonic() + backoff

    def _upload(self, path: str, data: bytes) -> bool:
        """True when the file is done with (stored, or refused for good)."""
        run_id = self._run_id()
        if run_id is None:
            return False  # the run is not created on the server yet
        try:
            self._client.upload_artifact(run_id, path, data)
        except ServerUnreachable:
            return False
        except RunyardError as e:
            if http_status(e) >= 500:
                return False
            self._reporter.once(("media-rejected", e.code), f"the server refused {path!r} of run {run_id}, which was "
                                                            f"dropped: {e}")
        except Exception:  # noqa: BLE001  (the thread must live on: a bug here would strand every later file)
            import traceback

            self._reporter.once("media-bug", f"uploading {path!r} failed unexpectedly; it is dropped:\n"
                                             + traceback.format_exc())
        return True
