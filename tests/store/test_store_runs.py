"""Store contract: migrations, projects, experiments, runs, params, tags, statuses and run events."""

from __future__ import annotations

import threading

import pytest

from runyard.errors import Conflict, InvalidInput, InvalidState, NotFound, RunyardError
from runyard.store import (
    RUN_STATUSES,
    TERMINAL_STATUSES,
    Store,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)

# ------------------------------------------------------------------ migrations


def test_migrations_apply_on_empty_db_and_are_idempotent(empty_database: None, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        assert upgrade(engine) == head_revision()
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()

    first = Store.open(db_url)
    project = first.create_project("kept")
    first.close()
    second = Store.open(db_url)  # a second start migrates nothing and keeps the data
    try:
        assert current_revision(second.engine) == head_revision() != ""
        assert second.get_project("kept").id == project.id
    finally:
        second.close()


def test_unmigrated_database_names_the_upgrade_command(empty_database: None, db_url: str) -> None:
    store = Store.open(db_url, migrate=False)
    try:
        with pytest.raises(RunyardError, match="no Runyard tables") as info:
            store.list_projects()
        assert "runyard db upgrade" in (info.value.hint or "")
    finally:
        store.close()


# -------------------------------------------------------------------- projects


def test_project_crud(store: Store) -> None:
    created = store.create_project("vision", description="image models")
    assert (created.name, created.description, created.visibility) == ("vision", "image models", "private")
    assert (created.n_runs, created.n_experiments) == (0, 0)
    assert store.find_project("nope") is None
    assert store.get_project("vision") == created

    store.create_project("nlp")
    assert [p.name for p in store.list_projects()] == ["nlp", "vision"]
    assert [p.name for p in store.list_projects("vis")] == ["vision"]

    updated = store.update_project("vision", description="cnn", visibility="public")
    assert (updated.description, updated.visibility) == ("cnn", "public")

    store.create_run("vision")
    store.create_experiment("vision", "sweep")
    counted = store.get_project("vision")
    assert (counted.n_runs, counted.n_experiments) == (1, 1)
    assert counted.last_activity_at is not None

    assert store.ensure_project("vision").id == created.id
    assert store.ensure_project("fresh").name == "fresh"


BAD_PROJECT_NAMES = ["", "Vision", "-lead", "a b", "x" * 65, "ünï", "a/b", "a\nb"]


def test_project_name_validation(store: Store) -> None:
    for name in BAD_PROJECT_NAMES:
        with pytest.raises(InvalidInput, match="lowercase letters, digits") as info:
            store.create_project(name)
        assert info.value.code == "invalid_input" and info.value.hint, name
    with pytest.raises(InvalidInput, match="lowercase letters, digits"):
        store.create_run("Bad Project")  # creating a run in a new project validates its name too
    assert store.list_projects() == []
    assert store.create_project("x" * 64).name == "x" * 64


def test_project_errors(store: Store) -> None:
    store.create_project("dup")
    with pytest.raises(Conflict, match="already exists") as info:
        store.create_project("dup")
    assert info.value.code == "conflict"
    with pytest.raises(NotFound, match="No project named 'ghost'") as nf:
        store.get_project("ghost")
    assert nf.value.code == "not_found"
    with pytest.raises(NotFound):
        store.update_project("ghost", description="x")
    with pytest.raises(InvalidInput, match="visibility must be private or public"):
        store.update_project("dup", visibility="secret")
    with pytest.raises(InvalidInput, match="visibility must be private or public"):
        store.create_project("other", visibility="secret")


# ------------------------------------------------------------------------ runs


def test_create_run_records_params_tags_and_first_event(store: Store) -> None:
    run = store.create_run("p", params={"lr": 0.1, "opt": "adam", "layers": [64, 32]}, tags={"team": "vision"})
    assert run.project == "p"
    assert run.status == "running" and run.started_at is not None
    assert run.name == f"run-{run.id}"
    assert run.params == {"lr": 0.1, "opt": "adam", "layers": [64, 32]}
    assert run.tags == {"team": "vision"}
    assert [(e.status, e.attempt) for e in run.events] == [("running", 1)]
    assert store.get_run(run.id) == run

    queued = store.create_run("p", name="named", status="queued")
    assert (queued.name, queued.status, queued.started_at) == ("named", "queued", None)

    with pytest.raises(InvalidInput, match="Unknown run status 'done'"):
        store.create_run("p", status="done")
    with pytest.raises(NotFound, match="No run with id 999999") as info:
        store.get_run(999_999)
    assert "runyard ls" in (info.value.hint or "")
    assert store.find_run(999_999) is None


def test_runs_of_an_experiment_are_numbered(store: Store) -> None:
    exp = store.create_experiment("p", "sweep", config={"search": "grid"})
    numbers = [store.create_run("p", experiment_id=exp.id, status="queued").number for _ in range(3)]
    assert numbers == [0, 1, 2]
    got = store.get_experiment(exp.id)
    assert got.counts == {"queued": 3} and got.config == {"search": "grid"}
    assert [e.id for e in store.list_experiments("p")] == [exp.id]
    ended = store.set_experiment_status(exp.id, "canceled", "by test")
    assert (ended.status, ended.message) == ("canceled", "by test") and ended.ended_at is not None
    with pytest.raises(NotFound, match="No experiment with id 424242"):
        store.get_experiment(424242)


def test_params_same_value_is_idempotent_changed_value_conflicts(store: Store) -> None:
    run = store.create_run("p", params={"lr": 0.1})
    again = store.log_params(run.id, {"lr": 0.1, "batch": 32})
    assert again.params == {"lr": 0.1, "batch": 32}
    assert store.log_params(run.id, {"lr": 0.1}).params == again.params

    with pytest.raises(Conflict, match=r"Param 'lr' of run \d+ is already 0.1; it cannot change to 0.2") as info:
        store.log_params(run.id, {"lr": 0.2})
    assert info.value.code == "conflict" and info.value.hint
    # The failed call stored nothing, not even its other keys.
    with pytest.raises(Conflict):
        store.log_params(run.id, {"new": 1, "lr": 0.3})
    assert store.get_run(run.id).params == {"lr": 0.1, "batch": 32}

    with pytest.raises(InvalidInput, match="not JSON"):
        store.log_params(run.id, {"bad": float("nan")})
    with pytest.raises(InvalidInput, match="param name must be 1-250 characters"):
        store.log_params(run.id, {"k" * 251: 1})
    with pytest.raises(InvalidInput, match="param name"):
        store.log_params(run.id, {"two\nlines": 1})
    with pytest.raises(NotFound):
        store.log_params(999_999, {"lr": 0.1})


def test_tags_set_overwrite_delete(store: Store) -> None:
    run = store.create_run("p", tags={"team": "vision"})
    assert store.set_tags(run.id, {"team": "nlp", "stage": "dev"}).tags == {"team": "nlp", "stage": "dev"}
    assert store.delete_tag(run.id, "stage").tags == {"team": "nlp"}
    with pytest.raises(NotFound, match="has no tag 'stage'"):
        store.delete_tag(run.id, "stage")
    with pytest.raises(InvalidInput, match="tag name"):
        store.set_tags(run.id, {"": "x"})
    long_value = "v" * 10_000  # values are free text, only names are limited
    assert store.set_tags(run.id, {"note": long_value}).tags["note"] == long_value
    with pytest.raises(NotFound):
        store.set_tags(999_999, {"a": "b"})


# -------------------------------------------------------------------- statuses


def test_valid_status_path_records_events(store: Store) -> None:
    run = store.create_run("p", status="queued")
    store.set_run_status(run.id, "starting", engine_job_id="job-7")
    running = store.set_run_status(run.id, "running")
    assert running.started_at is not None and running.engine_job_id == "job-7"
    done = store.set_run_status(run.id, "succeeded", message="exit 0", exit_code=0)
    assert (done.status, done.exit_code, done.status_message) == ("succeeded", 0, "exit 0")
    assert done.ended_at is not None
    assert [e.status for e in done.events] == ["queued", "starting", "running", "succeeded"]
    assert done.events[-1].message == "exit 0"
    assert [e.ts for e in done.events] == sorted(e.ts for e in done.events)


def test_terminal_status_is_final(store: Store) -> None:
    for terminal in sorted(TERMINAL_STATUSES):
        run = store.create_run("p")
        store.set_run_status(run.id, terminal)
        for target in RUN_STATUSES:
            if target == terminal:
                continue
            with pytest.raises(InvalidState, match=f"is {terminal} and cannot become {target}") as info:
                store.set_run_status(run.id, target)
            assert info.value.code == "invalid_state"
            assert isinstance(info.value, Conflict)
        # The same status again is a no-op that records no new event.
        again = store.set_run_status(run.id, terminal)
        assert [e.status for e in again.events] == ["running", terminal]


def test_compare_and_set_expect(store: Store) -> None:
    run = store.create_run("p", status="queued")
    with pytest.raises(InvalidState, match="is queued, not running"):
        store.set_run_status(run.id, "canceled", expect=["running"])
    assert store.get_run(run.id).status == "queued"
    assert store.set_run_status(run.id, "starting", expect=["queued"]).status == "starting"
    # A second scheduler pass that expected `queued` loses the race.
    with pytest.raises(InvalidState):
        store.set_run_status(run.id, "starting", expect=["queued"])


def test_compare_and_set_lets_exactly_one_of_many_threads_win(store: Store) -> None:
    run = store.create_run("p", status="queued")
    wins: list[int] = []
    losses: list[int] = []
    barrier = threading.Barrier(6)

    def start(i: int) -> None:
        barrier.wait()
        try:
            store.set_run_status(run.id, "starting", expect=["queued"])
            wins.append(i)
        except InvalidState:
            losses.append(i)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 5
    assert [e.status for e in store.get_run(run.id).events] == ["queued", "starting"]


def test_status_errors(store: Store) -> None:
    run = store.create_run("p")
    with pytest.raises(InvalidInput, match="Unknown run status 'finished'") as info:
        store.set_run_status(run.id, "finished")
    assert "succeeded" in (info.value.hint or "")
    with pytest.raises(NotFound):
        store.set_run_status(999_999, "failed")
