"""Project tags under access control: editors write, viewers read, and the tag filter lists only visible projects."""

from __future__ import annotations

import pytest
from auth_helpers import World

from runyard.errors import Forbidden, NotFound


def test_viewer_reads_tags_but_cannot_set_them(world: World) -> None:
    with world.client("editor") as bob:
        assert bob.set_project_tags(world.project, {"stage": "auth-test"})["tags"]["stage"] == "auth-test"
    with world.client("viewer") as carol:
        assert carol.get_project(world.project)["tags"]["stage"] == "auth-test"
        with pytest.raises(Forbidden, match="carol is a viewer of project .priv.; this needs editor") as info:
            carol.set_project_tags(world.project, {"stage": "mine"})
        assert info.value.code == "forbidden"
        with pytest.raises(Forbidden):
            carol.set_project_tags(world.project, remove=["stage"])
    with world.client("stranger") as dave, pytest.raises(NotFound, match="No project named 'priv'"):  # may not even see it
        dave.set_project_tags(world.project, {"stage": "mine"})
    with world.client("owner") as alice:
        assert alice.get_project(world.project)["tags"]["stage"] == "auth-test"
        alice.set_project_tags(world.project, remove=["stage"])


def test_tag_filter_lists_only_visible_projects(world: World) -> None:
    with world.client("stranger") as dave:
        dave.create_project("daves", tags={"problem": "auth-filter"})
    with world.client("owner") as alice:
        alice.set_project_tags(world.project, {"problem": "auth-filter"})
        assert [p["name"] for p in alice.list_projects(tags=["problem:auth-filter"])] == [world.project]
    with world.client("stranger") as dave:
        assert [p["name"] for p in dave.list_projects(tags=["problem:auth-filter"])] == ["daves"]
    with world.admin() as admin:
        assert [p["name"] for p in admin.list_projects(tags=["problem:auth-filter"])] == ["daves", world.project]
    with world.client("owner") as alice:
        alice.set_project_tags(world.project, remove=["problem"])
