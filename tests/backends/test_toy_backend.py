"""A toy backend written only against runyard.backends.base/kit and runyard.testing, held to the backend contract.

Each run attempt is a job directory ``<work_dir>/<run>.<attempt>`` with ``launch.json``,
``res`` (CPUs held), ``pid``, ``cancel`` (asked to stop), ``exit`` (the runner's exit
code) and ``out.log``; its one task is a plain subprocess (``sh`` around the runner) in
a session of its own, so it outlives the backend object. Everything is re-read from
the directory, so a new object (a restarted server) follows the jobs of an old one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from runyard.backends.base import BaseBackend, EngineState, EngineStatus, Feature, Resources, RunLaunch
from runyard.backends.kit import (
    DirectoryBlobs,
    job_name,
    launch_file_bytes,
    poll_waiting,
    runner_command,
    stage_snapshot,
)
from runyard.testing.backend_contract import BackendContract


class ToyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    work_dir: str = Field(description="job directories and the blob cache")
    cpus: float = Field(2.0, gt=0, description="CPUs to hand out")
    python: str = Field(sys.executable, description="the Python that imports runyard")


class ToyBackend(BaseBackend):
    name = "toy"
    options_model = ToyOptions

    def __init__(self, options: object = None) -> None:
        super().__init__(options)  # type: ignore[arg-type]
        self.work = Path(self.options.work_dir)
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # reaped by poll, so they do not linger as zombies
        self._lock = threading.Lock()

    def unsupported(self, launch: RunLaunch) -> dict[Feature, str]:
        problems = super().unsupported(launch)  # several tasks: unsupported
        if launch.resources.gpus:
            problems[Feature.GPUS] = "the toy backend hands out no GPUs"
        return problems

    def capacity(self) -> Resources:
        held = sum(float((d / "res").read_text()) for d in self.work.glob("*.*") if self._alive(d))
        return Resources(cpus=max(0.0, self.options.cpus - held), memory_mb=0, gpus=0)

    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str:
        self.refuse_unsupported(launch)
        name = job_name(launch)
        job = self.work / name
        with self._lock:
            if (job / "pid").exists():
                return name  # idempotent per attempt
            job.mkdir(parents=True, exist_ok=True)
            if launch.snapshot_id:  # the runner materialises from $RUNYARD_HOME/cache/blobs
                stage_snapshot(launch, DirectoryBlobs(str(self.work / "cache" / "blobs")))
            (job / "launch.json").write_bytes(launch_file_bytes(launch))
            (job / "launch.json").chmod(0o600)
            (job / "res").write_text(f"{launch.resources.cpus:g}")
            runner = runner_command(self.options.python, str(job / "launch.json"), workdir=str(job / "work"))
            # The wrapper ignores SIGTERM so it outlives the runner (which handles it) and records its exit code.
            script = f"trap '' TERM HUP INT; {runner} > out.log 2>&1 < /dev/null; echo $? > exit.tmp; mv exit.tmp exit"
            env = {**os.environ, "RUNYARD_HOME": str(self.work)}
            proc = subprocess.Popen(["sh", "-c", script], cwd=job, env=env, start_new_session=True)
            self._children[name] = proc
            (job / "pid").write_text(str(proc.pid))
        return name

    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]:
        return poll_waiting(lambda ids: {j: self._state(j) for j in ids}, job_ids, wait_s)

    def cancel(self, job_id: str) -> None:
        job = self.work / job_id
        if "/" in job_id or not (job / "pid").exists() or (job / "exit").exists():
            return  # unknown or ended: nothing to stop
        (job / "cancel").touch()
        try:
            os.killpg(int((job / "pid").read_text()), signal.SIGTERM)  # the runner passes it on to the task
        except ProcessLookupError:
            pass

    def _alive(self, job: Path) -> bool:
        if (job / "exit").exists() or not (job / "pid").exists():
            return False
        child = self._children.get(job.name)
        if child is not None:
            return child.poll() is None
        try:
            os.kill(int((job / "pid").read_text()), 0)
        except ProcessLookupError:
            return False
        return True

    def _state(self, job_id: str) -> EngineState:
        job = self.work / job_id
        if "/" in job_id or not (job / "pid").exists():
            return EngineState(EngineStatus.LOST, reason=f"no job {job_id} under {self.work}", raw="none")
        if self._alive(job):
            return EngineState(EngineStatus.RUNNING, raw="running")
        if not (job / "exit").exists():
            return EngineState(EngineStatus.LOST, reason="the task ended without an exit code", raw="dead")
        code = int((job / "exit").read_text())
        last = [ln.split(": ", 1)[1] for ln in (job / "out.log").read_text(errors="replace").splitlines()
                if ln.startswith("[runyard] task ") and ": " in ln]
        reason = last[-1] if last else ""
        if code == 0:
            return EngineState(EngineStatus.SUCCEEDED, 0, raw="exit 0")
        if (job / "cancel").exists():
            return EngineState(EngineStatus.CANCELED, code, reason or "canceled", raw=f"exit {code}")
        status = EngineStatus.TIMEOUT if reason.startswith("TIMEOUT:") else EngineStatus.FAILED
        return EngineState(status, code, reason or f"exit code {code}", raw=f"exit {code}")


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[ToyBackend]:
    toy = ToyBackend({"work_dir": str(tmp_path / "toy")})
    yield toy
    toy.close()
    for job in (tmp_path / "toy").glob("*.*"):  # stop, by process group id, what a failed test left running
        if toy._alive(job):
            os.killpg(int((job / "pid").read_text()), signal.SIGKILL)


@pytest.fixture
def unknown_job_id() -> str:
    return "999999.1"


class TestToyContract(BackendContract):
    pass


def test_a_misspelled_option_names_the_valid_ones(tmp_path: Path) -> None:
    # BaseBackend's parser raises runyard's SpecError; this module imports only base, kit and testing.
    with pytest.raises(Exception, match=r"toy.cpu is not an option of the toy backend. Did you mean 'cpus'\? "
                                        r"Valid options: work_dir \(default: required\), cpus \(default: 2.0\)"):
        ToyBackend({"work_dir": str(tmp_path), "cpu": 1})
