"""Several backends for one experiment (``backend: [a, b]``): each run goes to the first in list order with room."""

from __future__ import annotations

from sched_helpers import runs_of, step

from runyard.backends.base import Resources
from runyard.testing import FakeBackend


def _cpus(n: float) -> FakeBackend:
    return FakeBackend(Resources(cpus=n, memory_mb=0, gpus=0))


def test_runs_fill_the_first_backend_then_the_next(store, clock, make_scheduler, submit) -> None:
    first, second = _cpus(2), _cpus(1)
    exp = submit([1, 2, 3, 4], parallel=4, backend=["first", "second"])
    step(make_scheduler({"first": first, "second": second}), clock)
    runs = runs_of(store, exp)
    assert [r.backend for r in runs] == ["first", "first", "second", None]  # where each went; the last waits
    assert [r.status for r in runs] == ["starting"] * 3 + ["queued"]
    assert {j.run_id for j in first.active()} == {runs[0].id, runs[1].id}
    assert [j.run_id for j in second.active()] == [runs[2].id]
    assert store.get_experiment(exp).backend == "first,second"


def test_a_freed_slot_on_the_first_backend_is_used_first(store, clock, make_scheduler, submit) -> None:
    first, second = _cpus(1), _cpus(1)
    exp = submit([1, 2, 3], parallel=3, backend=["first", "second"])
    sched = make_scheduler({"first": first, "second": second})
    step(sched, clock)
    done, elsewhere, waiting = runs_of(store, exp)
    store.set_run_status(done.id, "running")
    store.set_run_status(done.id, "succeeded")
    first.finish(done.id, 0)
    step(sched, clock)
    assert store.get_run(waiting.id).backend == "first"
    assert store.get_run(elsewhere.id).backend == "second"


def test_a_backend_without_capacity_counts_as_having_room(store, clock, make_scheduler, submit) -> None:
    queues, spare = FakeBackend(None), _cpus(8)
    exp = submit([1, 2, 3], parallel=3, backend=["queues", "spare"])
    step(make_scheduler({"queues": queues, "spare": spare}), clock)
    assert [r.backend for r in runs_of(store, exp)] == ["queues"] * 3
    assert not spare.submits


def test_parallel_holds_across_backends(store, clock, make_scheduler, submit) -> None:
    first, second = _cpus(1), _cpus(8)
    exp = submit([1, 2, 3, 4], parallel=2, backend=["first", "second"])
    step(make_scheduler({"first": first, "second": second}), clock)
    assert [r.backend for r in runs_of(store, exp)] == ["first", "second", None, None]


def test_each_backend_polls_its_own_jobs_and_a_restart_may_move(store, clock, make_scheduler, submit) -> None:
    first, second = _cpus(1), _cpus(1)
    exp = submit([1, 2], parallel=2, backend=["first", "second"], max_restarts=1)
    sched = make_scheduler({"first": first, "second": second})
    step(sched, clock)
    a, b = runs_of(store, exp)
    assert (a.backend, b.backend) == ("first", "second")
    second.start(b.id)
    first.lose(a.id)  # only the first engine forgets its job
    step(sched, clock)
    # a failed as lost and restarted: the first backend has room again, so attempt 2 runs there too
    a, b = store.get_run(a.id), store.get_run(b.id)
    assert (a.status, a.attempt, a.backend) == ("starting", 2, "first")
    assert (b.status, b.attempt) == ("starting", 1)
    assert first.submits == {(a.id, 1): 1, (a.id, 2): 1} and second.submits == {(b.id, 1): 1}


def test_an_unavailable_backend_is_passed_over(store, clock, make_scheduler, submit) -> None:
    spare = _cpus(4)
    exp = submit([1], backend=["gone", "spare"])
    step(make_scheduler({"spare": spare}), clock)
    (run,) = runs_of(store, exp)
    assert (run.status, run.backend) == ("starting", "spare")


def test_the_run_fails_when_no_listed_backend_is_available(store, clock, make_scheduler, submit) -> None:
    exp = submit([1], backend=["gone", "lost"])
    step(make_scheduler({"spare": _cpus(4)}), clock)
    (run,) = runs_of(store, exp)
    assert run.status == "failed"
    assert run.status_message.startswith("no backend of gone, lost is available: 'gone': No backend named 'gone'")
