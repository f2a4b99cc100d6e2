"""``notebook:`` and ``tensorboard:`` in runyard.yml: what is accepted, what is refused and how it says so."""

from __future__ import annotations

import pytest

from runyard.errors import SpecError
from runyard.spec import validate_config


def spec(**config: object):  # noqa: ANN201
    return validate_config({"project": "p", **config})


def test_a_notebook_is_the_command_of_its_runs() -> None:
    s = spec(notebook="nb/train.ipynb", params={"lr": [0.1, 0.2]})
    assert s.command == "python -m runyard.notebook nb/train.ipynb"
    assert s.render_command({"lr": 0.1}) == s.command  # params reach the notebook through RUNYARD_PARAMS
    stored = s.to_config()
    assert "command" not in stored and stored["notebook"] == "nb/train.ipynb"
    assert validate_config(stored).command == s.command  # the stored config reads back the same
    assert spec(notebook="my notebook.ipynb").command == "python -m runyard.notebook 'my notebook.ipynb'"


@pytest.mark.parametrize(("config", "fragment"), [
    ({}, "command is required. Add the command each run executes"),
    ({"command": "python x.py", "notebook": "a.ipynb"}, "but command: is set too"),
    ({"notebook": "../a.ipynb"}, "leaves the run's working directory"),
    ({"notebook": "/abs/a.ipynb"}, "leaves the run's working directory"),
    ({"notebook": "train.py"}, "a notebook is a .ipynb file"),
    ({"notebook": ""}, "must be a path of 1–1024 printable characters"),
    ({"command": "x", "tensorboard": {}}, "tensorboard.logdir is required"),
    ({"command": "x", "tensorboard": {"logdir": "/tmp/logs"}}, "leaves the run's working directory"),
    ({"command": "x", "tensorboard": {"logdir": "logs/../../x"}}, "leaves the run's working directory"),
    ({"command": "x", "tensorboard": {"logdir": "logs", "serve": "yes"}}, "tensorboard.serve must be true or false"),
    ({"command": "x", "tensorboard": {"logdir": "logs", "port": 6006}}, "unknown key tensorboard.port"),
])
def test_bad_sections_name_the_problem_and_the_fix(config: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as e:
        spec(**config)
    assert fragment in e.value.message, e.value.message


def test_tensorboard_reaches_the_launch() -> None:
    from runyard.runner import launch_from_dict, launch_to_dict
    from runyard.scheduler._dispatch import build_launch

    s = spec(command="python train.py", tensorboard={"logdir": "runs/", "serve": True})
    launch = build_launch(s, {"id": 7, "params": {}, "attempt": 1}, {"id": 2, "project": "p"},
                          server_url="http://127.0.0.1:1")
    assert launch.tensorboard == {"logdir": "runs/", "serve": True}
    assert launch_from_dict(launch_to_dict(launch)) == launch
    assert build_launch(spec(command="x"), {"id": 7, "params": {}, "attempt": 1}, {"id": 2, "project": "p"},
                        server_url="http://127.0.0.1:1").tensorboard is None
