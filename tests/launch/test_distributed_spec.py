"""The ``distributed:`` section of runyard.yml: valid shapes, and errors that name field, rule, value, fix and line."""

from __future__ import annotations

import textwrap

import pytest

from runyard.errors import SpecError
from runyard.scheduler._dispatch import build_launch, run_resources
from runyard.spec import Spec, parse_spec


def _spec(distributed: str, extra: str = "") -> Spec:
    text = "project: p\ncommand: python train.py\n" + extra + "distributed:\n" + textwrap.indent(
        textwrap.dedent(distributed).strip(), "  ") + "\n"
    return parse_spec(text)


def _error(distributed: str, extra: str = "") -> str:
    with pytest.raises(SpecError) as e:
        _spec(distributed, extra)
    assert e.value.code == "invalid_spec"
    return e.value.message


def test_pytorch_defaults_to_one_master_and_takes_worker_shorthand() -> None:
    spec = _spec("framework: pytorch\nworker: 2", extra="resources: {cpus: 0.5}\n")
    desc = spec.distributed.to_launch(spec.resources)
    assert desc == {"framework": "pytorch", "roles": {
        "master": {"replicas": 1, "resources": {"cpus": 0.5, "memory_mb": 0, "gpus": 0}},
        "worker": {"replicas": 2, "resources": {"cpus": 0.5, "memory_mb": 0, "gpus": 0}}}}
    assert spec.distributed.n_tasks() == 3


def test_role_resources_override_the_runs() -> None:
    spec = _spec("""
        framework: xgboost
        master: {replicas: 1, resources: {cpus: 0.1}}
        worker: {replicas: 2, resources: {memory: 1G}}
    """, extra="resources: {cpus: 2, memory: 512M}\n")
    roles = spec.distributed.to_launch(spec.resources)["roles"]
    assert roles["master"]["resources"] == {"cpus": 0.1, "memory_mb": 512, "gpus": 0}
    assert roles["worker"]["resources"] == {"cpus": 2.0, "memory_mb": 1024, "gpus": 0}
    # The scheduler reserves what all the tasks need together.
    total = run_resources(spec)
    assert total.cpus == pytest.approx(4.1) and total.memory_mb == 512 + 2048


def test_the_normalised_config_round_trips() -> None:
    spec = _spec("framework: ray\nworker: 3")
    again = Spec.model_validate(spec.to_config())
    assert again.distributed.to_launch(again.resources) == spec.distributed.to_launch(spec.resources)


def test_build_launch_lists_every_task_with_its_role_and_rank() -> None:
    spec = _spec("framework: tensorflow\nchief: 1\nworker: 2\nps: 1")
    launch = build_launch(spec, {"id": 3, "attempt": 2, "params": {}}, {"id": 1, "project": "p"},
                          server_url="http://127.0.0.1:1")
    assert [t.label for t in launch.tasks] == ["chief-0", "worker-0", "worker-1", "ps-0"]
    assert launch.distributed["framework"] == "tensorflow"
    # A run without the section keeps its single task.
    single = build_launch(parse_spec("project: p\ncommand: x\n"), {"id": 3, "attempt": 1, "params": {}},
                          {"id": 1, "project": "p"}, server_url="http://127.0.0.1:1")
    assert [t.label for t in single.tasks] == ["main-0"] and single.distributed is None


def test_unknown_framework_suggests_the_nearest() -> None:
    message = _error("framework: pytorhc")
    assert "runyard.yml:4: distributed.framework must be one of pytorch, tensorflow, xgboost, jax, ray, " \
           "but got 'pytorhc'. Did you mean 'pytorch'?" in message


def test_missing_framework() -> None:
    assert "distributed.framework" in _error("worker: 2") and "framework: pytorch" in _error("worker: 2")


def test_a_role_the_framework_lacks_is_named_with_the_valid_ones() -> None:
    message = _error("framework: pytorch\nps: 1")
    assert ("runyard.yml:5: distributed.ps is not a role of framework pytorch, whose roles are master, worker, "
            "but got ps. Remove it or use one of those roles.") in message


def test_wrong_replica_counts() -> None:
    message = _error("framework: xgboost\nmaster: 2\nworker: 2")
    assert "runyard.yml:5: distributed.master.replicas must be exactly 1 for framework xgboost" in message
    assert "but got 2. Set it to 1." in message
    message = _error("framework: ray\njob: {replicas: 2}")
    assert "runyard.yml:5: distributed.job.replicas must be exactly 1 for framework ray" in message


def test_required_roles() -> None:
    message = _error("framework: xgboost")
    assert "runyard.yml:4: distributed.worker is required for framework xgboost" in message
    assert "Add e.g. `worker: 2`." in message
    assert "distributed.worker is required for framework jax" in _error("framework: jax")
    assert "at least one chief or worker" in _error("framework: tensorflow\nchief: 0\nps: 1")


def test_bad_values_inside_a_role() -> None:
    message = _error("framework: pytorch\nworker: {replicas: -1, resources: {cpus: 0, gpus: 1.5, time_limit: 1h}}")
    assert "distributed.worker.replicas must be an integer ≥ 0, but got -1" in message
    assert "distributed.worker.resources.cpus must be a number > 0, but got 0" in message
    assert "distributed.worker.resources.gpus must be an integer ≥ 0, but got 1.5" in message
    assert "distributed.worker.resources.time_limit" in message
    assert "distributed.worker must be a number of replicas or a mapping" in _error("framework: pytorch\nworker: many")
