"""TensorBoard event files as a run's metrics: read with TensorBoard's own reader.

``tensorboard: {logdir: logs/}`` in runyard.yml: while the task runs, an :class:`EventTailer`
thread beside it polls ``logdir`` every second for event files (``*tfevents*``, in any
subdirectory) and reads what each file gained since the last poll with TensorBoard's
``EventFileLoader``, which resumes where it stopped (a record still being written is read on a
later poll). Scalars, old style (``simple_value``) and new (the ``scalars`` plugin's tensors),
become metric points with the event's step and wall time, logged through the task's
:class:`~runyard.runner._reporter.Reporter` like the SDK's. A scalar ``loss`` in
``logs/train/`` is the metric ``train/loss``; one directly in ``logdir`` keeps its tag.

:func:`read_scalars` reads a finished directory the same way (``runyard import tensorboard``).

Operational traps:

- TensorBoard's reader imports TensorFlow when it is installed (seconds, and gigabytes of
  memory, in the runner). :func:`load_tensorboard` first registers
  ``tensorboard.compat.notf``, TensorBoard's own switch to its TensorFlow-free reader, which
  reads local event files the same way.
- TF2's ``tf.summary`` writes a tag's metadata (its plugin) only with the first value: the
  plugin is remembered per file and tag.
- A corrupt file yields what can be read before the damage; a file that yields nothing is
  named once in the run's log.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import runyard.names as names

__all__ = ["EventTailer", "Scalar", "event_files", "inside", "keep_event_files", "load_tensorboard", "metric_name",
           "read_scalars"]

log = logging.getLogger("runyard.runner")

POLL_S = 1.0
POINTS_PER_BATCH = 10_000
EVENT_FILE_MARK = "tfevents"
MISSING_FIX = "pip install 'runyard[tensorboard]'"


@dataclass(frozen=True)
class Scalar:
    key: str
    step: int
    value: float
    wall_time: float


def load_tensorboard() -> Any:
    """TensorBoard's reader modules, ``(event_file_loader, data_compat, tensor_util)``.

    Raises:
        ImportError: the ``tensorboard`` package is missing (message names the fix).
    """
    if "tensorflow" not in sys.modules:  # TensorFlow already loaded costs nothing more: let the reader use it
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    try:
        from tensorboard import data_compat
        from tensorboard.backend.event_processing import event_file_loader
        from tensorboard.util import tensor_util
    except ImportError as e:
        raise ImportError(f"reading TensorBoard event files needs the tensorboard package ({e}); {MISSING_FIX}") from e
    return event_file_loader, data_compat, tensor_util


def inside(root: Path, sub: str) -> Path | None:
    """``root/sub`` resolved (symbolic links followed), or None when it lies outside ``root``."""
    base = root.resolve()
    path = (base / sub).resolve()
    return path if path == base or base in path.parents else None


def event_files(logdir: Path) -> list[Path]:
    """The event files under ``logdir`` (any depth), sorted."""
    if not logdir.is_dir():
        return []
    return sorted(p for p in logdir.rglob(f"*{EVENT_FILE_MARK}*") if p.is_file())


def metric_name(logdir: Path, file: Path, tag: str) -> str | None:
    """The metric for ``tag`` of ``file``: ``<directory under logdir>/<tag>``; None when not a valid name."""
    rel = file.parent.relative_to(logdir).as_posix()
    key = tag if rel in (".", "") else f"{rel}/{tag}"
    return key if names.key_problem(key) is None else None


class _FileReader:
    """One event file, read incrementally."""

    def __init__(self, path: Path, modules: Any) -> None:
        loader_mod, self._compat, self._tensors = modules
        self.path = path
        self.n_events = 0
        self._loader = loader_mod.EventFileLoader(str(path))
        self._plugins: dict[str, str] = {}

    def read(self) -> Iterator[tuple[str, int, float, float]]:
        """``(tag, step, value, wall_time)`` of the scalars written since the last call."""
        for event in self._loader.Load():
            self.n_events += 1
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                migrated = self._compat.migrate_value(value)
                plugin = migrated.metadata.plugin_data.plugin_name
                if plugin:
                    self._plugins[value.tag] = plugin
                else:
                    plugin = self._plugins.get(value.tag, "")
                if plugin != "scalars" or not migrated.HasField("tensor"):
                    continue
                try:
                    number = float(self._tensors.make_ndarray(migrated.tensor).item())
                except (ValueError, TypeError):
                    continue
                yield value.tag, int(event.step), number, float(event.wall_time)


def read_scalars(logdir: Path) -> dict[Path, list[Scalar]]:
    """Every scalar of every event file under ``logdir``, by the directory holding the file.

    Metric names are the tags (files directly in a directory of their own: ``runyard import
    tensorboard`` makes one run per directory).

    Raises:
        ImportError: tensorboard is missing.
    """
    modules = load_tensorboard()
    out: dict[Path, list[Scalar]] = {}
    for file in event_files(logdir):
        reader = _FileReader(file, modules)
        points = out.setdefault(file.parent, [])
        for tag, step, value, wall_time in reader.read():
            if names.key_problem(tag) is None:
                points.append(Scalar(tag, step, value, wall_time))
    return out


class EventTailer:
    """Polls ``logdir`` for event files and hands their new scalars to ``report`` as they appear.

    Args:
        logdir: the directory (it may appear later; it may not exist at all).
        report: called with ``(keys, steps, values, wall_times)`` of each batch (the reporter's
            ``log_metrics``).
        note: called with one line for the run's log (a corrupt file, tensorboard missing).
        poll_s: how often to look.
    """

    def __init__(self, logdir: Path, report: Callable[[list[str], list[int], list[float], list[float]], None],
                 note: Callable[[str], None], *, poll_s: float = POLL_S) -> None:
        self.logdir = logdir
        self._report = report
        self._note = note
        self._poll_s = poll_s
        self._readers: dict[Path, _FileReader] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="runyard-tensorboard", daemon=True)
        self._modules: Any = None
        self._noted: set[str] = set()
        self.n_points = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Read what was written last, then stop (the task has ended)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()
        self.poll()
        for path, reader in self._readers.items():
            if reader.n_events == 0 and path.stat().st_size > 0:
                self._once(f"no TensorBoard events could be read from {path.relative_to(self.logdir).as_posix()} "
                           f"in tensorboard.logdir (a corrupt or foreign file); its scalars are not recorded.")

    def _main(self) -> None:
        while not self._stop.wait(self._poll_s):
            self.poll()

    def _once(self, text: str) -> None:
        if text not in self._noted:
            self._noted.add(text)
            self._note(f"[runyard] tensorboard: {text}")

    def poll(self) -> None:
        """Read every event file's new scalars and report them (one batch per poll)."""
        if self._modules is None:
            try:
                self._modules = load_tensorboard()
            except ImportError as e:
                self._once(f"{e}. The event files' scalars are not recorded.")
                self._modules = False
        if not self._modules:
            return
        keys: list[str] = []
        steps: list[int] = []
        values: list[float] = []
        times: list[float] = []
        try:
            files = event_files(self.logdir)
        except OSError as e:
            self._once(f"cannot list {self.logdir}: {e}")
            return
        for file in files:
            reader = self._readers.get(file)
            try:
                if reader is None:
                    reader = self._readers[file] = _FileReader(file, self._modules)
                for tag, step, value, wall_time in reader.read():
                    key = metric_name(self.logdir, file, tag)
                    if key is None:
                        self._once(f"tag {tag!r} of {file.name} is not a usable metric name "
                                   f"({names.KEY_RULE}); its scalars are not recorded.")
                        continue
                    keys.append(key)
                    steps.append(step)
                    values.append(value)
                    times.append(wall_time)
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the others
                log.debug("reading %s failed", file, exc_info=True)
                self._once(f"cannot read {file.name}: {type(e).__name__}: {e}")
        self.n_points += len(keys)
        for i in range(0, len(keys), POINTS_PER_BATCH):  # a long history read at once goes out in several requests
            end = i + POINTS_PER_BATCH
            self._report(keys[i:end], steps[i:end], values[i:end], times[i:end])


def keep_event_files(logdir: Path, upload: Callable[[str, Path], None], note: Callable[[str], None]) -> int:
    """Upload every event file under ``logdir`` as the artifact ``tensorboard/<path under logdir>``; how many."""
    n = 0
    for file in event_files(logdir):
        rel = file.relative_to(logdir).as_posix()
        try:
            upload(f"tensorboard/{rel}", file)
            n += 1
        except Exception as e:  # noqa: BLE001 - the run's end is reported anyway
            note(f"[runyard] tensorboard: could not keep {rel}: {type(e).__name__}: {e}")
    return n
