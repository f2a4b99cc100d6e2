"""The :class:`Run` a process logs to, and how one starts: attached to a launched run or ad hoc.

A run started by Runyard's runner finds ``RUNYARD_RUN_ID``, ``RUNYARD_SERVER`` (and
``RUNYARD_TOKEN``, ``RUNYARD_PARAMS``) in its environment and *attaches*: nothing is
asked of the server to start, and the runner owns the run's status. Anywhere else the
SDK creates an *ad-hoc* run on the configured server (``RUNYARD_SERVER``, saved
credentials, or the embedded local server) and sets its final status itself.

``Run.log`` is the hot path: it converts values with ``float()``, appends one tuple per
point to the sender's deque and returns; see :mod:`runyard.sdk._sender` for the rest.
"""

from __future__ import annotations

import json
import math
import operator
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from time import time as _time
from typing import TYPE_CHECKING, Any, Self

import runyard.names as names
from runyard.errors import InvalidInput, InvalidState, NotFound, RunyardError, ServerUnreachable, http_status
from runyard.media import NOTE_MAX
from runyard.records.status import RunStatus
from runyard.sdk._report import Reporter, report

if TYPE_CHECKING:
    from runyard.client import Client
    from runyard.sdk._media import MediaUploader
    from runyard.sdk._sender import PendingRun, Sender
    from runyard.spool import SpoolClient

__all__ = ["Run", "env_params", "exit_outcome", "flush_timeout_s", "start_run"]

DEFAULT_BUFFER_POINTS = 1_000_000
DEFAULT_FLUSH_TIMEOUT_S = 60.0
FINAL_STATUSES = tuple(s.value for s in RunStatus if s.terminal)
_LIVE = (RunStatus.RUNNING, RunStatus.STARTING)
_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1
_WAKE_POINTS = 1_000  # = _sender.WAKE_POINTS; repeated so importing this module does not load orjson


class Run:
    """One run this process logs to. Create it with :func:`runyard.init`, not directly.

    Attributes:
        id: the run's id on the server (None when the run could not be created, or not yet).
        local_id: ``local-<hex>`` for a run started while the server was away (created on the
            server when it answers, or by ``runyard sync``), else None.
        url: the run's page in the web UI.
        launched: true inside a run started by Runyard (the runner owns its status).

    A run is a context manager: leaving the ``with`` block finishes it, ``failed`` when
    an exception escapes, else ``succeeded``.

    Example:
        >>> with runyard.init(project="demo", params={"lr": 0.1}) as run:
        ...     for step in range(3):
        ...         run.log({"loss": 1.0 / (step + 1)})
        ...     run.should_stop()
        False
    """

    def __init__(self, *, run_id: int | None, params: dict[str, Any], client: Client | SpoolClient | None, launched: bool,
                 reporter: Reporter, cap_points: int, on_finish: Callable[[Run], None],
                 pending: dict[str, Any] | None = None, local_home: str | None = None) -> None:
        self.id = run_id
        self.local_id: str | None = None
        self.launched = launched
        self.url = f"{client.base_url}/runs/{run_id}" if client is not None and run_id is not None else None
        self._params = params
        self._client = client
        self._reporter = reporter
        self._on_finish = on_finish
        self._pid = os.getpid()
        self._finished = False
        self._n_logs = 0
        self._keys: dict[str, str] = {}
        self._sender: Sender | None = None
        self._pending: PendingRun | None = None
        self._capture: Any = None  # runyard.sdk._capture.Capture of an ad-hoc run
        self._media: MediaUploader | None = None  # started by the first log_image() or log_table()
        self._media_steps: dict[str, int] = {}  # log_image() calls without a step, per key
        self._media_n: dict[tuple[str, int], int] = {}  # images of one key and step from this process
        if client is not None and (run_id is not None or pending is not None):
            from runyard.config import home
            from runyard.sdk._sender import PendingRun, Sender

            if pending is not None:
                self.local_id = f"local-{uuid.uuid4().hex[:12]}"
                spool_dir = home() / "spool" / self.local_id
                self._pending = PendingRun(spool_dir, self.local_id, on_created=self._created, **pending)
            else:
                spool_dir = home() / "spool" / str(run_id)
            self._sender = Sender(client, run_id, spool_dir=spool_dir, cap_points=cap_points, owner=not launched,
                                  reporter=reporter, pending=self._pending, local_home=local_home)
            self._queue = self._sender.queue
            self._wake = self._sender.wake
            self._closed: str | None = None
        else:
            self._queue = None  # type: ignore[assignment]
            self._closed = "disabled"

    def _created(self, record: dict[str, Any]) -> None:
        """The sender created the run started while the server was away (on its thread)."""
        self.id = int(record["id"])
        self.url = f"{self._sender._client.base_url}/runs/{self.id}"  # type: ignore[union-attr]
        report(f"run {self.local_id} is run {self.id} ({record.get('name', '')}) on the server: {self.url}")

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, url={self.url!r}, launched={self.launched})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.finish("succeeded")
        elif isinstance(exc, SystemExit):
            self._end(*exit_outcome(exc.code))
        else:
            self._end("failed", _exit_message(exc_type, exc), 1)

    @property
    def params(self) -> dict[str, Any]:
        """The run's params (a copy): ``RUNYARD_PARAMS`` of a launched run over those given to init()."""
        return dict(self._params)

    # ------------------------------------------------------------ hot path
    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Queue metric points; returns at once (a background thread sends them).

        Args:
            metrics: name → number; ints, floats, numpy scalars and 0-d tensors are
                converted with ``float()``. NaN and ±inf are stored as missing values.
                A value or name that is unusable is reported once on stderr and dropped.
            step: the points' step; by default the number of earlier log() calls of
                this run (0, 1, 2, ...), so a loop without steps gets one step per call.

        Raises:
            TypeError: ``metrics`` is not a mapping (nothing else ever raises).

        Example:
            >>> run = runyard.init(project="demo")
            >>> run.log({"loss": 0.25, "acc": 0.9}, step=10)
            >>> run.finish()
        """
        if self._closed:
            self._log_closed()
            return
        n = self._n_logs
        self._n_logs = n + 1
        if step is None:
            step = n
        elif step.__class__ is not int or not _STEP_MIN <= step <= _STEP_MAX:
            step = self._check_step(step)
            if step is None:
                return
        try:
            items = metrics.items()
        except AttributeError:
            raise TypeError(f"log() takes a dict of metric name → number, but got {type(metrics).__name__}. "
                            f"Example: runyard.log({{'loss': 0.3}}, step=epoch).") from None
        t = _time()
        q = self._queue
        append = q.append
        keys = self._keys
        for k, v in items:
            if v.__class__ is not float:
                v = self._to_float(k, v)
                if v is None:
                    continue
            try:
                k = keys[k]  # also maps str subclasses (numpy.str_) to plain str, which the API requires
            except KeyError:
                k = self._new_key(k)
                if k is None:
                    continue
            append((k, step, v, t))
        n_q = len(q)
        if n_q >= _WAKE_POINTS and n_q - len(metrics) < _WAKE_POINTS:
            self._wake()  # only when crossing the threshold: an Event.set per call would cost more than the rest

    def _to_float(self, key: Any, value: Any) -> float | None:
        if isinstance(value, (str, bytes)):  # float("0.5") would work, but a string is not a measurement
            return self._bad_value(key, value)
        try:
            return float(value)
        # Anything may come out of a foreign __float__ (torch raises RuntimeError for a
        # multi-element tensor); none of it may reach the training loop.
        except Exception:  # noqa: BLE001
            return self._bad_value(key, value)

    def _bad_value(self, key: Any, value: Any) -> None:
        self._reporter.once(("value", repr(key)), (
            f"cannot log {key!r}={_short(value)}: a metric value must be a number (int, float, numpy scalar or "
            f"0-d tensor), but got {type(value).__name__}. The point is dropped, as are later bad values of {key!r}."))

    def _new_key(self, key: Any) -> str | None:
        # The server refuses a whole batch for one bad name, so a bad name is dropped here, alone.
        if names.key_problem(key) is None:
            self._keys[key] = str(key)
            return self._keys[key]
        self._reporter.once(("key", repr(key)), (
            f"a metric name must be a string of {names.KEY_RULE}, but got {_short(key)}. "
            f"Its points are dropped (the server would refuse them); use a name such as 'loss' or 'val/acc'."))
        return None

    def _check_step(self, step: Any) -> int | None:
        try:
            if isinstance(step, bool):
                raise TypeError
            s = operator.index(step)  # ints and numpy integers, not floats
        except TypeError:
            if isinstance(step, float) and step.is_integer():
                s = int(step)
            else:
                self._reporter.once(("step", type(step)), (
                    f"log() step must be an integer, but got {_short(step)} ({type(step).__name__}); the points of that "
                    f"call are dropped. Pass an int such as the epoch or iteration, or no step."))
                return None
        if not _STEP_MIN <= s <= _STEP_MAX:
            self._reporter.once(("step", "range"), f"log() step must fit in 64 bits, but got {s}; the points of that call are dropped.")
            return None
        return s

    def _log_closed(self) -> None:
        if self._closed == "finished":
            self._reporter.once("closed", f"log() on run {self.id} after finish() is ignored; "
                                          f"call runyard.init() to start another run.")
        elif self._closed == "fork":
            self._reporter.once("closed", f"log() in a forked child process is not recorded (run {self.id} belongs to "
                                          f"process {self._pid}); log from the parent, or call runyard.init() in the child.")

    # ------------------------------------------------------- synchronous calls
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params of the run (synchronously). A param cannot change once logged.

        Args:
            params: name → JSON-like value; numpy scalars become numbers, tuples lists,
                other objects their ``str()``.

        Raises:
            TypeError: ``params`` is not a mapping. Server errors are reported on stderr.

        Example:
            >>> run = runyard.init(project="demo")
            >>> run.log_params({"optimizer": "adam", "layers": 4})
            >>> run.params["layers"]
            4
            >>> run.finish()
        """
        clean = _json_dict(params, "log_params()")
        self._params.update(clean)
        if self._pending is not None and self.id is None:
            self._pending.add(params=clean)  # created with the run
            if self.id is None:  # else the sender created it meanwhile, maybe without them: send them too
                return
        self._call(f"log params {sorted(clean)}", lambda c: c.log_params(self.id, clean))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags of the run (synchronously); values are stored as strings and may change.

        Raises:
            TypeError: ``tags`` is not a mapping. Server errors are reported on stderr.

        Example:
            >>> run = runyard.init(project="demo")
            >>> run.set_tags({"stage": "baseline"})
            >>> run.finish()
        """
        if not isinstance(tags, Mapping):
            raise TypeError(f"set_tags() takes a dict of tag name → value, but got {type(tags).__name__}.")
        clean = {str(k): str(v) for k, v in tags.items()}
        if self._pending is not None and self.id is None:
            self._pending.add(tags=clean)
            if self.id is None:
                return
        self._call(f"set tags {sorted(clean)}", lambda c: c.set_tags(self.id, clean))

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> list[str]:
        """Upload a file, or every file under a directory, after flushing the queued metrics.

        Args:
            path: a file or a directory.
            name: the artifact path; default the file's or directory's own name. A
                directory's files are stored as ``name/<path relative to the directory>``.

        Returns:
            The artifact paths uploaded (fewer than the files when the server failed;
            failures are reported on stderr).

        Raises:
            FileNotFoundError: ``path`` does not exist.

        Example:
            >>> run = runyard.init(project="demo")
            >>> _ = Path("weights.txt").write_text("0.1 0.2")
            >>> run.log_artifact("weights.txt", name="model/weights.txt")
            ['model/weights.txt']
            >>> run.finish()
        """
        src = Path(path)
        if not src.exists():
            raise FileNotFoundError(f"log_artifact(): {str(src)!r} does not exist (cwd: {os.getcwd()}).")
        base = (name or src.resolve().name).strip("/")
        if src.is_dir():
            files = [(f, f"{base}/{f.relative_to(src).as_posix()}") for f in sorted(src.rglob("*")) if f.is_file()]
        else:
            files = [(src, base)]
        self.flush()
        done: list[str] = []
        for file, artifact_path in files:
            def upload(c: Client | SpoolClient, file: Path = file, artifact_path: str = artifact_path) -> None:
                with open(file, "rb") as fh:
                    c.upload_artifact(self.id, artifact_path, fh)  # type: ignore[arg-type]  # the client encodes it

            if not self._call(f"upload {artifact_path!r}", upload):
                break
            done.append(artifact_path)
        return done

    # ------------------------------------------------------------ media, note
    def log_image(self, key: str, image: Any, step: int | None = None, caption: str | None = None) -> str | None:
        """Store an image of the run (a PNG artifact the UI's Images tab shows); returns at once.

        The image is encoded to PNG here (so the caller may reuse its buffer) and uploaded by a
        background thread, which keeps it while the server is away (up to
        ``RUNYARD_SDK_MEDIA_BUFFER_MB``, default 256 MiB, of waiting files).

        Args:
            key: a metric-like name, '/' separating levels (``"samples"``, ``"val/confusion"``).
            image: a PIL image; a numpy array of shape HxW, HxWx1, HxWx3 or HxWx4 holding uint8
                values or floats in [0, 1] (Pillow is not needed); a matplotlib Figure; or the path of
                an image file (a PNG as it is; other formats need Pillow).
            step: default: the number of earlier log_image() calls of this key (0, 1, 2, ...).
            caption: shown under the image (at most 4,096 characters).

        Returns:
            The artifact path, ``media/images/<key>/<step>-<n>.png`` (n counts this process's images of
            that key and step), or None when the run is finished or has no server.

        Raises:
            InvalidInput: a bad key, step or caption, an unusable array, or a package the input needs
                is not installed (the message names it).
            TypeError: ``image`` is of no known kind.
            FileNotFoundError: the path does not exist.

        Example:
            >>> import numpy as np
            >>> run = runyard.init(project="demo")
            >>> run.log_image("samples", np.zeros((8, 8, 3), dtype="uint8"), step=0, caption="all black")
            'media/images/samples/0-0.png'
            >>> run.finish()
        """
        from runyard import media
        from runyard.sdk._media import image_png

        key = media.check_media_key(key, "image")
        step = media.check_step(step, "log_image()")
        if caption is not None:
            if not isinstance(caption, str):
                raise TypeError(f"log_image() caption must be a string, but got {type(caption).__name__}.")
            names.check_text(caption, "log_image() caption")
            if len(caption) > media.CAPTION_MAX:
                raise InvalidInput(f"log_image() caption must be at most {media.CAPTION_MAX:,} characters, but has "
                                   f"{len(caption):,}.", "Shorten it; put long text in the run's note.")
        data = image_png(image, caption)
        if step is None:
            step = self._media_steps.get(key, 0)
            self._media_steps[key] = step + 1
        n = self._media_n.get((key, step), 0)
        self._media_n[(key, step)] = n + 1
        path = media.image_path(key, step, n)
        return path if self._queue_media(path, data) else None

    def log_table(self, key: str, data: Any, step: int | None = None, format: str = "csv") -> str | None:  # noqa: A002
        """Store a table of the run (a CSV or Parquet artifact the UI's Tables tab shows); returns at once.

        Args:
            key: a metric-like name, '/' separating levels; its last level must not be an integer.
            data: a pandas DataFrame (its index is not stored: ``df.reset_index()`` keeps it), a list
                of dicts (one per row; the columns are every key seen, in order), or
                ``{"columns": [...], "rows": [[...], ...]}``. None is an empty cell.
            step: None stores ``media/tables/<key>.<format>`` (a later call replaces it); a step
                stores ``media/tables/<key>/<step>.<format>``.
            format: ``"csv"`` (the standard library writes it) or ``"parquet"`` (needs pyarrow).

        Returns:
            The artifact path, or None when the run is finished or has no server.

        Raises:
            InvalidInput: a bad key, step or format, ragged rows, text the store cannot hold, or
                pyarrow missing for Parquet.
            TypeError: ``data`` is of no known kind.

        Example:
            >>> run = runyard.init(project="demo")
            >>> run.log_table("predictions", [{"label": "cat", "p": 0.9}, {"label": "dog", "p": 0.4}])
            'media/tables/predictions.csv'
            >>> run.finish()
        """
        from runyard import media
        from runyard.sdk._media import table_bytes

        key = media.check_media_key(key, "table")
        step = media.check_step(step, "log_table()")
        body = table_bytes(data, format)
        path = media.table_path(key, step, format)
        return path if self._queue_media(path, body) else None

    def _queue_media(self, path: str, data: bytes) -> bool:
        if self._closed:
            self._log_closed()
            if self._closed == "disabled":
                self._reporter.once("disabled", f"cannot store {path!r}: this process has no run on the server "
                                                f"(see the error above).")
            return False
        if self._media is None:
            from runyard.sdk._media import DEFAULT_BUFFER_MB, MediaUploader

            cap = _env_number("RUNYARD_SDK_MEDIA_BUFFER_MB", DEFAULT_BUFFER_MB, float)
            spool_dir = self._sender.spool_dir if self._sender is not None else None
            self._media = MediaUploader(self._client, lambda: self.id, self._reporter,  # type: ignore[arg-type]
                                        int(cap * 1048576), spool_dir)
        return self._media.put(path, data)

    def note(self, text: str, append: bool = False) -> None:
        """Set the run's note (Markdown, at most 100,000 characters), synchronously; the UI shows and edits it.

        Args:
            text: the note.
            append: add ``text`` as a new paragraph after the current note instead of replacing it.

        Raises:
            InvalidInput: too long, or holding a NUL character or an unpaired surrogate.
            TypeError: ``text`` is not a string. Server errors are reported on stderr.

        Example:
            >>> run = runyard.init(project="demo")
            >>> run.note("Baseline: **lr 0.1**, no augmentation.")
            >>> run.note("Loss plateaus after epoch 3.", append=True)
            >>> run.finish()
        """
        if not isinstance(text, str):
            raise TypeError(f"note() takes a string (Markdown), but got {type(text).__name__}.")
        names.check_text(text, "The note")
        if len(text) > NOTE_MAX:
            raise InvalidInput(f"A run's note holds at most {NOTE_MAX:,} characters, but got {len(text):,}.",
                               "Shorten it, or store long text as an artifact and link it from the note.")

        def put(c: Client | SpoolClient) -> None:
            if not hasattr(c, "set_note"):
                raise RunyardError("a run that spools (reach_server: false) cannot keep a note.",
                                   "Set it afterwards with `runyard note RUN TEXT`.")
            new = text
            if append:
                current = c.get_note(self.id)["text"]  # type: ignore[arg-type]
                new = f"{current.rstrip()}\n\n{text}" if current.strip() else text
                if len(new) > NOTE_MAX:
                    raise InvalidInput(f"Appending makes the note {len(new):,} characters; at most {NOTE_MAX:,} fit.",
                                       "Shorten it, or replace the note instead of appending.")
            c.set_note(self.id, new)  # type: ignore[arg-type]

        if self.id is None and self._pending is not None and self._client is not None:
            self._reporter.once("note-pending", f"cannot set the note of run {self.local_id} while the server is away; "
                                                f"set it later with `runyard note RUN TEXT`.")
            return
        self._call("set the note", put)

    def should_stop(self) -> bool:
        """True once the run's status on the server is no longer running or starting (e.g. pruned, canceled).

        Cheap enough to call every step: it reads a value the sender thread refreshes
        every 2 s (starting with the first call), and never blocks.

        Example:
            >>> run = runyard.init(project="demo")
            >>> run.should_stop()
            False
            >>> run.finish()
        """
        s = self._sender
        if s is None:
            return False
        if not s.status_wanted:
            s.status_wanted = True
            s.wake()
        status = s.status
        return status is not None and status not in _LIVE

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the points logged so far reached the server (or were spooled).

        Args:
            timeout_s: default ``RUNYARD_SDK_FLUSH_TIMEOUT_S`` (60 s).

        Returns:
            False when the server did not take them in time; they stay buffered.

        Example:
            >>> run = runyard.init(project="demo")
            >>> run.log({"loss": 0.5})
            >>> run.flush()
            True
            >>> run.finish()
        """
        if self._sender is None or self._closed == "fork":
            return self._sender is None
        return self._sender.flush(flush_timeout_s() if timeout_s is None else timeout_s)

    def finish(self, status: str = "succeeded") -> None:
        """Send everything buffered, then (ad-hoc runs only) set the run's final status.

        Waits for the sender up to ``RUNYARD_SDK_FLUSH_TIMEOUT_S`` (default 60 s); points
        still unsent then are saved under ``$RUNYARD_HOME/spool/<run_id>/``. Inside a
        launched run the runner owns the status, so finish() only flushes. Idempotent;
        a no-op in a forked child process.

        Args:
            status: ``succeeded``, ``failed``, ``canceled`` or ``pruned``.

        Raises:
            ValueError: unknown status.

        Example:
            >>> run = runyard.init(project="demo")
            >>> run.finish("failed")
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"finish() status must be one of {', '.join(FINAL_STATUSES)}, but got {status!r}.")
        self._end(status, None)

    def _end(self, status: str, message: str | None, exit_code: int | None = None, *,
             timeout_s: float | None = None) -> None:
        if self._finished or os.getpid() != self._pid:
            return
        self._finished = True
        capture, self._capture = self._capture, None
        if capture is not None:  # its last lines go out before the status
            capture.close(flush_timeout_s() if timeout_s is None else timeout_s)
        self._closed = "finished"
        try:
            if self._media is not None:
                media_timeout_s = flush_timeout_s() if timeout_s is None else timeout_s
                if not self._media.flush(min(media_timeout_s, 5.0)):
                    report(f"waiting up to {media_timeout_s:g} s (RUNYARD_SDK_FLUSH_TIMEOUT_S) for the server to take "
                           f"the run's images and tables.")
                self._media.close(media_timeout_s)
            sent = True
            if self._sender is not None:
                timeout_s = flush_timeout_s() if timeout_s is None else timeout_s
                if not self._sender.healthy:
                    report(f"waiting up to {timeout_s:g} s (RUNYARD_SDK_FLUSH_TIMEOUT_S) for the server at "
                           f"{self._client.base_url} to take {self._sender.n_buffered()} buffered metric points.")  # type: ignore[union-attr]
                sent = self._sender.close(timeout_s)
            if not self.launched and self._sender is not None:
                self._deliver_status(status, message, exit_code, server_away=not sent)
        finally:
            client, self._client = self._client, None
            if client is not None:
                client.close()
            self._on_finish(self)

    def _deliver_status(self, status: str, message: str | None, exit_code: int | None, *, server_away: bool) -> None:
        """Set an ad-hoc run's final status: retried for a few seconds, else saved for `runyard sync`."""
        sender = self._sender
        assert sender is not None
        run_id = sender.run_id
        if run_id is not None and not server_away:
            for delay in (0.0, 0.5, 1.0, 2.0):
                time.sleep(delay)
                try:
                    self._client.update_run(run_id, status, message, exit_code)  # type: ignore[union-attr]
                except (InvalidState, NotFound) as e:
                    report(f"run {run_id}: cannot set its status to {status}: {e.message}")
                    break
                except ServerUnreachable:
                    continue
                except RunyardError as e:
                    if http_status(e) >= 500:
                        continue
                    report(f"run {run_id}: cannot set its status to {status}: {e}")
                    break
                self._cleanup_spool()
                return
            else:
                server_away = True
        if not server_away:
            return
        from runyard.sdk._sender import STATUS_FILE, write_meta

        name = run_id if run_id is not None else self.local_id
        path = sender.spool_dir / STATUS_FILE
        try:
            write_meta(path, {"status": status, "message": message, "exit_code": exit_code, "t": time.time()})
        except OSError as e:
            report(f"run {name}: the server did not take its final status {status}, and it cannot be saved in {path} "
                   f"({e}); set it later with `runyard runs` commands.")
            return
        report(f"run {name}: the server at {self._client.base_url} did not take its final status {status}; "  # type: ignore[union-attr]
               f"it is saved in {sender.spool_dir} with the unsent metrics: send it with `runyard sync` once the "
               f"server is back.")

    def _cleanup_spool(self) -> None:
        """Everything reached the server: a run started while it was away no longer needs its spool directory."""
        if self._pending is None:
            return
        from runyard.sdk._sender import CREATE_FILE

        directory = self._pending.path.parent
        if any(p.suffix == ".json" or p.is_dir() for p in directory.iterdir()):
            return  # metric batches or media another process of the run left: `runyard sync` still needs the id mapping
        (directory / CREATE_FILE).unlink(missing_ok=True)
        try:
            directory.rmdir()
        except OSError:
            pass

    def _forked(self) -> None:
        """In a forked child: the sender thread did not come along, so stop accepting points."""
        if self._closed is None:
            self._closed = "fork"
        if self._capture is not None:
            self._capture.forked()

    def _call(self, what: str, fn: Callable[[Client | SpoolClient], Any]) -> bool:
        """Run one synchronous request; report (never raise) its failure. True on success."""
        if self._client is None:
            if self._finished:
                report(f"run {self.id}: cannot {what}: the run was finished; call runyard.init() to start another.")
            else:
                self._reporter.once("disabled", f"cannot {what}: this process has no run on the server (see the error above).")
            return False
        try:
            fn(self._client)
        except InvalidState as e:
            report(f"run {self.id}: cannot {what}: {e.message}")
            return False
        except RunyardError as e:
            report(f"run {self.id}: cannot {what}: {e}")
            return False
        return True


# ------------------------------------------------------------------ starting
def start_run(project: str | None, name: str, params: Mapping[str, Any] | None, tags: Mapping[str, Any] | None,
              on_finish: Callable[[Run], None], capture_output: bool = False) -> Run:
    """Attach to the launched run named by ``RUNYARD_RUN_ID``, or create an ad-hoc run.

    ``capture_output``: an ad-hoc run records the console, system metrics and the environment
    (:mod:`runyard.sdk._capture`); a launched run's runner does that already.

    Raises:
        TypeError: ``params`` or ``tags`` is not a mapping.
        InvalidInput: ``RUNYARD_RUN_ID``/``RUNYARD_PARAMS`` are malformed, or the new run's
            project name, param or tag names break :mod:`runyard.names`' rules, or the server
            refused the new run's params or tags. Other server failures are reported and
            give a run whose id is None and whose calls do nothing.
    """
    init_params = _json_dict(params or {}, "init() params")
    if tags is not None and not isinstance(tags, Mapping):
        raise TypeError(f"init() tags must be a dict of tag name → value, but got {type(tags).__name__}.")
    tag_strs = {str(k): str(v) for k, v in (tags or {}).items()}
    reporter = Reporter()
    cap = _env_number("RUNYARD_SDK_BUFFER_POINTS", DEFAULT_BUFFER_POINTS, int)
    common = {"reporter": reporter, "cap_points": cap, "on_finish": on_finish}

    from runyard.client import Client  # the HTTP client loads here, not at `import runyard`

    run_id_text = os.environ.get("RUNYARD_RUN_ID")
    if run_id_text:
        try:
            run_id = int(run_id_text)
        except ValueError:
            raise InvalidInput(f"RUNYARD_RUN_ID must be a run id (an integer), but got {run_id_text!r}.",
                               "Unset it to create an ad-hoc run, or set it to an existing run's id.") from None
        launched_params = env_params()
        try:
            client = Client.from_env()
        except RunyardError as e:
            report(f"cannot reach a server for run {run_id}: {e}\nMetrics of this process are not recorded.")
            return Run(run_id=None, params={**init_params, **launched_params}, client=None, launched=True, **common)
        # The launched run's params (e.g. from a search) override the code's defaults given to init().
        run = Run(run_id=run_id, params={**init_params, **launched_params}, client=client, launched=True,
                  local_home=_local_home(), **common)
        extra = {k: v for k, v in init_params.items() if k not in launched_params}
        if extra:
            run._call(f"log params {sorted(extra)}", lambda c: c.log_params(run_id, extra))
        if tag_strs:
            run._call(f"set tags {sorted(tag_strs)}", lambda c: c.set_tags(run_id, tag_strs))
    else:
        project = project or os.environ.get("RUNYARD_PROJECT") or "default"
        # The server's rules, checked here so a bad name fails before any connection is made.
        names.check_project_name(project)
        names.check_run_name(name)
        for key in init_params:
            names.check_key(key, "param")
        names.check_value(init_params, "params")
        for key, value in tag_strs.items():
            names.check_key(key, "tag")
            names.check_text(value, f"tags.{key}")
        local_home = _local_home()
        client = None
        try:
            client = Client.from_env()
            if not isinstance(client, Client):  # a task that spools: its run exists, and no other can be made
                client.close()
                raise InvalidState("runyard.init() cannot create a run inside a task that spools "
                                   "(RUNYARD_SPOOL_DIR is set but RUNYARD_RUN_ID is not).",
                                   "Leave RUNYARD_RUN_ID as the runner set it: the task logs to its own run.")
            record = client.create_run(project, name=name, params=init_params, tags=tag_strs)
        except InvalidInput:
            raise
        except RunyardError as e:
            if not (isinstance(e, ServerUnreachable) or http_status(e) >= 500):
                report(f"cannot create a run in project {project!r}: {e}\nMetrics of this process are not recorded.")
                return Run(run_id=None, params=init_params, client=None, launched=False, **common)
            if client is None:  # the embedded server did not start: aim at where it will be
                client = Client(_last_local_url())
            run = Run(run_id=None, params=init_params, client=client, launched=False, local_home=local_home,
                      pending={"project": project, "name": name, "params": init_params, "tags": tag_strs}, **common)
            report(f"cannot reach the server to create the run ({e.message}); logging to run {run.local_id}, "
                   f"kept in {run._sender.spool_dir} and created on the server when it answers "  # type: ignore[union-attr]
                   f"(or by `runyard sync`).")
            run._sender.start()  # type: ignore[union-attr]
            if capture_output:
                _capture(run)
            return run
        run = Run(run_id=record["id"], params=init_params, client=client, launched=False, local_home=local_home, **common)
        report(f"run {run.id} ({record.get('name', '')}) in project {project!r}: {run.url}")
        if capture_output:
            _capture(run)
    if run._sender is not None:
        run._sender.start()
    return run


def _capture(run: Run) -> None:
    from runyard.sdk._capture import Capture

    run._capture = Capture(run, sample_s=_env_number("RUNYARD_SDK_SAMPLE_S", 5.0, float))
    run._capture.start()


def _local_home() -> str | None:
    """The embedded server's home when this process talks to it (its address may change), else None."""
    from runyard._local import LOCAL_HOME_ENV, saved_credentials

    launched_by = os.environ.get(LOCAL_HOME_ENV)
    if launched_by:
        return launched_by  # a run the local server launched: RUNYARD_SERVER is its address
    if os.environ.get("RUNYARD_SERVER") or saved_credentials() is not None:
        return None
    from runyard.config import home

    return str(home())


def _last_local_url() -> str:
    from runyard._local import HOST, last_port, local_server_url

    return local_server_url() or f"http://{HOST}:{last_port() or 8765}"


def env_params() -> dict[str, Any]:
    """The launched run's params from ``RUNYARD_PARAMS`` (JSON object); {} when unset.

    Raises:
        InvalidInput: the variable is not a JSON object.
    """
    text = os.environ.get("RUNYARD_PARAMS")
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"RUNYARD_PARAMS must be a JSON object, but it does not parse ({e}): {text[:200]!r}.",
                           "The runner sets it; unset it, or set it to e.g. '{\"lr\": 0.1}'.") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"RUNYARD_PARAMS must be a JSON object, but got {type(value).__name__}: {text[:200]!r}.",
                           "Set it to e.g. '{\"lr\": 0.1}'.")
    return value


def flush_timeout_s() -> float:
    """``RUNYARD_SDK_FLUSH_TIMEOUT_S`` (default 60), read at each flush so it can be changed late."""
    return _env_number("RUNYARD_SDK_FLUSH_TIMEOUT_S", DEFAULT_FLUSH_TIMEOUT_S, float)


def _env_number(var: str, default: Any, kind: type) -> Any:
    text = os.environ.get(var)
    if not text:
        return default
    try:
        value = kind(text)
        if value > 0:
            return value
    except ValueError:
        pass
    report(f"{var} must be a positive {kind.__name__}, but got {text!r}; using the default {default}.")
    return default


def _json_dict(params: Any, what: str) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise TypeError(f"{what} must be a dict of name → value, but got {type(params).__name__}.")
    return {str(k): _jsonable(v) for k, v in params.items()}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN/inf; "nan" keeps the information
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def exit_outcome(code: object) -> tuple[str, str | None, int]:
    """``(status, message, exit code)`` of a process ending with ``sys.exit(code)``, as the interpreter reads ``code``."""
    if code is None or code == 0:
        return "succeeded", None, 0
    if isinstance(code, int):
        return "failed", f"the process exited with code {code}", code
    return "failed", f"the process exited with: {str(code)[:480]}", 1  # sys.exit("message") prints it and exits 1


def _exit_message(exc_type: type[BaseException], exc: BaseException | None) -> str:
    return f"{exc_type.__name__}: {exc}"[:500]

