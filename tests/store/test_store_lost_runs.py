"""``Store.fail_lost_runs``: ad-hoc runs whose process went silent end failed, and nothing else does."""

from __future__ import annotations

import time

from runyard.store import Store


def test_only_silent_running_adhoc_runs_end_failed_lost(store: Store) -> None:
    silent = store.create_run("lost", name="silent").id
    alive = store.create_run("lost", name="alive").id
    done = store.create_run("lost", name="done").id
    store.set_run_status(done, "succeeded")
    queued = store.create_run("lost", name="queued", status="queued").id
    exp = store.create_experiment("lost", "sweep")
    launched = store.create_run("lost", name="launched", experiment_id=exp.id, number=1).id
    time.sleep(0.05)
    cutoff = time.time()
    time.sleep(0.05)
    store.heartbeat(alive)

    assert store.fail_lost_runs(cutoff, "lost: no heartbeat") == [silent]
    run = store.get_run(silent)
    assert (run.status, run.status_message) == ("failed", "lost: no heartbeat")
    assert run.ended_at is not None and [e.status for e in run.events][-1] == "failed"
    statuses = {r: store.get_run(r).status for r in (alive, done, queued, launched)}
    assert statuses == {alive: "running", done: "succeeded", queued: "queued", launched: "running"}
    assert store.fail_lost_runs(cutoff, "lost: no heartbeat") == []  # nothing twice
