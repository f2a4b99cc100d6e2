"""runyard.yml's models: the registered model versions each run uses, and the errors that name the bad key or URI;
the launch carries them to every backend (its wire form, the snapshots SSH and Slurm stage)."""

from __future__ import annotations

import dataclasses

import pytest

from runyard.errors import SpecError
from runyard.spec import parse_spec, validate_config

BASE = "project: p\ncommand: python train.py\n"


def _error(text: str) -> str:
    with pytest.raises(SpecError) as e:
        parse_spec(BASE + text)
    return e.value.message


def test_models_map_names_to_uris_kept_through_the_stored_config() -> None:
    spec = parse_spec(BASE + "models: {base: models:/digits@production, teacher: \"models:/other-project/bert/3\", "
                             "last: models:/digits, x.y-z: models:/digits/latest}\n")
    assert spec.models == {"base": "models:/digits@production", "teacher": "models:/other-project/bert/3",
                           "last": "models:/digits/latest", "x.y-z": "models:/digits/latest"}
    config = spec.to_config()
    assert config["models"] == spec.models
    assert validate_config(config).models == spec.models
    # As the server stores it after pinning: a number, qualified.
    assert validate_config({**config, "models": {"base": "models:/p/digits/1"}}).models == {"base": "models:/p/digits/1"}
    assert parse_spec(BASE).models == {}
    assert parse_spec(BASE + "models: {}\n").models == {}


@pytest.mark.parametrize(("text", "expected"), [
    ("models: {base: 3}\n", "runyard.yml:3: models maps base to 3, but the value is a model URI"),
    ("models: {base: digits/3}\n", "models maps base to 'digits/3', which is not a model URI"),
    ("models: {base: 'models:/'}\n", "names no model"),
    ("models: {base: 'models:/digits/0'}\n", "models maps base to 'models:/digits/0'"),
    ("models: {base: 'models:/digits@latest'}\n", "models maps base to"),
    ("models: {base: 'models:/a/b/c/1'}\n", "which is not a model URI"),
    ("models: {base: ''}\n", "which is not a model URI"),
    ("models: {'1x': models:/d/1}\n", "models has the name '1x', but each name is 1-64 letters"),
    ("models: {'a b': models:/d/1}\n", "models has the name 'a b'"),
    (f"models: {{{'n' * 65}: models:/d/1}}\n", "models has the name"),
    ("models: {a-b: models:/d/1, a_b: models:/d/2}\n", "names both 'a-b' and 'a_b', which share the variable RUNYARD_MODEL_A_B"),
    ("models: [models:/d/1]\n", "models must be a mapping from a name to a model URI"),
    ("models: models:/d/1\n", "models must be a mapping from a name to a model URI"),
    ("models: {base: models:/d/1}\nmounts: {models/base: /data}\n", "mounts has the path 'models/base'"),
    ("models: {base: models:/d/1}\nmounts: {models: /data}\n", "mounts has the path 'models'"),
    ("models: {base: \"models:/d\\0\"}\n", "models.base holds a NUL character"),
    ("models: {base: \"models:/d\\ud800\"}\n", "models.base holds"),
    ("models: {base: 'models:/d" + "x" * 600 + "'}\n", "longer than 512 characters"),
])
def test_bad_models_are_refused_naming_the_key_and_the_fix(text: str, expected: str) -> None:
    message = _error(text)
    assert expected in message, message


def test_a_mount_beside_a_declared_model_is_fine() -> None:
    spec = parse_spec(BASE + "models: {base: models:/d/1}\nmounts: {models/other: /data}\n")
    assert spec.models == {"base": "models:/d/1"}


def test_too_many_models_are_refused() -> None:
    many = ", ".join(f"m{i}: models:/d/1" for i in range(101))
    assert "names 101 models, more than the 100" in _error(f"models: {{{many}}}\n")


def test_the_launch_carries_models_over_the_wire_and_ssh_and_slurm_stage_their_snapshots() -> None:
    from runyard.backends.kit import launch_snapshot_ids
    from runyard.records.compute import RunLaunch
    from runyard.runner._wire import launch_from_dict, launch_to_dict

    launch = RunLaunch(run_id=1, attempt=1, project="p", experiment_id=None, command="x", snapshot_id="code",
                       server_url="http://127.0.0.1:1",
                       datasets={"train": {"snapshot_id": "data", "refs": []}},
                       models={"base": {"project": "p", "model": "digits", "version": 3, "uri": "models:/p/digits/3",
                                        "snapshot_id": "weights", "flavor": "sklearn"},
                               "same": {"snapshot_id": "data"}})
    assert launch_snapshot_ids(launch) == ["code", "data", "weights"]
    back = launch_from_dict(launch_to_dict(launch))
    assert dict(back.models) == {k: dict(v) for k, v in launch.models.items()}
    assert launch_from_dict({k: v for k, v in launch_to_dict(launch).items() if k != "models"}).models == {}
    assert launch_snapshot_ids(dataclasses.replace(launch, snapshot_id=None, datasets={})) == ["weights", "data"]


def test_model_variables_are_named_like_dataset_ones() -> None:
    from runyard.snapshot._dataset_dirs import model_env_name
    from runyard.spec._models_section import model_env_name as spec_env_name

    for name in ("base", "a-b.c", "_x", "Teacher2"):
        assert model_env_name(name) == spec_env_name(name)
    assert model_env_name("a-b.c") == "RUNYARD_MODEL_A_B_C"
