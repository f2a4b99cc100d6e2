"""The runner's TensorBoard tailer on real event files (TensorBoard's writers and reader, no server)."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")
# TensorFlow is installed here for other tests: TensorBoard's own switch keeps its writers from loading it.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

from tensorboard.summary import Writer  # noqa: E402

from runyard.runner._tensorboard import EventTailer, inside, metric_name, read_scalars  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.points: list[tuple[str, int, float]] = []
        self.notes: list[str] = []

    def report(self, keys: list[str], steps: list[int], values: list[float], times: list[float]) -> None:
        assert len(keys) == len(steps) == len(values) == len(times)
        self.points += zip(keys, steps, values, strict=True)


def test_the_tailer_reads_what_each_poll_adds_and_names_a_corrupt_file(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    sink = Sink()
    tailer = EventTailer(logdir, sink.report, sink.notes.append, poll_s=3600)
    tailer.poll()  # the directory does not exist yet: nothing, and no complaint
    assert sink.points == [] and sink.notes == []
    writer = Writer(str(logdir))
    writer.add_scalar("loss", 0.5, step=1)
    writer.flush()
    tailer.poll()
    assert sink.points == [("loss", 1, 0.5)]
    writer.add_scalar("loss", 0.25, step=2)
    writer.flush()
    (logdir / "events.out.tfevents.broken").write_bytes(b"\x01" * 64)
    tailer.poll()
    assert sink.points == [("loss", 1, 0.5), ("loss", 2, 0.25)]  # each point once
    writer.close()
    tailer.stop()
    assert len(sink.notes) == 1 and "events.out.tfevents.broken" in sink.notes[0] and "corrupt" in sink.notes[0]


def test_the_tailer_thread_polls_until_stopped(tmp_path: Path) -> None:
    sink = Sink()
    tailer = EventTailer(tmp_path, sink.report, sink.notes.append, poll_s=0.05)
    tailer.start()
    writer = Writer(str(tmp_path / "val"))
    writer.add_scalar("acc", 0.75, step=0)
    writer.flush()
    deadline = time.monotonic() + 10
    while not sink.points and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.points == [("val/acc", 0, 0.75)]
    writer.add_scalar("acc", 0.8, step=1)
    writer.close()
    tailer.stop()  # a last read: nothing written before the task ended is missed
    assert sink.points[-1] == ("val/acc", 1, pytest.approx(0.8))


def test_metric_names_and_paths(tmp_path: Path) -> None:
    assert metric_name(tmp_path, tmp_path / "f", "loss") == "loss"
    assert metric_name(tmp_path, tmp_path / "a" / "b" / "f", "loss") == "a/b/loss"
    assert metric_name(tmp_path, tmp_path / "f", "bad\nname") is None
    (tmp_path / "work").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "work" / "link").symlink_to(tmp_path / "outside")
    assert inside(tmp_path / "work", "logs") == (tmp_path / "work" / "logs").resolve()
    assert inside(tmp_path / "work", "link") is None  # a symbolic link out of the working directory
    assert inside(tmp_path / "work", "../outside") is None


def test_read_scalars_groups_by_directory(tmp_path: Path) -> None:
    for name in ("a", "b"):
        writer = Writer(str(tmp_path / name))
        writer.add_scalar("loss", 1.0, step=3, wall_time=1_700_000_000.5)
        writer.close()
    found = read_scalars(tmp_path)
    assert sorted(p.name for p in found) == ["a", "b"]
    point = found[tmp_path / "a"][0]
    assert (point.key, point.step, point.value, point.wall_time) == ("loss", 3, 1.0, 1_700_000_000.5)


def test_without_the_tensorboard_package_the_log_says_so_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The package is installed here; its absence is simulated where the tailer imports it.
    import runyard.runner._tensorboard as tb

    def missing() -> None:
        raise ImportError("reading TensorBoard event files needs the tensorboard package (No module named "
                          "'tensorboard'); pip install 'runyard[tensorboard]'")

    monkeypatch.setattr(tb, "load_tensorboard", missing)
    sink = Sink()
    tailer = EventTailer(tmp_path, sink.report, sink.notes.append, poll_s=3600)
    tailer.poll()
    tailer.poll()
    tailer.stop()
    assert len(sink.notes) == 1 and "pip install 'runyard[tensorboard]'" in sink.notes[0], sink.notes
    assert sink.points == []
