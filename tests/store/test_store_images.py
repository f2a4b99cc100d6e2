"""The images runs ran in, read from their runyard.image* tags, on SQLite and PostgreSQL."""

from __future__ import annotations

from runyard.store import Store


def _ran_in(store: Store, project: str, ref: str, image_id: str, **more: str) -> int:
    run = store.create_run(project, tags={"runyard.image": ref, "runyard.image.id": image_id,
                                          "runyard.image.runtime": "podman", **more})
    return run.id


def test_images_group_runs_by_image_and_keep_to_the_projects_a_user_may_see(store: Store) -> None:
    built = _ran_in(store, "vision", "localhost/runyard-build:aa", "sha256:" + "a" * 64,
                    **{"runyard.image.build": "aa", "runyard.image.built_on": "gpu1", "runyard.image.build_s": "12.5"})
    _ran_in(store, "vision", "localhost/runyard-build:aa", "sha256:" + "a" * 64, **{"runyard.image.build": "aa"})
    other = _ran_in(store, "nlp", "python:3.11-slim", "sha256:" + "b" * 64)
    store.create_run("vision", tags={"note": "no image"})

    images = {i["image"]: i for i in store.list_images()}
    assert set(images) == {"localhost/runyard-build:aa", "python:3.11-slim"}
    aa = images["localhost/runyard-build:aa"]
    assert (aa["runs"], aa["built_on"], aa["built_by_run"], aa["build_s"], aa["projects"]) == (2, ["gpu1"], built, 12.5,
                                                                                                ["vision"])
    assert images["python:3.11-slim"]["last_run"] == other

    vision_id = store.get_project("vision").id
    assert [i["image"] for i in store.list_images(project_ids=[vision_id])] == ["localhost/runyard-build:aa"]
    assert [i["image"] for i in store.list_images(project="nlp")] == ["python:3.11-slim"]
    assert store.list_images(project_ids=[]) == []
