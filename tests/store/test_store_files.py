"""Store contract: log lines, artifact records, blobs and snapshots."""

from __future__ import annotations

import hashlib

import pytest

from runyard.errors import InvalidInput, NotFound
from runyard.store import Store


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_logs_append_read_from_offset_task_filter_and_tail(store: Store) -> None:
    run = store.create_run("p")
    other = store.create_run("p")
    assert store.append_logs(run.id, "main", []) == (0, False)
    last_main, _ = store.append_logs(run.id, "main", [("stdout", f"line {i}", 100.0 + i) for i in range(5)])
    store.append_logs(other.id, "main", [("stdout", "elsewhere", 1.0)])  # interleaved writes of another run
    last_worker, dup = store.append_logs(run.id, "worker-1", [("stderr", "warn", 200.0), ("system", "exit 0", 201.0)],
                                         batch_id="w-1")
    assert last_worker > last_main and not dup
    # The same batch again (a retry whose first answer was lost) is stored once: same offset, nothing appended.
    assert store.append_logs(run.id, "worker-1", [("stderr", "warn", 200.0), ("system", "exit 0", 201.0)],
                             batch_id="w-1") == (last_worker, True)

    lines = store.read_logs(run.id)
    assert [ln.text for ln in lines] == [f"line {i}" for i in range(5)] + ["warn", "exit 0"]
    assert [ln.offset for ln in lines] == sorted(ln.offset for ln in lines)
    assert lines[4].offset == last_main and lines[-1].offset == last_worker
    assert (lines[5].task, lines[5].stream, lines[5].ts) == ("worker-1", "stderr", 200.0)

    after = store.read_logs(run.id, offset=lines[2].offset)
    assert [ln.text for ln in after] == ["line 3", "line 4", "warn", "exit 0"]
    assert store.read_logs(run.id, offset=last_worker) == []
    assert [ln.text for ln in store.read_logs(run.id, limit=2)] == ["line 0", "line 1"]
    assert [ln.text for ln in store.read_logs(run.id, task="worker-1")] == ["warn", "exit 0"]
    assert [ln.text for ln in store.read_logs(run.id, task="main", offset=lines[3].offset)] == ["line 4"]
    assert [ln.text for ln in store.tail_logs(run.id, 3)] == ["line 4", "warn", "exit 0"]
    assert [ln.text for ln in store.tail_logs(run.id, 2, task="main")] == ["line 3", "line 4"]

    text = "ünïcode \t tabs and a very long line " + "x" * 100_000
    store.append_logs(run.id, "main", [("stdout", text, 1.0)])
    assert store.read_logs(run.id, offset=last_worker)[0].text == text

    with pytest.raises(NotFound, match="No run with id 999999"):
        store.append_logs(999_999, "main", [("stdout", "x", 1.0)])
    with pytest.raises(NotFound, match="No run with id 999999"):
        store.read_logs(999_999)


def test_artifacts_record_list_prefix(store: Store) -> None:
    run = store.create_run("p")
    for path in ("model/weights.pt", "plots/loss.png", "plots/acc.png", "plotsx/other.png", "report.md"):
        store.record_artifact(run.id, path, len(path), _sha(path))
    assert [a.path for a in store.list_artifacts(run.id)] == [
        "model/weights.pt", "plots/acc.png", "plots/loss.png", "plotsx/other.png", "report.md"]
    assert [a.path for a in store.list_artifacts(run.id, "plots")] == ["plots/acc.png", "plots/loss.png"]
    assert [a.path for a in store.list_artifacts(run.id, "plots/")] == ["plots/acc.png", "plots/loss.png"]
    assert [a.path for a in store.list_artifacts(run.id, "report.md")] == ["report.md"]
    assert store.list_artifacts(run.id, "plot") == []  # a prefix is a whole path segment

    replaced = store.record_artifact(run.id, "plots/loss.png", 99, _sha("v2"))  # a re-upload replaces the record
    assert store.find_artifact(run.id, "plots/loss.png") == replaced
    assert (replaced.size, replaced.sha256) == (99, _sha("v2"))
    assert len(store.list_artifacts(run.id)) == 5
    assert store.find_artifact(run.id, "missing") is None
    assert store.list_artifacts(store.create_run("p").id) == []

    with pytest.raises(NotFound):
        store.record_artifact(999_999, "a", 1, _sha("a"))
    with pytest.raises(NotFound):
        store.list_artifacts(999_999)


def test_blobs_missing_and_record(store: Store) -> None:
    digests = [_sha(str(i)) for i in range(1200)]  # more than one 500-digest query chunk
    assert store.missing_blobs(digests + digests[:3]) == digests  # duplicates once, order kept
    stored = {0, 1, 499, 500, 501, 998, 999, 1000, 1199}  # on both sides of the query chunks' edges
    for i in sorted(stored):
        store.record_blob(digests[i], 10)
    store.record_blob(digests[0], 10)  # recording again is a no-op
    assert store.missing_blobs(digests) == [d for i, d in enumerate(digests) if i not in stored]
    assert store.missing_blobs([]) == []


def test_snapshots_require_their_blobs_first(store: Store) -> None:
    a, b = _sha("a"), _sha("b")
    files = [["train.py", a, 120, 0o644], ["data/x.csv", b, 30, 0o600]]
    store.record_blob(a, 120)
    with pytest.raises(InvalidInput, match=f"names 1 blob\\(s\\) the server does not have, e.g. {b}") as info:
        store.create_snapshot("snap1", files)
    assert info.value.code == "invalid_input"
    assert "/api/v1/blobs/missing" in (info.value.hint or "")
    with pytest.raises(NotFound, match="No snapshot 'snap1'"):
        store.get_snapshot("snap1")

    store.record_blob(b, 30)
    snap = store.create_snapshot("snap1", files, git_commit="abc123", git_branch="main", git_dirty=True, git_diff="+x")
    assert (snap.id, snap.n_files, snap.size, snap.files) == ("snap1", 2, 150, files)
    assert (snap.git_commit, snap.git_branch, snap.git_dirty, snap.git_diff) == ("abc123", "main", True, "+x")
    assert store.create_snapshot("snap1", files) == snap  # the same id again keeps the first
    assert store.get_snapshot("snap1") == snap
    empty = store.create_snapshot("empty", [])
    assert (empty.n_files, empty.size, empty.git_dirty) == (0, 0, False)
