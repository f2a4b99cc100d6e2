"""The Slurm backend: one sbatch job per run attempt, watched with one squeue/sacct call per poll.

Concept map:

| Runyard           | Slurm                                                                   |
| ----------------- | ----------------------------------------------------------------------- |
| run attempt       | one batch job (``sbatch --parsable``), its job id is the engine job id  |
| task              | one ``srun`` task running ``python -m runyard.runner exec``             |
| job state         | ``squeue`` while queued/running, ``sacct`` after (needs accounting)      |
| cancel            | ``scancel JOBID`` (Slurm sends SIGTERM, the runner stops the task)      |
| time limit        | the runner stops the task at ``time_limit`` ("TIMEOUT: ..."); ``--time`` |
|                   | is the limit plus ``time_margin_s``, Slurm's backstop (state TIMEOUT)    |
| files             | ``<work_dir>/runs/<run_id>.<attempt>/``: launch.json, job.sbatch,         |
|                   | slurm-<jobid>.out, work/task-<i>/, spool/ (``reach_server: false``)      |

Two ways to reach the cluster, the same code: the Slurm commands on this machine
(``LocalCommands``), or on a login node over SSH (``login_host``; ``SSHCommands``
over ``runyard.backends._remote.RemoteHost``). ``work_dir`` must be on a file
system the compute nodes share.

Polling: ``poll`` answers from its last engine call until ``poll_min_s`` has passed;
each engine call that changes nothing doubles the wait up to ``poll_max_s``, a
change, a new job or a cancel resets it. Slurm never requeues a job
(``--no-requeue``): restarts are Runyard's (``max_restarts``, a new attempt). One ``squeue`` for all jobs; ``sacct`` only for the
jobs squeue no longer lists (finished: state and exit code). A job neither lists
for 60 s after submission is LOST.

Spool mode (``reach_server: false``): the runner writes to ``<job dir>/spool``
(``runyard.spool``) and ``poll`` replays new lines into the server before
it reports states, and once more for a job it first sees ended (so an ended state
means a replayed spool); the snapshot's blobs are copied to ``<work_dir>/blobs``
before ``sbatch``.

Operational traps:

- ``sacct`` needs accounting (slurmdbd). Without it finished jobs become LOST
  after ``MinJobAge`` and their exit codes are unknown; ``check()`` says so.
- The launch file holds the run's API token: it is written mode 600, readable by
  the submitting user only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from runyard.backends._images import container_checks, with_container
from runyard.backends.base import BaseBackend, CheckResult, EngineState, EngineStatus, Feature, Resources, RunLaunch
from runyard.backends.kit import (
    launch_file_bytes,
    launch_reaching,
    launch_snapshot_ids,
    poll_waiting,
    stage_snapshot,
)
from runyard.backends.slurm._commands import Commands, LocalCommands, SSHCommands
from runyard.backends.slurm._options import SlurmBackendOptions
from runyard.backends.slurm._script import JobPaths, render_sbatch
from runyard.backends.slurm._states import map_state
from runyard.errors import BackendError, RunyardError, SubmitError

__all__ = ["SlurmBackend"]

log = logging.getLogger("runyard.backends.slurm")

LOST_AFTER_S = 60.0  # a job neither squeue nor sacct knows this long after submission is lost


@dataclasses.dataclass
class _Job:
    job_id: str
    run_id: int
    attempt: int
    job_dir: str
    spool: str | None
    server_url: str
    token: str | None
    submitted_at: float
    cancel_requested: bool = False


class SlurmBackend(BaseBackend):
    """Runs each attempt as one Slurm batch job. Thread-safe.

    Args:
        options: a mapping validated as :class:`SlurmBackendOptions`.
        home: Runyard home for the job index (default ``RUNYARD_HOME``).
        commands: where the Slurm commands run (default: from ``login_host``).
        clock: monotonic seconds, for the poll backoff (tests inject one).
    """

    name: ClassVar[str] = "slurm"
    options_model: ClassVar[type[BaseModel]] = SlurmBackendOptions
    options: SlurmBackendOptions

    def __init__(self, options: Mapping[str, Any] | SlurmBackendOptions | None = None, *, home: Any = None,
                 commands: Commands | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        from runyard import config

        super().__init__(options)
        self._clock = clock
        o = self.options
        self.remote = bool(o.login_host)
        if commands is None:
            if o.login_host:
                commands = SSHCommands(o.login_host, o.login_port, o.login_user, o.login_key, o.known_hosts)
            else:
                commands = LocalCommands()
        self.commands = commands
        home_dir = Path(home) if home is not None else config.home()
        if o.work_dir:
            self.work_dir = o.work_dir if self.remote else os.path.expanduser(o.work_dir)
        else:
            self.work_dir = str(home_dir / "slurm")
        self.python = o.python or ("python3" if self.remote else sys.executable)
        key = (o.login_host or "local").replace("/", "_")
        self._index = home_dir / "slurm-jobs" / key
        self._jobs: dict[str, _Job] = {}
        self._states: dict[str, EngineState] = {}
        self._interval = o.poll_min_s
        self._next_poll = 0.0
        self._nodes: tuple[float, list[Resources] | None] | None = None  # (when asked, what sinfo said)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ interface
    def unsupported(self, launch: RunLaunch) -> dict[Feature, str]:
        """Distributed runs when compute nodes cannot reach the server (their tasks meet through its
        rendezvous); nothing else: Slurm queues what it cannot place now, and refuses at sbatch what it never can."""
        if launch.distributed is not None and not self.options.reach_server:
            return {Feature.MULTI_TASK: "the tasks of a distributed run meet through the server's rendezvous, which "
                                        "compute nodes cannot reach with reach_server: false"}
        return {}

    def capacity(self) -> None:
        """``None``: Slurm queues jobs itself."""
        return None

    def nodes(self) -> list[Resources] | None:
        """The nodes of the backend's partition (all partitions when none is set), from
        ``sinfo -h -N -o "%N %P %c %m %G"``, asked at most every 60 s; ``None`` when sinfo fails (unknown: accept)."""
        now = self._clock()
        with self._lock:
            cached = self._nodes
            if cached is not None and now - cached[0] < _NODES_TTL_S:
                return cached[1]
        o = self.options
        code, out, _err = self._safe_run([o.sinfo, "-h", "-N", "-o", "%N %P %c %m %G"])
        shapes = parse_sinfo_nodes(out, o.partition) if code == 0 else None
        with self._lock:
            self._nodes = (now, shapes)
        return shapes

    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str:
        """Write the launch and script into the job dir and ``sbatch --parsable`` it. Idempotent per attempt.

        ``at_most`` is never given (``can_queue`` is false: Slurm's queue is the engine's).

        Raises:
            SubmitError: sbatch refused (its message is included), or the snapshot could not be staged.
        """
        o = self.options
        paths = JobPaths.under(self.work_dir, launch.run_id, launch.attempt, spool=not o.reach_server)
        done = self.commands.read_all(f"{paths.job_dir}/job_id")
        if done and done.strip():
            job_id = done.decode().strip()
            self._remember(_Job(job_id, launch.run_id, launch.attempt, paths.job_dir, paths.spool, launch.server_url,
                                launch.token, time.time()))
            return job_id
        far_launch = launch_reaching(with_container(launch, o, default_runtime="apptainer", backend="slurm"), o.server_url)
        try:
            self.commands.makedirs(paths.job_dir)
            if paths.spool:
                self.commands.makedirs(paths.spool)
                if launch_snapshot_ids(launch):  # the code's and the datasets' snapshots
                    self._stage_snapshot(launch, paths.blob_cache or "")
            self.commands.write(paths.launch_file, launch_file_bytes(far_launch), 0o600)
            script = render_sbatch(far_launch, self.options_for(launch), paths, self.python)  # the run's own options too
            script_path = f"{paths.job_dir}/job.sbatch"
            self.commands.write(script_path, script.encode(), 0o700)
        except OSError as e:
            raise SubmitError(f"Cannot write the job files of run {launch.run_id} under {self.work_dir}: {e}.",
                              "Check that work_dir exists and is writable on the cluster's shared file system.") from e
        except RunyardError as e:
            if isinstance(e, SubmitError):
                raise
            raise SubmitError(f"Preparing run {launch.run_id} for Slurm failed: {e.message}", e.hint) from e
        code, out, err = self.commands.run([o.sbatch, "--parsable", script_path], o.command_timeout_s)
        if code != 0:
            what = err.strip() or out.strip() or f"exit code {code}"
            hint = ("Install Slurm's client commands or set the backend's sbatch option to its path "
                    "(`runyard backends test NAME` checks them)." if code == 127 else
                    "Fix the run's resources or the backend's partition/account/qos/sbatch_lines; "
                    f"the script is {script_path}.")
            raise SubmitError(f"sbatch on {self.commands.where} refused run {launch.run_id}: {what}", hint)
        job_id = out.strip().split(";")[0].strip()
        if not job_id:
            raise SubmitError(f"sbatch on {self.commands.where} printed no job id for run {launch.run_id}.",
                              "Check that the sbatch command is Slurm's and supports --parsable.")
        self.commands.write(f"{paths.job_dir}/job_id", job_id.encode(), 0o644)
        self._remember(_Job(job_id, launch.run_id, launch.attempt, paths.job_dir, paths.spool, launch.server_url,
                            launch.token, time.time()))
        with self._lock:
            self._interval = o.poll_min_s
            self._next_poll = 0.0
        log.info("run %s attempt %s: Slurm job %s", launch.run_id, launch.attempt, job_id)
        return job_id

    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]:
        """States of ``job_ids``: spools replayed first, then one squeue (and one sacct) call for all.

        ``wait_s``: keep polling (at the backoff's pace) up to this long until one job is terminal.
        """
        return poll_waiting(self._poll_once, job_ids, wait_s)

    def _poll_once(self, job_ids: Sequence[str]) -> dict[str, EngineState]:
        if not job_ids:
            return {}
        jobs = {j: self._job(j) for j in job_ids}
        now = self._clock()
        with self._lock:
            cached = all(j in self._states for j in job_ids)
            if cached and now < self._next_poll:
                return {j: self._states[j] for j in job_ids}
        # Spools are carried back at the pace of the engine calls: over SSH each costs commands too.
        for job in jobs.values():
            if job is not None and job.spool:
                self._ingest(job)
        states = self._query(list(job_ids), jobs)
        # A job that ended between that replay and the query wrote its last lines (its run's end
        # among them) after the replay: replay once more as it is first seen ended, so a terminal
        # state means a replayed spool.
        with self._lock:
            ended = [j for j, st in states.items() if st.status.terminal
                     and not (j in self._states and self._states[j].status.terminal)]
        for job_id in ended:
            job = jobs.get(job_id)
            if job is not None and job.spool:
                self._ingest(job)
        with self._lock:
            changed = any(self._states.get(j) != s for j, s in states.items())
            self._states.update(states)
            self._interval = self.options.poll_min_s if changed else min(self.options.poll_max_s, self._interval * 2)
            self._next_poll = self._clock() + self._interval
        return states

    def cancel(self, job_id: str) -> None:
        """``scancel JOBID``; a job Slurm no longer knows or that already ended is a no-op.

        The cancel is recorded with the job: a job that then ends FAILED or COMPLETED (the runner
        saw the cancel on its heartbeat and stopped the task before ``scancel`` arrived) polls as
        CANCELED, as it would had Slurm cancelled it.
        """
        job = self._job(job_id)
        with self._lock:
            last = self._states.get(job_id)
        ended = last is not None and last.status.terminal  # cancelling an ended job changes nothing
        if job is not None and not job.cancel_requested and not ended:
            job.cancel_requested = True
            self._remember(job)
        code, out, err = self.commands.run([self.options.scancel, str(job_id)], self.options.command_timeout_s)
        if code != 0 and "Invalid job id" not in err and "already completing or completed" not in err:
            raise BackendError(f"scancel {job_id} on {self.commands.where} failed: {(err or out).strip() or code}.",
                               "Check the Slurm controller (`scontrol ping`) and retry the cancel.")
        with self._lock:
            self._next_poll = 0.0

    def close(self) -> None:
        """Drop the SSH connection (login-node mode); jobs keep running."""
        self.commands.close()

    def check(self) -> list[CheckResult]:
        """Connectivity, the Slurm commands, the controller, accounting, the Python there, work_dir."""
        o = self.options
        results: list[CheckResult] = []
        if self.remote:
            try:
                code, out, err = self.commands.run(["true"], 30)
                results.append(CheckResult("ssh", code == 0, f"connected to {self.commands.where}" if code == 0
                                           else f"`true` failed on {self.commands.where}: {err.strip()}",
                                           "" if code == 0 else "Check login_user and login_key."))
            except RunyardError as e:
                results.append(CheckResult("ssh", False, e.message, e.hint or "Check login_host, login_port, login_user, login_key."))
                return results
        missing = False
        for option, flag in (("sbatch", "--version"), ("squeue", "--version"), ("sacct", "--version"),
                             ("scancel", "--version"), ("sinfo", "--version")):
            cmd = getattr(o, option)
            code, out, err = self._safe_run([cmd, flag])
            if code == 0:
                results.append(CheckResult(option, True, f"{cmd}: {out.strip() or 'ok'}"))
            else:
                missing = True
                why = "not found" if code == 127 else (err.strip() or f"exit code {code}")
                results.append(CheckResult(option, False, f"{cmd} on {self.commands.where}: {why}",
                                           f"Install Slurm's client commands (Debian: slurm-client) or set the backend's "
                                           f"{option} option to its absolute path: "
                                           f"`runyard backends add NAME --type slurm --set {option}=/usr/bin/{option} --replace`."))
        if missing:  # what does not need Slurm is still checked: every problem is named at once
            return results + self._check_python_and_work_dir()
        code, out, err = self._safe_run([o.sinfo, "-h", "-o", "%P %a %D %T"])
        if code != 0:
            results.append(CheckResult("controller", False, f"sinfo failed: {err.strip()}",
                                       "Is slurmctld running? Try `scontrol ping` (dev cluster: scripts/dev-slurm.sh up)."))
            return results + self._check_python_and_work_dir()
        partitions = [line.split()[0].rstrip("*") for line in out.splitlines() if line.strip()]
        results.append(CheckResult("controller", True, f"partitions: {', '.join(sorted(set(partitions))) or 'none'}"))
        if o.partition:
            ok = o.partition in partitions
            results.append(CheckResult("partition", ok, f"partition {o.partition!r} " + ("exists" if ok else "is not known to sinfo"),
                                       "" if ok else f"Use one of {', '.join(sorted(set(partitions)))}."))
        code, out, err = self._safe_run([o.sacct, "-n", "-X", "-j", "1", "-o", "JobID"])
        ok = code == 0
        results.append(CheckResult("accounting", ok, "sacct answers" if ok else f"sacct failed: {err.strip()}",
                                   "" if ok else "Enable accounting (slurmdbd): without it, exit codes of finished jobs are lost."))
        results += self._check_python_and_work_dir()
        results += container_checks(o, "apptainer", self._safe_run, self.commands.where)
        if not o.reach_server:
            results.append(CheckResult("reach_server", True, "false: runs spool metrics and logs under work_dir"))
        return results

    def _check_python_and_work_dir(self) -> list[CheckResult]:
        """The checks of ``check()`` that do not need Slurm: runyard in the compute nodes' Python, work_dir."""
        results: list[CheckResult] = []
        code, out, err = self._safe_run([self.python, "-c", "import runyard, sys; print(runyard.__version__, sys.version.split()[0])"])
        if code == 0:
            version, _, py = out.strip().partition(" ")
            results.append(CheckResult("python", True, f"{self.python}: runyard {version} on Python {py}"))
        else:
            why = "not found" if code == 127 else (err.strip().splitlines() or [f"exit code {code}"])[-1]
            results.append(CheckResult("python", False, f"{self.python} on {self.commands.where}: {why}",
                                       "Install runyard into the Python the compute nodes use (`pip install runyard`), "
                                       "and set the backend's python option to it."))
        try:
            self.commands.makedirs(self.work_dir)
            probe = f"{self.work_dir}/.runyard-check-{os.getpid()}"
            self.commands.write(probe, b"ok", 0o600)
            self._safe_run(["rm", "-f", probe])
            results.append(CheckResult("work_dir", True, f"{self.work_dir} is writable"))
        except (OSError, RunyardError) as e:
            results.append(CheckResult("work_dir", False, f"cannot write into {self.work_dir}: {e}",
                                       "Set work_dir to a writable directory on a file system the compute nodes share."))
        return results

    # -------------------------------------------------------------- helpers
    def _safe_run(self, argv: list[str]) -> tuple[int, str, str]:
        try:
            return self.commands.run(argv, self.options.command_timeout_s)
        except RunyardError as e:
            return 1, "", e.message

    def _remember(self, job: _Job) -> None:
        with self._lock:
            self._jobs[job.job_id] = job
        try:
            self._index.mkdir(parents=True, exist_ok=True)
            path = self._index / f"{job.job_id}.json"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(dataclasses.asdict(job), f)
        except OSError as e:
            log.warning("cannot record Slurm job %s in %s: %s", job.job_id, self._index, e)

    def _job(self, job_id: str) -> _Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            return job
        try:
            data = json.loads((self._index / f"{job_id}.json").read_text())
            job = _Job(**data)
        except (OSError, ValueError, TypeError):
            return None
        with self._lock:
            self._jobs[job_id] = job
        return job

    def _stage_snapshot(self, launch: RunLaunch, blob_cache: str) -> None:
        """Copy the snapshot's blobs into the shared blob cache, and its manifest next to them (spool mode)."""
        from runyard.spool import snapshot_manifest_path

        for snapshot_id in launch_snapshot_ids(launch):  # the code's, then the datasets' the run reads
            snap = stage_snapshot(launch, self.commands.blobs(blob_cache), snapshot_id=snapshot_id)
            manifest = str(snapshot_manifest_path(Path(blob_cache), snapshot_id))
            self.commands.makedirs(os.path.dirname(manifest))
            self.commands.write(manifest, json.dumps(snap).encode(), 0o644)

    def _ingest(self, job: _Job) -> None:
        from runyard.client import Client
        from runyard.spool import ingest

        try:
            with Client(job.server_url, job.token, timeout_s=30.0) as client:
                n = ingest(job.spool or "", job.run_id, client, self.commands)
            if n:
                log.debug("run %s: replayed %d spooled updates of Slurm job %s", job.run_id, n, job.job_id)
        except RunyardError as e:
            log.warning("run %s: replaying the spool of Slurm job %s failed: %s", job.run_id, job.job_id, e.message)
        except (OSError, ValueError) as e:
            log.warning("run %s: reading the spool %s failed: %s", job.run_id, job.spool, e)

    def _query(self, job_ids: list[str], jobs: Mapping[str, _Job | None]) -> dict[str, EngineState]:
        o = self.options
        ids = ",".join(job_ids)
        states: dict[str, EngineState] = {}
        code, out, err = self.commands.run([o.squeue, "-h", "-j", ids, "-o", "%i|%T|%r"], o.command_timeout_s)
        if code != 0 and "Invalid job id" not in err:
            raise BackendError(f"squeue on {self.commands.where} failed: {(err or out).strip() or f'exit code {code}'}.",
                               "Check the Slurm controller (`scontrol ping`); `runyard backends test NAME` checks the setup.")
        if code == 0:
            for line in out.splitlines():
                parts = line.strip().split("|")
                if len(parts) >= 2 and parts[0] in job_ids:
                    st = map_state(parts[1], "", parts[2] if len(parts) > 2 else "")
                    if not st.status.terminal:  # squeue keeps ended jobs for MinJobAge: sacct has their exit code
                        states[parts[0]] = st
        rest = [j for j in job_ids if j not in states]
        if rest:
            code, out, err = self.commands.run([o.sacct, "-n", "-P", "-X", "-j", ",".join(rest), "-o",
                                                "JobIDRaw,State,ExitCode"], o.command_timeout_s)
            if code != 0:
                raise BackendError(f"sacct on {self.commands.where} failed: {(err or out).strip() or f'exit code {code}'}.",
                                   "Runyard needs Slurm accounting (slurmdbd) for the final states of jobs.")
            for line in out.splitlines():
                parts = line.strip().split("|")
                if len(parts) >= 3 and parts[0] in rest:
                    states[parts[0]] = map_state(parts[1], parts[2])
        for j, st in list(states.items()):
            job = jobs.get(j)
            if job is not None and job.cancel_requested and st.status in (EngineStatus.FAILED, EngineStatus.SUCCEEDED):
                states[j] = EngineState(EngineStatus.CANCELED, st.exit_code,
                                        f"canceled (Slurm ended it {st.raw}{': ' + st.reason if st.reason else ''})", st.raw)
        now = time.time()
        for j in job_ids:
            if j in states:
                continue
            job = jobs.get(j)
            if job is not None and now - job.submitted_at < LOST_AFTER_S:
                states[j] = EngineState(EngineStatus.PENDING, None, "submitted; not yet listed by squeue or sacct", "")
            else:
                states[j] = EngineState(EngineStatus.LOST, None, f"Slurm does not know job {j} (squeue and sacct list nothing)", "")
        return states


_NODES_TTL_S = 60.0


def parse_sinfo_nodes(out: str, partition: str | None) -> list[Resources] | None:
    """Node shapes from ``sinfo -h -N -o "%N %P %c %m %G"`` lines (``node1 debug* 4 7900 gpu:2``); ``None`` when none.

    A node listed in several partitions counts once; ``%G`` of ``(null)`` means no GPUs; ``gpu:TYPE:N(S:0)`` counts N.
    """
    import re

    seen: dict[str, Resources] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        name, part = parts[0], parts[1].rstrip("*")
        if partition and part != partition:
            continue
        try:
            cpus, mem = float(parts[2].rstrip("+")), int(float(parts[3].rstrip("+")))
        except ValueError:
            continue
        gpus = 0
        for gres in (parts[4] if len(parts) > 4 else "").split(","):
            m = re.match(r"gpu(?::[^:(]+)?:(\d+)", gres)
            if m:
                gpus += int(m.group(1))
        seen[name] = Resources(cpus, mem, gpus)
    return list(seen.values()) or None
