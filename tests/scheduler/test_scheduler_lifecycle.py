"""After dispatch: outcomes from the engine, restarts per max_restarts, lost jobs, experiments ending."""

from __future__ import annotations

from sched_helpers import runs_of, step


def _dispatch_all(sched, clock, store, exp):
    step(sched, clock)
    return runs_of(store, exp)


def test_an_exit_code_the_runner_did_not_report_is_recorded_after_the_grace(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1])
    sched = make_scheduler()
    (run,) = _dispatch_all(sched, clock, store, exp)
    fake.start(run.id)
    fake.finish(run.id, exit_code=3)
    step(sched, clock)
    assert store.get_run(run.id).status == "starting"  # the runner gets time to report it itself
    step(sched, clock, 11.0)
    run = store.get_run(run.id)
    assert (run.status, run.exit_code) == ("failed", 3)
    assert "exit code 3" in run.status_message


def test_a_failed_run_restarts_with_the_same_id_until_max_restarts(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1], max_restarts=2)
    sched = make_scheduler()
    (run,) = _dispatch_all(sched, clock, store, exp)
    for attempt in (1, 2, 3):
        assert fake.submits[(run.id, attempt)] == 1
        fake.start(run.id, attempt)
        fake.finish(run.id, exit_code=1, attempt=attempt)
        step(sched, clock)  # the engine's failure is seen: the runner gets time to report it itself
        step(sched, clock, 11.0)  # recorded now; the restart follows in the pass's next round
        now = store.get_run(run.id)
        if attempt < 3:
            assert (now.id, now.status, now.attempt) == (run.id, "starting", attempt + 1)
            assert f"attempt {attempt + 1} of 3" in [e.message for e in now.events if e.status == "queued"][-1]
    assert store.get_run(run.id).status == "failed"
    assert fake.submits == {(run.id, 1): 1, (run.id, 2): 1, (run.id, 3): 1}  # no fourth attempt
    for _ in range(3):
        step(sched, clock)
    assert len(fake.submits) == 3
    assert store.get_experiment(exp).status == "failed"
    assert len(runs_of(store, exp)) == 1


def test_no_restart_without_max_restarts(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1])
    sched = make_scheduler()
    (run,) = _dispatch_all(sched, clock, store, exp)
    store.set_run_status(run.id, "running")
    store.set_run_status(run.id, "failed", exit_code=2)  # the runner reports the failure
    fake.finish(run.id, exit_code=2)
    step(sched, clock)
    step(sched, clock)
    assert store.get_run(run.id).attempt == 1 and len(fake.submits) == 1
    assert store.get_experiment(exp).status == "failed"


def test_a_restart_waits_until_the_engine_confirms_the_old_attempt_ended(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1], max_restarts=1)
    sched = make_scheduler()
    (run,) = _dispatch_all(sched, clock, store, exp)
    fake.start(run.id)
    store.set_run_status(run.id, "running")
    store.set_run_status(run.id, "failed")  # reported failed while the engine still runs the job
    step(sched, clock)
    assert store.get_run(run.id).attempt == 1
    assert fake.canceled == [fake.job(run.id).job_id]  # follow stops the job of a failed run
    step(sched, clock)
    assert (store.get_run(run.id).attempt, fake.submits[(run.id, 2)]) == (2, 1)


def test_a_lost_job_fails_the_run_at_once(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1, 2])
    sched = make_scheduler()
    lost, kept = _dispatch_all(sched, clock, store, exp)
    fake.start(lost.id)
    fake.start(kept.id)
    fake.lose(lost.id)
    step(sched, clock)
    run = store.get_run(lost.id)
    assert run.status == "failed"
    assert "disappeared" in run.status_message and "no record" in run.status_message
    assert store.get_run(kept.id).status == "starting"
    assert len(fake.submits) == 2


def test_a_lost_job_is_restarted_when_allowed(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1], max_restarts=1)
    sched = make_scheduler()
    (run,) = _dispatch_all(sched, clock, store, exp)
    fake.start(run.id)
    fake.lose(run.id)
    step(sched, clock)  # lost → failed, then restarted
    step(sched, clock)
    now = store.get_run(run.id)
    assert (now.id, now.status, now.attempt) == (run.id, "starting", 2)
    assert fake.submits == {(run.id, 1): 1, (run.id, 2): 1}


def test_a_canceled_run_has_its_job_canceled(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1])
    sched = make_scheduler()
    (run,) = _dispatch_all(sched, clock, store, exp)
    fake.start(run.id)
    store.set_run_status(run.id, "canceled")
    step(sched, clock)
    assert fake.canceled == [fake.job(run.id).job_id]
    step(sched, clock)
    assert fake.canceled == [fake.job(run.id).job_id]  # ended now: not canceled again


def test_the_engines_reason_becomes_the_runs_message(store, clock, fake, make_scheduler, submit) -> None:
    from runyard.backends.base import EngineState, EngineStatus

    exp = submit([1])
    sched = make_scheduler()
    (run,) = _dispatch_all(sched, clock, store, exp)
    fake.job(run.id).state = EngineState(EngineStatus.PENDING, reason="pending: Resources", raw="PENDING")
    step(sched, clock)
    assert store.get_run(run.id).status_message == "pending: Resources"


def test_the_experiment_fails_when_one_of_its_runs_failed(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1, 2, 3], parallel=3)
    sched = make_scheduler()
    runs = _dispatch_all(sched, clock, store, exp)
    for run in runs[:2]:
        store.set_run_status(run.id, "running")
        store.set_run_status(run.id, "succeeded")
        fake.finish(run.id, 0)
    step(sched, clock)
    assert store.get_experiment(exp).status == "running"  # one run still active
    store.set_run_status(runs[2].id, "running")
    store.set_run_status(runs[2].id, "failed", exit_code=1)
    fake.finish(runs[2].id, 1)
    step(sched, clock)
    done = store.get_experiment(exp)
    # One failed run (no restarts left) fails the experiment; the summary says how many.
    assert (done.status, done.message) == ("failed", "1 of 3 runs failed")


def test_the_experiment_ends_from_engine_outcomes_alone(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1, 2])
    sched = make_scheduler()
    runs = _dispatch_all(sched, clock, store, exp)
    for run in runs:
        fake.finish(run.id, 0)
    step(sched, clock)
    step(sched, clock, 11.0)
    assert [store.get_run(r.id).status for r in runs] == ["succeeded", "succeeded"]
    assert store.get_experiment(exp).status == "succeeded"


def test_queued_runs_of_a_canceled_experiment_are_canceled(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1, 2, 3], parallel=1)
    sched = make_scheduler()
    runs = _dispatch_all(sched, clock, store, exp)
    store.set_experiment_status(exp, "canceled", "canceled by the user")
    step(sched, clock)
    assert [store.get_run(r.id).status for r in runs[1:]] == ["canceled", "canceled"]
    assert len(fake.submits) == 1
