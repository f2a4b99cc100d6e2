"""Store contract: project tags (set, overwrite, remove, the project list's tag filter, bad input, migration 0005)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from runyard.errors import InvalidInput, NotFound
from runyard.store import Store, TagFilter, make_engine, parse_tag_filter, upgrade
from runyard.store._migrate import current_revision, head_revision


def _names(store: Store, *filters: str, q: str | None = None) -> list[str]:
    return [p.name for p in store.list_projects(q, tags=[parse_tag_filter(f) for f in filters])]


def test_set_overwrite_remove(store: Store) -> None:
    created = store.create_project("vision")
    assert created.tags == {}
    tagged = store.set_project_tags("vision", {"problem": "classification", "benchmark": ""})
    assert tagged.tags == {"benchmark": "", "problem": "classification"}
    assert list(tagged.tags) == ["benchmark", "problem"]  # sorted by key
    assert tagged.updated_at >= created.updated_at
    assert store.get_project("vision") == tagged
    assert store.set_project_tags("vision", {"problem": "detection"}).tags == {"benchmark": "", "problem": "detection"}
    assert store.set_project_tags("vision", {"problem": "detection"}).tags["problem"] == "detection"  # idempotent
    both = store.set_project_tags("vision", {"team": "cv"}, remove=["benchmark"])
    assert both.tags == {"problem": "detection", "team": "cv"}
    assert store.set_project_tags("vision", {}, remove=["problem", "team"]).tags == {}
    assert store.list_projects()[0].tags == {}


def test_tags_are_per_project_and_listed(store: Store) -> None:
    store.create_project("a")
    store.create_project("b")
    store.create_project("c")
    store.set_project_tags("a", {"problem": "classification", "benchmark": ""})
    store.set_project_tags("b", {"problem": "regression"})
    assert {p.name: p.tags for p in store.list_projects()} == {
        "a": {"benchmark": "", "problem": "classification"}, "b": {"problem": "regression"}, "c": {}}


def test_list_filters_by_tag(store: Store) -> None:
    for name in ("digits", "houses", "iris", "notes"):
        store.create_project(name)
    store.set_project_tags("digits", {"problem": "classification", "benchmark": "", "data": "mnist:v2"})
    store.set_project_tags("iris", {"problem": "classification"})
    store.set_project_tags("houses", {"problem": "regression", "benchmark": ""})
    assert _names(store, "problem") == ["digits", "houses", "iris"]
    assert _names(store, "problem:classification") == ["digits", "iris"]
    assert _names(store, "problem=classification") == ["digits", "iris"]  # the CLI's form
    assert _names(store, "problem: classification") == ["digits", "iris"]  # spaces around ':' ignored
    assert _names(store, "benchmark") == ["digits", "houses"]
    assert _names(store, "benchmark:") == ["digits", "houses"]  # the empty value of a plain label
    assert _names(store, "problem:classification", "benchmark") == ["digits"]  # every filter must match
    assert _names(store, "data:mnist:v2") == ["digits"]  # the first ':' ends the key
    assert _names(store, "problem:Classification") == []  # values match exactly
    assert _names(store, "problem:class") == []  # and whole
    assert _names(store, "missing") == []
    assert _names(store, "problem", q="dig") == ["digits"]  # with the name search


def test_parse_tag_filter() -> None:
    assert parse_tag_filter("problem") == TagFilter("problem")
    assert parse_tag_filter("problem:classification") == TagFilter("problem", "classification")
    assert parse_tag_filter("problem=a=b") == TagFilter("problem", "a=b")
    assert parse_tag_filter("url:http://x") == TagFilter("url", "http://x")
    assert parse_tag_filter("gpu:") == TagFilter("gpu", "")
    for bad in ("", ":classification", "=x", "a b:c", "ünï", "x" * 65):
        with pytest.raises(InvalidInput, match="A tag filter is KEY or KEY:VALUE") as info:
            parse_tag_filter(bad)
        assert info.value.code == "invalid_input" and "problem:classification (or problem=classification)" in (info.value.hint or ""), bad


BAD_KEYS = ["", "-lead", "a b", "a:b", "a=b", "a/b", "x" * 65, "ünï", "a\nb", "a\x00"]
BAD_VALUES = ["x" * 257, "two\nlines", "nul\x00", " padded", "padded "]


def test_bad_keys_and_values_change_nothing(store: Store) -> None:
    store.create_project("p")
    store.set_project_tags("p", {"keep": "me"})
    for key in BAD_KEYS:
        with pytest.raises(InvalidInput, match="A project tag key must be 1-64 letters") as info:
            store.set_project_tags("p", {"ok": "1", key: "v"})
        assert info.value.hint, key
        with pytest.raises(InvalidInput, match="A project tag key must be"):
            store.set_project_tags("p", {}, remove=[key])
    for value in BAD_VALUES:
        with pytest.raises(InvalidInput, match="The value of project tag 'ok' must") as info:
            store.set_project_tags("p", {"ok": value})
        assert info.value.hint, value
    with pytest.raises(InvalidInput, match="must be text"):
        store.set_project_tags("p", {"ok": 1})  # type: ignore[dict-item]
    assert store.get_project("p").tags == {"keep": "me"}
    # The limits themselves are fine.
    assert store.set_project_tags("p", {"k" * 64: "v" * 256, "A1._-": ""}).tags["k" * 64] == "v" * 256


def test_errors_name_the_problem(store: Store) -> None:
    store.create_project("p")
    store.set_project_tags("p", {"a": "1", "b": "2"})
    with pytest.raises(NotFound, match="Project 'p' has no tag 'c'") as info:
        store.set_project_tags("p", {"d": "4"}, remove=["a", "c"])
    assert info.value.hint == "Its tags are: a, b."
    assert store.get_project("p").tags == {"a": "1", "b": "2"}  # nothing changed, not even d or a
    with pytest.raises(InvalidInput, match="'a' is both set and removed"):
        store.set_project_tags("p", {"a": "9"}, remove=["a"])
    with pytest.raises(NotFound, match="No project named 'ghost'"):
        store.set_project_tags("ghost", {"a": "1"})
    store.create_project("bare")
    with pytest.raises(NotFound, match="has no tag 'a'") as info:
        store.set_project_tags("bare", {}, remove=["a"])
    assert info.value.hint == "It has no tags."


def test_at_most_50_tags(store: Store) -> None:
    store.create_project("p")
    store.set_project_tags("p", {f"t{i}": "" for i in range(50)})
    with pytest.raises(InvalidInput, match="at most 50 tags, and 'p' would have 51"):
        store.set_project_tags("p", {"one-more": ""})
    assert len(store.set_project_tags("p", {"one-more": ""}, remove=["t0"]).tags) == 50  # a swap fits


def test_concurrent_tag_writes(store: Store) -> None:
    store.create_project("p")
    errors: list[BaseException] = []

    def write(rank: int) -> None:
        try:
            for i in range(5):
                store.set_project_tags("p", {f"t{i}": str(rank), "writer": str(rank)})
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(r,)) for r in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    tags = store.get_project("p").tags
    assert set(tags) == {"writer", *(f"t{i}" for i in range(5))}
    assert tags["writer"] in {"0", "1", "2", "3"}


def test_migration_0005_adds_tags_to_existing_projects(empty_database: None, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert upgrade(engine, "0004") == "0004"
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (id, name, description, visibility, created_at, updated_at) "
                              "VALUES (1, 'old', 'before tags', 'private', 0, 0)"))
    finally:
        engine.dispose()
    store = Store.open(db_url)  # applies 0005
    try:
        assert current_revision(store.engine) == head_revision() >= "0005"
        assert store.get_project("old").tags == {}
        assert store.set_project_tags("old", {"problem": "classification"}).tags == {"problem": "classification"}
        assert _names(store, "problem:classification") == ["old"]
    finally:
        store.close()
    engine = make_engine(db_url)
    try:
        from alembic import command

        from runyard.store._migrate import _config

        command.downgrade(_config(engine), "0004")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM projects")).scalars().all() == ["old"]
        assert upgrade(engine) == head_revision()  # and up again
    finally:
        engine.dispose()
