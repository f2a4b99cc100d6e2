"""Distributed runs that cannot run fail at `runyard run`, before anything is queued: a spec error
with its line, and a run whose tasks together need more than the local backend has."""

from __future__ import annotations

import pytest
from e2e_helpers import Yard

from runyard.errors import NotFound

pytestmark = pytest.mark.slow


def test_a_bad_distributed_section_fails_at_runyard_run(yard: Yard, make_project) -> None:
    project = make_project("dist-bad", """
        project: e2e-dist-bad
        command: python train.py
        distributed:
          framework: xgboost
          ps: 1
    """, "print('never runs')\n")
    res = yard.cli("run", project.path, "--json")
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "runyard.yml:4: distributed.worker is required for framework xgboost" in out, out
    assert "runyard.yml:5: distributed.ps is not a role of framework xgboost, whose roles are master, worker" in out


def test_tasks_needing_more_than_the_machine_fail_at_submission(yard: Yard, make_project) -> None:
    project = make_project("dist-big", """
        project: e2e-dist-big
        command: python train.py
        distributed:
          framework: pytorch
          worker: 63
        resources:
          cpus: 1
    """, "print('never runs')\n")
    res = yard.cli("run", project.path, "--json")
    assert res.returncode != 0
    out = res.stdout + res.stderr
    # the one rule of single and distributed runs (docs/backends.md): all the tasks together must fit the machine
    assert "Runs of this experiment can never start: asks cpus: 64 (all 64 tasks together) but backend local has" in out, out
    assert "or the per-role resources in distributed:" in out
    # Nothing was queued (the project was not even created).
    with pytest.raises(NotFound):
        yard.client.list_runs(project="e2e-dist-big")
