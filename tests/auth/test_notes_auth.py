"""Run notes and media lists under access control: editors write notes, viewers read, strangers see nothing."""

from __future__ import annotations

import pytest
from auth_helpers import World

from runyard.errors import Forbidden, NotFound


def test_editors_and_the_run_write_notes_viewers_only_read(world: World) -> None:
    with world.client("editor") as bob:
        note = bob.set_note(world.run_id, "bob's **finding**")
        assert note["updated_by"] == "bob"
    with world.client("viewer") as carol:
        assert carol.get_note(world.run_id)["text"] == "bob's **finding**"
        with pytest.raises(Forbidden) as e:
            carol.set_note(world.run_id, "carol was here")
        assert "carol is a viewer of project 'priv'; this needs editor" in e.value.message
        assert carol.list_run_images(world.run_id) == [] and isinstance(carol.list_tables(world.run_id), list)
    with world.client("stranger") as dave:
        with pytest.raises(NotFound):  # a private project's run is not even confirmed
            dave.get_note(world.run_id)
        with pytest.raises(NotFound):
            dave.set_note(world.run_id, "x")
    with world.client("run") as run:
        assert run.set_note(world.run_id, "from the run")["updated_by"] == f"run:{world.run_id}"
        with pytest.raises(Forbidden):  # its own run only
            run.set_note(world.other_run_id, "x")
    with world.client("owner") as alice:
        assert alice.get_note(world.run_id)["text"] == "from the run"
        # Carol's attempt left nothing behind.
        assert alice.get_note(world.other_run_id)["text"] == ""
