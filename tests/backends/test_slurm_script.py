"""Golden files pin the sbatch scripts the Slurm backend renders (a pure function: no cluster needed).

To accept an intended change, regenerate the files and review the diff:

    RUNYARD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/backends/test_slurm_script.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard.backends.base import Resources, RunLaunch, TaskSlot
from runyard.backends.slurm import JobPaths, SlurmBackendOptions, render_sbatch
from runyard.backends.slurm._script import slurm_time
from runyard.testing.golden import check_golden

GOLDEN = Path(__file__).parent / "golden"
PY = "/opt/runyard/bin/python"


def _launch(**kwargs) -> RunLaunch:
    fields = {"run_id": 42, "attempt": 1, "project": "digits", "experiment_id": 7, "command": "python train.py --lr 0.1",
              "snapshot_id": "abc", "server_url": "http://login01:8765"}
    fields.update(kwargs)
    return RunLaunch(**fields)


CASES = {
    "single": (_launch(resources=Resources(cpus=2, memory_mb=4096), time_limit_s=1800),
               SlurmBackendOptions(partition="debug")),
    "gpu": (_launch(resources=Resources(cpus=8, memory_mb=32000, gpus=2), time_limit_s=2 * 86400 + 30),
            SlurmBackendOptions(partition="gpu", account="proj123", qos="normal", modules=["cuda/12.1", "python/3.11"],
                                env_setup=["source /opt/runyard/bin/activate"], sbatch_lines=["--constraint=a100"])),
    "multi_task": (_launch(resources=Resources(cpus=4, memory_mb=8000, gpus=1),
                           tasks=tuple(TaskSlot("worker", i) for i in range(4))),
                   SlurmBackendOptions(partition="gpu", tasks_per_node=2)),
    "spool": (_launch(resources=Resources(cpus=0.5)), SlurmBackendOptions(reach_server=False)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_script_matches_its_golden_file(case: str) -> None:
    launch, options = CASES[case]
    paths = JobPaths.under("/scratch/me/runyard", launch.run_id, launch.attempt, spool=not options.reach_server)
    text = render_sbatch(launch, options, paths, PY)
    assert render_sbatch(launch, options, paths, PY) == text  # pure: same input, same text
    check_golden(GOLDEN / f"slurm_{case}.sbatch", text, f"The sbatch script for {case!r}", __file__)


def test_resources_map_to_sbatch_options() -> None:
    launch, options = CASES["multi_task"]
    text = render_sbatch(launch, options, JobPaths.under("/w", 1, 1, spool=False), PY)
    assert "#SBATCH --ntasks=4" in text and "#SBATCH --nodes=2" in text
    assert "#SBATCH --mem-per-cpu=2000M" in text and "#SBATCH --gpus-per-task=1" in text
    launch, options = CASES["gpu"]
    text = render_sbatch(launch, options, JobPaths.under("/w", 1, 1, spool=False), PY)
    assert "#SBATCH --gres=gpu:2" in text and "#SBATCH --mem=32000M" in text
    assert "#SBATCH --time=2-00:01:30" in text  # the limit plus time_margin_s (60 s)
    assert "module load cuda/12.1 python/3.11" in text


def test_slurm_time_format() -> None:
    assert slurm_time(1) == "00:00:01"
    assert slurm_time(3661) == "01:01:01"
    assert slurm_time(86400 + 61) == "1-00:01:01"
    assert slurm_time(0) == "00:00:01"  # Slurm has no zero limit: one second at least


def test_a_distributed_run_asks_for_what_its_largest_task_needs() -> None:
    # --cpus-per-task & co. hold for every task of the job: the worker role's 3 CPUs and 6000 MB
    # win over the run's (and the master's) 1 CPU, so no task gets less than it asked for.
    from runyard.launch import task_slots

    desc = {"framework": "pytorch", "roles": {"master": {"replicas": 1},
                                              "worker": {"replicas": 2, "resources": {"cpus": 3, "memory_mb": 6000}}}}
    launch = _launch(resources=Resources(cpus=1, memory_mb=1000), tasks=task_slots(desc), distributed=desc)
    text = render_sbatch(launch, SlurmBackendOptions(), JobPaths.under("/w", 1, 1, spool=False), PY)
    assert "#SBATCH --ntasks=3" in text and "#SBATCH --cpus-per-task=3" in text
    assert "#SBATCH --mem-per-cpu=2000M" in text  # 6000 MB over 3 CPUs
    assert "exec srun --cpus-per-task=3 " in text


def test_distributed_runs_need_compute_nodes_that_reach_the_server(tmp_path: Path) -> None:
    # Their tasks meet through the server's rendezvous: refused before submitting in spool mode.
    from runyard.backends.base import Feature
    from runyard.backends.slurm import SlurmBackend
    from runyard.launch import task_slots

    desc = {"framework": "pytorch", "roles": {"master": {"replicas": 1}, "worker": {"replicas": 1}}}
    launch = _launch(tasks=task_slots(desc), distributed=desc)
    spool = SlurmBackend({"reach_server": False}, home=tmp_path)
    assert set(spool.unsupported(launch)) == {Feature.MULTI_TASK}
    assert "reach_server: false" in spool.unsupported(launch)[Feature.MULTI_TASK]
    assert spool.unsupported(_launch()) == {}
    assert SlurmBackend({}, home=tmp_path).unsupported(launch) == {}
