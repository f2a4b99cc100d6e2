"""BackendPool with backend instances, and the scheduler's lifecycle around them."""

from __future__ import annotations

import pytest

from runyard.errors import SpecError
from runyard.scheduler import BackendPool
from runyard.testing import FakeBackend


def test_a_pool_of_instances_holds_only_those() -> None:
    a, b = FakeBackend(), FakeBackend()
    pool = BackendPool(instances={"a": a, "b": b})
    assert pool.get("a") is a and pool.get("b") is b
    assert sorted(pool.entries()) == ["a", "b"] and pool.entries()["a"].type == "fake"
    assert pool.built() == {"a": a, "b": b}
    with pytest.raises(SpecError, match="No backend named 'local'") as err:
        pool.get("local")
    assert "Configured backends: a, b." in err.value.message
    pool.close()
    assert a.closed and b.closed


def test_instances_join_configured_entries() -> None:
    fake = FakeBackend()
    pool = BackendPool({"other": {"type": "local"}}, instances={"fake": fake})
    assert sorted(pool.entries()) == ["fake", "local", "other"]
    assert pool.get("fake") is fake
    assert pool.built() == {"fake": fake}  # the configured ones are built on first use only


def test_check_asks_the_instance(make_scheduler, submit) -> None:
    from runyard.backends.base import Feature
    from runyard.spec import validate_config

    refusing = FakeBackend(unsupported={Feature.MULTI_TASK: "one task per job"})
    pool = BackendPool(instances={"r": refusing})
    spec = validate_config({"project": "p", "command": "python t.py", "backend": "r",
                            "distributed": {"framework": "pytorch", "worker": 2}})
    with pytest.raises(SpecError, match="cannot run this experiment: multi_task: one task per job"):
        pool.check("r", spec)


class _Agent(FakeBackend):
    def __init__(self) -> None:
        super().__init__()
        self.warmed = self.stopped = 0

    def warm(self) -> None:
        self.warmed += 1

    def stop_if_idle(self) -> bool:
        self.stopped += 1
        return True


def test_stop_releases_the_lease_and_stops_idle_backends(store, clock, make_scheduler) -> None:
    agent = _Agent()
    sched = make_scheduler({"local": agent})
    sched.tick()
    assert sched.is_leader
    sched.stop()
    assert not sched.is_leader and agent.stopped == 1 and agent.closed
    other = make_scheduler({"local": FakeBackend()})
    other.tick()
    assert other.is_leader  # released: no wait for the lease to lapse


def test_the_loop_waits_on_the_clock(store, clock, make_scheduler) -> None:
    """Driven by its own thread, the scheduler waits through the injected clock (the fake one never blocks)."""
    import threading

    agent = _Agent()
    sched = make_scheduler({"local": agent}, tick_s=5.0, warm_backends=True)
    started = clock.monotonic()
    passes = threading.Event()
    real_tick = sched.tick

    def tick() -> None:
        real_tick()
        if clock.monotonic() - started >= 50:
            passes.set()
            sched._stop.set()

    sched.tick = tick  # type: ignore[method-assign]
    sched.start()
    assert passes.wait(10)
    sched.stop()
    assert clock.monotonic() - started >= 50  # ten waits of tick_s, none slept
