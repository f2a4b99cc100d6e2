"""Dispatch: each run submitted exactly once, within ``parallel`` and the backend's capacity, by the leader only."""

from __future__ import annotations

from sched_helpers import runs_of, step

from runyard.backends.base import Resources
from runyard.testing import FakeBackend


def test_each_run_is_submitted_once(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1, 2, 3])
    sched = make_scheduler()
    for _ in range(5):
        step(sched, clock)
    runs = runs_of(store, exp)
    assert [r.status for r in runs] == ["starting"] * 3
    assert {r.engine_job_id for r in runs} == {j.job_id for j in fake.active()}
    assert all(r.backend == "fake" for r in runs)
    assert sorted(fake.submits.items()) == [((r.id, 1), 1) for r in runs]


def test_launch_carries_the_run(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([7])
    step(make_scheduler(), clock)
    (run,) = runs_of(store, exp)
    launch = fake.job(run.id).launch
    assert (launch.run_id, launch.attempt, launch.experiment_id) == (run.id, 1, exp)
    assert launch.command == "python train.py --a 7"
    assert launch.env["RUNYARD_RUN_ID"] == str(run.id) and launch.token


def test_two_schedulers_racing_submit_each_run_once(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1, 2, 3, 4, 5, 6], parallel=6, resources={"cpus": 0.5})
    first, second = make_scheduler(), make_scheduler()
    for _ in range(4):
        step(first, clock, 0.3)
        step(second, clock, 0.3)
    assert first.is_leader and not second.is_leader
    runs = runs_of(store, exp)
    assert len(runs) == 6 and all(r.status == "starting" for r in runs)
    assert all(n == 1 for n in fake.submits.values()) and len(fake.submits) == 6


def test_a_follower_that_thinks_it_leads_claims_nothing_twice(store, clock, fake, make_scheduler, submit) -> None:
    """Leader change mid-way: the old leader still believes it leads (its lease is not due for renewal)
    when a new one takes over; both dispatch, the compare-and-set keeps every run to one submit."""
    exp = submit([1, 2, 3, 4], parallel=2)
    old, new = make_scheduler(), make_scheduler()
    step(old, clock)
    assert old.is_leader
    store.release_lease("scheduler", old.holder)  # its lease lapses (a long pause of its process, say)
    step(new, clock, 0.1)
    assert new.is_leader and old.is_leader  # old has not renewed yet: it still acts
    for (run_id, attempt) in list(fake.submits):
        fake.start(run_id, attempt)
        fake.finish(run_id, 0, attempt)
    for run in runs_of(store, exp):
        if run.status == "starting":
            store.set_run_status(run.id, "running")
            store.set_run_status(run.id, "succeeded")
    for _ in range(3):
        step(old, clock, 0.1)
        step(new, clock, 0.1)
    assert len(fake.submits) == 4 and all(n == 1 for n in fake.submits.values())
    assert {r.status for r in runs_of(store, exp)} <= {"starting", "succeeded"}
    step(old, clock, 5.0)  # its renewal is due now: the lease is the new leader's
    assert not old.is_leader


class _Interleaved(FakeBackend):
    """Runs ``during_capacity`` (once) inside its first capacity() call: another scheduler's whole pass
    lands between this scheduler's read of the queued runs and its claim of them."""

    during_capacity = None

    def capacity(self):
        hook, self.during_capacity = self.during_capacity, None
        if hook is not None:
            hook()
        return super().capacity()


def test_two_leaders_reading_the_same_queue_submit_each_run_once(store, clock, make_scheduler, submit) -> None:
    engine = _Interleaved(Resources(cpus=0.0, memory_mb=0, gpus=0))  # no room: the first pass only proposes
    exp = submit([1, 2, 3])
    old, new = make_scheduler({"fake": engine}), make_scheduler({"fake": engine})
    step(old, clock)
    assert [r.status for r in runs_of(store, exp)] == ["queued"] * 3
    store.release_lease("scheduler", old.holder)
    step(new, clock, 0.1)
    assert old.is_leader and new.is_leader  # both believe they lead for a moment
    engine.total = Resources(cpus=8.0, memory_mb=0, gpus=0)
    engine.during_capacity = old.tick  # old claims and submits everything while new is mid-pass
    step(new, clock, 0.1)
    runs = runs_of(store, exp)
    assert [r.status for r in runs] == ["starting"] * 3
    assert sorted(engine.submits.items()) == [((r.id, 1), 1) for r in runs]
    assert {r.engine_job_id for r in runs} == set(engine.jobs)


def test_parallel_is_respected(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1, 2, 3, 4, 5], parallel=2, resources={"cpus": 0.1})
    sched = make_scheduler()
    step(sched, clock)
    step(sched, clock)
    assert len(fake.active()) == 2
    first = fake.active()[0]
    store.set_run_status(first.run_id, "running")
    store.set_run_status(first.run_id, "succeeded")  # the runner reports its end
    fake.finish(first.run_id, 0)
    step(sched, clock)
    assert len(fake.active()) == 2 and len(fake.submits) == 3
    assert sum(r.status in ("starting", "running") for r in runs_of(store, exp)) == 2


def test_capacity_is_respected(store, clock, make_scheduler, submit) -> None:
    small = FakeBackend(Resources(cpus=2.0, memory_mb=0, gpus=0))
    exp = submit([1, 2, 3, 4], parallel=4, backend="small", resources={"cpus": 1})
    sched = make_scheduler({"small": small})
    step(sched, clock)
    step(sched, clock)
    assert len(small.active()) == 2  # 2 CPUs free, 1 each
    assert [r.status for r in runs_of(store, exp)].count("queued") == 2
    small.finish(small.active()[0].run_id, 0)  # frees a CPU
    step(sched, clock)
    assert len(small.active()) == 2 and len(small.submits) == 3


def test_capacity_keeps_submission_order(store, clock, make_scheduler, submit) -> None:
    """A run that does not fit blocks the backend for the pass: a later, smaller one does not jump the queue."""
    small = FakeBackend(Resources(cpus=2.0, memory_mb=0, gpus=0))
    big = submit([1], backend="small", resources={"cpus": 3})
    little = submit([1], backend="small", resources={"cpus": 1})
    step(make_scheduler({"small": small}), clock)
    assert runs_of(store, big)[0].status == "queued"
    assert runs_of(store, little)[0].status == "queued"
    assert not small.submits


def test_an_engine_that_queues_is_limited_by_parallel_only(store, clock, make_scheduler, submit) -> None:
    unlimited = FakeBackend(None)
    exp = submit(list(range(10)), parallel=3, backend="q")
    step(make_scheduler({"q": unlimited}), clock)
    assert len(unlimited.active()) == 3  # capacity None: parallel is the only limit
    assert [r.status for r in runs_of(store, exp)].count("queued") == 7


def test_a_refused_submit_fails_the_run(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1, 2])
    fake.refuse("sbatch: error: invalid partition")
    sched = make_scheduler()
    step(sched, clock)
    refused, accepted = runs_of(store, exp)
    assert refused.status == "failed"
    assert "submit to backend 'fake' failed" in refused.status_message
    assert "invalid partition" in refused.status_message
    assert accepted.status == "starting" and accepted.engine_job_id
    assert fake.submit_count(refused.id) == 1 and fake.submit_count(accepted.id) == 1


def test_a_refused_submit_is_restarted_when_allowed(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1], max_restarts=1)
    fake.refuse()
    sched = make_scheduler()
    step(sched, clock)
    step(sched, clock)
    (run,) = runs_of(store, exp)
    assert (run.status, run.attempt) == ("starting", 2)
    assert fake.submits == {(run.id, 1): 1, (run.id, 2): 1}


def test_an_unknown_backend_fails_the_run(store, clock, make_scheduler, submit) -> None:
    exp = submit([1], backend="nowhere")
    step(make_scheduler(), clock)
    (run,) = runs_of(store, exp)
    assert run.status == "failed" and "backend 'nowhere' unavailable" in run.status_message


def test_a_follower_does_nothing(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1])
    leader, follower = make_scheduler(), make_scheduler()
    step(leader, clock)
    fake.submits.clear()
    store.set_run_status(runs_of(store, exp)[0].id, "canceled")
    step(follower, clock)
    assert not follower.is_leader and not fake.submits and not fake.canceled
