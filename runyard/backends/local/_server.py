"""The local agent process: one long-lived server that hosts the task runners of the local backend.

Why an agent rather than a fresh runner process per task: dispatch speed and crash
safety. A fresh interpreter per task pays Python's start-up and Runyard's imports
for every run (~20 ms + imports on one core), and a runner that is a child of the server dies or is
orphaned with it. The agent pays the imports once, keeps one HTTP client (with
its keep-alive connections) for all tasks, and lives in its own session, so
SIGKILLing the server leaves every task running and reporting. The code path
inside is the runner's public :class:`~runyard.runner.TaskExecution` (and its
task group for distributed runs), the same that ``python -m runyard.runner exec``
runs in the foreground for the SSH and Slurm backends, so logs, metrics and
statuses behave identically. Files and protocol: ``_protocol.py``.

A job's state turns terminal once its task's final reports reached the server,
so a scheduler that sees a terminal state also finds the run's final status
stored; when the server cannot be reached, it turns terminal 10 s after the exit
anyway (the runner keeps retrying the reports for 15 minutes). Its resources are
free as soon as its processes ended.

SIGTERM stops the agent: no new jobs, every running task is stopped like a
cancel (its run fails with "the local agent stopped"), then it exits. An agent
without jobs and connections exits by itself after ``idle_exit_s``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from runyard import _proc
from runyard.backends.base import EngineStatus
from runyard.backends.local._admission import Admission
from runyard.backends.local._jobs import EXIT_CODE_FILE, RECORD_MAX_AGE_S, REPORT_WAIT_S, Job, JobRecords
from runyard.backends.local._protocol import (
    NO_RECORD,
    OPS,
    PROTOCOL,
    check_job_id,
    code_fingerprint,
    dumps,
    loads,
    read_json,
    socket_path,
    valid_job_id,
    version,
    write_json,
)
from runyard.errors import InvalidInput, RunyardError, ServerUnreachable, SubmitError

__all__ = ["Agent"]

log = logging.getLogger("runyard.backends")

EVICT_AFTER_S = 600.0  # terminal jobs leave memory after this; poll then reads their record
TICK_S = 0.5


class Agent:
    """The agent process's server. ``serve()`` blocks until stopped.

    Args:
        directory: the agent directory (``$RUNYARD_HOME/agent``).
        idle_exit_s: exit after this long without jobs or connections (0: never).
    """

    def __init__(self, directory: Path, *, idle_exit_s: float = 600.0) -> None:
        self.dir = Path(directory)
        self.jobs_dir = self.dir / "jobs"
        self.work_dir = self.dir / "work"
        self.idle_exit_s = idle_exit_s
        self._records = JobRecords(self.jobs_dir)
        self._cond = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._admission = Admission(self._start, self._claim)
        self._account_project: dict[str, str] = {}  # run_as pool account -> the project it last served
        self._clients: dict[str, Any] = {}  # server URL → client; runs report through with_token() views
        self._stopping = threading.Event()
        self._n_connections = 0
        self._last_activity = time.monotonic()
        self._lock_fd: int | None = None
        self._fingerprint = code_fingerprint()

    # ------------------------------------------------------------------ serve
    def serve(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir.mkdir(exist_ok=True)
        self.work_dir.mkdir(exist_ok=True)
        self._lock_fd = _proc.try_lock(self.dir / "agent.lock")  # held, open, for the agent's whole life
        if self._lock_fd is None:
            info = read_json(self.dir / "agent.json") or {}
            print(f"Another Runyard agent (pid {info.get('pid', '?')}) already serves {self.dir}.", file=sys.stderr)
            return 3
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stopping.set())
        self._load_records()
        sock_path = socket_path(self.dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock_path)  # stale: we hold the lock, so no agent owns it
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(sock_path)
        os.chmod(sock_path, 0o600)
        server.listen(64)
        server.settimeout(TICK_S)
        write_json(self.dir / "agent.json", {"pid": os.getpid(), "socket": sock_path, "started_at": time.time(),
                                             "version": version(), "protocol": PROTOCOL})
        log.info("agent %d serving %s on %s", os.getpid(), self.dir, sock_path)
        # Warm the imports every task needs while the first requests come in (answering them
        # needs none of these), so the first run pays less for them.
        threading.Thread(target=_warm_imports, name="runyard-agent-warm", daemon=True).start()
        threading.Thread(target=self.clean_work, name="runyard-agent-clean", daemon=True).start()
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    self._tick()
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                conn.settimeout(None)
                with self._cond:
                    self._n_connections += 1
                threading.Thread(target=self._serve_connection, args=(conn,), daemon=True, name="runyard-agent-conn").start()
                self._tick()
        finally:
            server.close()
            self._shutdown()
            current = read_json(self.dir / "agent.json")
            if current is not None and current.get("pid") == os.getpid():
                (self.dir / "agent.json").unlink(missing_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(sock_path)
            for client in self._clients.values():
                client.close()
            self._records.close()
            log.info("agent %d stopped", os.getpid())
        return 0

    def _tick(self) -> None:
        now = time.monotonic()
        with self._cond:
            for job in list(self._jobs.values()):
                if job.orphan and not job.status.terminal:
                    self._refresh_orphan(job, now)
                if job.status.terminal:
                    if job.ended_at is None:
                        job.ended_at = now
                    elif now - job.ended_at > EVICT_AFTER_S and (job.thread is None or not job.thread.is_alive()):
                        del self._jobs[job.job_id]
            active = any(not j.status.terminal for j in self._jobs.values())
            idle = not active and self._n_connections == 0
            if not idle:
                self._last_activity = now
        if idle and self.idle_exit_s and now - self._last_activity > self.idle_exit_s:
            log.info("agent idle for %.0f s: exiting", self.idle_exit_s)
            self._stopping.set()

    def _shutdown(self) -> None:
        with self._cond:
            running = [j for j in self._jobs.values() if j.thread is not None and not j.status.terminal]
            for job in running:  # a job whose execution is not built yet cancels itself when it is
                job.cancel_requested = True
                job.cancel_args = {"message": "the local agent stopped", "run_status": "failed"}
            executions = [j.execution for j in running if j.execution is not None]
            threads = [j.thread for j in running]
        for execution in executions:
            execution.cancel(message="the local agent stopped", run_status="failed")
        deadline = time.monotonic() + max([j.grace_period_s for j in running] or [0.0]) + 15.0
        for t in threads:
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as reader:
                for line in reader:
                    try:
                        req = loads(line)
                        resp = self._handle(req)
                    except RunyardError as e:
                        resp = {"ok": False, **e.to_payload()}
                    except Exception as e:
                        log.exception("agent request failed")
                        resp = {"ok": False, "code": "backend_error", "message": f"agent error: {type(e).__name__}: {e}",
                                "hint": f"See {self.dir / 'agent.log'}."}
                    conn.sendall(dumps(resp) + b"\n")
        except OSError:
            pass
        finally:
            with self._cond:
                self._n_connections -= 1
                self._last_activity = time.monotonic()

    # ------------------------------------------------------------------ ops
    def _handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "poll":
            return {"ok": True, "states": self.poll([str(j) for j in req.get("job_ids") or []], float(req.get("wait_s") or 0))}
        if op == "submit":
            return {"ok": True, **self.submit(str(req.get("job_id")), req.get("launch") or {}, req.get("gpu_inventory") or [],
                                              req.get("queue"), req.get("run_as"))}
        if op == "cancel":
            return {"ok": True, "found": self.cancel(str(req.get("job_id")))}
        if op == "usage":
            return {"ok": True, **self.usage()}
        if op == "ping":
            with self._cond:
                n_active = sum(not j.status.terminal for j in self._jobs.values())
            return {"ok": True, "pid": os.getpid(), "version": version(), "protocol": PROTOCOL, "n_active": n_active,
                    "fingerprint": self._fingerprint}
        if op == "shutdown":
            if req.get("if_idle"):
                with self._cond:
                    if any(not j.status.terminal for j in self._jobs.values()) or self._admission.queue:
                        return {"ok": True, "stopping": False}
                    self._stopping.set()  # under the lock: no submit slips in between
                return {"ok": True, "stopping": True}
            self._stopping.set()
            return {"ok": True, "stopping": True}
        raise InvalidInput(f"Unknown agent operation {op!r}.", f"Use one of: {', '.join(OPS)}.")

    def submit(self, job_id: str, launch_data: dict[str, Any], gpu_inventory: list[int],
               queue: dict[str, Any] | None = None, run_as: dict[str, Any] | None = None) -> dict[str, Any]:
        from runyard.runner import launch_from_dict

        check_job_id(job_id)
        launch = launch_from_dict(launch_data)
        need = launch.resources
        multi = len(launch.tasks) > 1 or launch.distributed is not None
        if multi:
            from runyard.launch import total_resources

            need = total_resources(launch)
        if queue is not None and (multi or need.gpus):
            raise InvalidInput("Only single-task jobs without GPUs can be queued in the agent.",
                               "Submit this job without `queue` once capacity() shows room for it.")
        with self._cond:
            if self._stopping.is_set():
                raise SubmitError("The local agent is stopping and takes no new jobs.", "Submit again: a new agent starts.")
            job = self._find(job_id)
            if job is not None:
                return {"job_id": job_id, "gpus": job.gpus, "existing": True}
            if queue is not None:
                job = Job(job_id, launch.run_id, launch.attempt, need, [], launch.grace_period_s)
                self._describe(job, launch, run_as)
                self._jobs[job_id] = job
                self._admission.enqueue(job, launch, queue)
                self._cond.notify_all()
                return {"job_id": job_id, "gpus": [], "existing": False}
            gpus = self._admission.assign_gpus(self._jobs.values(), need.gpus, gpu_inventory, launch.run_id)
            job = Job(job_id, launch.run_id, launch.attempt, need, gpus, launch.grace_period_s)
            self._describe(job, launch, run_as)
            waiting = self._claim(job)
            if waiting:
                raise SubmitError(f"Run {launch.run_id} cannot start: {waiting.removeprefix('pending: ')}.",
                                  "Submit it again once a job of another project ended, or enlarge the pool "
                                  "(run_as size, and scripts/setup-job-accounts.sh N).")
            self._jobs[job_id] = job
            self._admission.start(job, launch)
            self._cond.notify_all()
        return {"job_id": job_id, "gpus": gpus, "existing": False}

    def _describe(self, job: Job, launch: Any, run_as: dict[str, Any] | None) -> None:
        """Note the job's project, tasks, output directory and account pool (lock held)."""
        job.project = launch.project
        job.labels = [slot.label for slot in launch.tasks]
        job.out_dir = str(self.work_dir / job.job_id / ".runyard")
        if run_as:
            job.pool = [str(a) for a in run_as.get("accounts") or []]
            job.jobs_dir = str(run_as.get("jobs_dir") or "")
            if not job.pool or not job.jobs_dir:
                raise InvalidInput("run_as needs accounts and jobs_dir.", "Submit through the local backend.")
            if os.geteuid() != 0:  # the sudo route (checked once a while: pool_problem remembers a working rule)
                from runyard.backends.local._accounts import pool_problem

                problem = pool_problem(job.pool)
                if problem is not None:
                    raise SubmitError(*problem)

    def _claim(self, job: Job) -> str:
        """Give a job of a run_as pool its account: the one its project already runs as, else a free one
        (no job holding resources runs as it). Returns why it must wait, or "" (lock held)."""
        if not job.pool or job.account:
            return ""
        in_use: dict[str, str] = {}
        for other in self._jobs.values():
            if other is not job and other.account and other.holding:
                in_use.setdefault(other.account, other.project)
        for account in job.pool:
            if in_use.get(account) == job.project:
                job.account = account
                return ""
        for account in job.pool:
            if account not in in_use:
                if self._account_project.get(account) != job.project:
                    # Another project's (or unknown: a new agent): what its jobs left running (a daemon out
                    # of its group) goes first.
                    from runyard.backends.local._accounts import account_ids, kill_account_processes

                    with contextlib.suppress(RunyardError):
                        n = kill_account_processes(account_ids(account)[0], account)
                        if n:
                            log.info("killed %d process(es) left running as %s before it serves project %s",
                                     n, account, job.project)
                self._account_project[account] = job.project
                job.account = account
                return ""
        return (f"pending: waiting for a job account (all {len(job.pool)} of the run_as pool run other projects' jobs)")

    def _start(self, job: Job, launch: Any) -> None:
        """Start the job's thread (lock held; called through the admission)."""
        job.thread = threading.Thread(target=self._run_job, args=(job, launch), daemon=True, name=f"runyard-job-{job.job_id}")
        job.thread.start()

    def _start_queued(self) -> None:
        self._admission.start_queued(self._stopping.is_set())

    def poll(self, job_ids: list[str], wait_s: float = 0.0) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + min(max(wait_s, 0.0), 300.0)
        with self._cond:
            while True:
                states = {jid: self._state(jid) for jid in job_ids}
                remaining = deadline - time.monotonic()
                if (remaining <= 0 or self._stopping.is_set()
                        or any(EngineStatus(s["status"]).terminal for s in states.values())):
                    return states
                self._cond.wait(min(remaining, TICK_S))

    def cancel(self, job_id: str) -> bool:
        check_job_id(job_id)
        with self._cond:
            job = self._find(job_id)
            if job is None:
                return False
            if job.status.terminal or job.cancel_requested:
                return True
            job.cancel_requested = True
            if job in self._admission.queue:  # never started: it just leaves the queue
                self._start_queued()
                self._cond.notify_all()
                return True
            execution = job.execution
            alive = job.alive_pids() if job.orphan else []
            for pid in alive:
                _signal_group(job, pid, signal.SIGTERM)
            if alive:
                job.kill_at = time.monotonic() + job.grace_period_s
        if execution is not None:
            execution.cancel()
        return True

    def usage(self) -> dict[str, Any]:
        with self._cond:
            return self._admission.usage(self._jobs.values())

    # ------------------------------------------------------------------ jobs
    def _run_job(self, job: Job, launch: Any) -> None:
        """The job's thread: run its task (or its distributed group) and note the outcome."""
        from runyard.backends.local._cores import assign_cores
        from runyard.runner import TaskExecution

        status, exit_code, reason = EngineStatus.FAILED, None, ""
        try:
            options, workdir = self._execution_options(job)
            _write_report_file(Path(job.out_dir), launch)
            if len(launch.tasks) > 1 or launch.distributed is not None:
                execution = self._group_execution(job, launch, workdir, options)
            else:
                slot = launch.tasks[0]
                placement = {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in job.gpus)}
                with self._cond:  # cores no other running job holds, when there are enough (runyard.backends.local._cores)
                    job.cores = assign_cores(launch.resources.cpus,
                                             [j.cores for j in self._jobs.values() if j.holding and j is not job])
                if job.cores:
                    placement["RUNYARD_CPU_CORES"] = ",".join(str(c) for c in job.cores)
                execution = TaskExecution(launch, slot, self._client(launch.server_url, launch.token),
                                          workdir / slot.label, placement,
                                          on_spawn=lambda pid: self._spawned(job, pid),
                                          on_exit=lambda result: self._exited(job, result.status, result.exit_code,
                                                                              result.reason), **options)
            with self._cond:
                job.execution = execution
                cancel = job.cancel_args if job.cancel_requested else None
            if cancel is not None:
                execution.cancel(**cancel)
            result = execution.run()
            status, exit_code, reason = result.status, result.exit_code, result.reason
            (Path(job.out_dir) / REPORT_FILE).unlink(missing_ok=True)  # reported: the token need not stay
        except BaseException as e:
            log.exception("job %s: agent error", job.job_id)
            reason = f"agent error: {type(e).__name__}: {e}"
            self._exited(job, status, exit_code, reason)
        if job.account:
            _seal_home(job)  # _exited did, unless the agent failed before the task ran
        with self._cond:
            job.status, job.exit_code, job.reason = status, exit_code, reason
            job.holding = False
            job.execution = None
            self._start_queued()
            self._cond.notify_all()

    def _execution_options(self, job: Job) -> tuple[dict[str, Any], Path]:
        """The job's TaskExecution options (environment, output files, account) and its directory.

        The environment is the allow-list of ``runyard.backends.kit.job_environment``, never
        the agent's own. A job of a run_as pool gets ``<jobs_dir>/<job_id>`` (0700, its
        account's; its HOME) and runs as its account; its snapshot is handed to it. As root
        through setuid and chown; otherwise through sudo (``runyard.runner._sudo``): the
        snapshot is staged in ``<work>/<job_id>/stage/`` (the agent's) and the account makes
        its directory itself.
        """
        from runyard.backends.kit import job_environment

        options: dict[str, Any] = {"output_dir": Path(job.out_dir)}
        if not job.account:
            options["base_env"] = job_environment()
            return options, self.work_dir / job.job_id
        from runyard.backends.local._accounts import account_ids, chown_tree, ensure_jobs_root, job_home, uses_sudo

        uid, gid = account_ids(job.account)
        if uses_sudo():
            # The account makes <jobs_dir>/<job_id> itself; the snapshot is staged in the agent's own
            # directory (0700 under its home) and piped in as a tar stream (runyard.runner._sudo).
            from runyard.runner import SudoAccount

            home = ensure_jobs_root(Path(job.jobs_dir)) / job.job_id
            stage = self.work_dir / job.job_id / "stage"
            stage.mkdir(mode=0o700, parents=True, exist_ok=True)
            Path(job.out_dir).mkdir(parents=True, exist_ok=True)
            (Path(job.out_dir) / HOME_FILE).write_text(f"{home}\n{job.account}\n")  # whose it is: clean_work removes it as that account
            options.update(base_env=job_environment(user=job.account, home=str(home)), sudo=SudoAccount(job.account, home))
            return options, stage
        home = job_home(Path(job.jobs_dir), job.job_id, uid, gid)
        Path(job.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(job.out_dir) / HOME_FILE).write_text(str(home))  # clean_work removes it with the job's own directory
        options.update(base_env=job_environment(user=job.account, home=str(home)), user=(uid, gid),
                       prepare=lambda path: chown_tree(path, uid, gid))
        return options, home

    def _group_execution(self, job: Job, launch: Any, workdir: Path, options: dict[str, Any]) -> Any:
        """A distributed run's execution: every task here, on 127.0.0.1, fail-fast (the runner's task group)."""
        from runyard.launch import local_endpoints, task_resources
        from runyard.runner import TaskGroup

        extra_env: dict[str, dict[str, str]] = {}
        next_gpu = 0
        for slot in launch.tasks:  # each task gets its own GPUs out of the job's
            n = task_resources(launch, slot).gpus
            extra_env[slot.label] = {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in job.gpus[next_gpu:next_gpu + n])}
            next_gpu += n
        return TaskGroup(launch, self._client(launch.server_url, launch.token), workdir,
                         local_endpoints(launch), extra_env=extra_env, execution_options=options,
                         on_spawn=lambda pid, label: self._spawned(job, pid, label),
                         on_exit=lambda result: self._exited(job, result.status, result.exit_code, result.reason),
                         single_host=True)

    def _spawned(self, job: Job, pid: int, label: str | None = None) -> None:
        started = _proc.start_time(pid)
        with self._cond:
            if label is not None:
                job.group_pids[label] = (pid, started)
            if label is None or job.pid is None:  # a distributed job is known by its first task's process
                job.pid, job.pid_started = pid, started
            job.status = EngineStatus.RUNNING
            record = job.record()
            self._cond.notify_all()
        self._records.write(job.job_id, record)

    def _exited(self, job: Job, status: EngineStatus, exit_code: int | None, reason: str) -> None:
        """The task's processes ended: free its resources (and a pool job's account) and write its terminal record."""
        if job.account:
            _seal_home(job)  # before its account may serve another project
        with self._cond:
            job.holding = False
            self._start_queued()  # the next run of the sweep starts now, before this one's final report
            record = job.record(status)
            record["exit_code"], record["reason"] = exit_code, reason  # in memory once reported (see _run_job)
            job.exited = (time.monotonic(), {"status": status.value, "exit_code": exit_code,
                                             "reason": reason + " (final report to the server pending)", "raw": status.value})
            self._cond.notify_all()
        self._records.write(job.job_id, record)

    def _client(self, url: str, token: str | None) -> Any:
        from runyard.client import Client

        with self._cond:
            # One connection pool per server; each run's token travels per request (a client per
            # token would build a TLS context and open a connection for every run).
            client = self._clients.get(url)
            if client is None:
                client = self._clients[url] = Client(url, timeout_s=10.0)
            return client.with_token(token)

    def _find(self, job_id: str) -> Job | None:
        """The job from memory, or loaded from its record (lock held)."""
        job = self._jobs.get(job_id)
        if job is None:
            job = self._records.load(job_id)
            if job is not None:
                self._jobs[job_id] = job
                self._refresh_orphan(job, time.monotonic())
        return job

    def _state(self, job_id: str) -> dict[str, Any]:
        if not valid_job_id(job_id):
            return {"status": "lost", "exit_code": None, "reason": f"not a job id of this backend: {job_id!r}", "raw": ""}
        job = self._find(job_id)
        if job is None:
            return {"status": "lost", "exit_code": None, "reason": "the local agent has no record of this job", "raw": NO_RECORD}
        if job.orphan and not job.status.terminal:
            self._refresh_orphan(job, time.monotonic())
        return job.state()

    def _refresh_orphan(self, job: Job, now: float) -> None:
        """An orphan's state from its processes (lock held)."""
        if job.status.terminal:
            return
        alive = job.alive_pids()
        if alive:
            job.status = EngineStatus.RUNNING
            job.reason = ""  # started by an earlier agent; its output stays in its files (not shipped)
            if job.kill_at is not None and now >= job.kill_at:
                for pid in alive:
                    _signal_group(job, pid, signal.SIGKILL)
            return
        if not job.account and not job.reporting:
            # Its runner (which removes what it started) died with the earlier agent: a podman container
            # outlives its killed ``podman run`` client, so remove the attempt's containers by their names.
            threading.Thread(target=_remove_containers, args=(job.run_id, job.attempt), daemon=True,
                             name=f"runyard-containers-{job.job_id}").start()
        codes = job.exit_codes()
        if job.cancel_requested:
            job.status, job.reason = EngineStatus.CANCELED, "canceled (started by an earlier agent)"
        elif codes is not None:
            if job.reporting:
                return
            # Its true outcome: report it to the server as its runner would have, then end the job
            # (its slot frees once the run's status is stored, so the next run never overlaps it there).
            job.reporting = True
            bad = [c for c in codes if c != 0]
            threading.Thread(target=self._report_orphan, args=(job, bad[0] if bad else 0), daemon=True,
                             name=f"runyard-report-{job.job_id}").start()
            return
        else:
            job.status = EngineStatus.LOST
            job.reason = ("the agent that ran it stopped before it started the task" if not job.pid else
                          "the task's process ended while no agent watched it; its exit code is unknown")
        if job.account:
            _seal_home(job)
        job.holding = False
        self._records.write_quietly(job)
        self._start_queued()
        self._cond.notify_all()

    def _report_orphan(self, job: Job, exit_code: int) -> None:
        """Report an adopted job's exit (its task and run status) with the token its report file keeps,
        then end it: SUCCEEDED or FAILED with that exit code. Unreported after ``REPORT_WAIT_S``, it ends
        all the same (the scheduler then stores the outcome from poll)."""
        status = EngineStatus.SUCCEEDED if exit_code == 0 else EngineStatus.FAILED
        reason = (f"exit code {exit_code}, read from its exit-code file: it ended after the local agent that "
                  f"started it stopped")
        report = read_json(Path(job.out_dir) / REPORT_FILE) if job.out_dir else None
        if report:
            from runyard.client import Client

            deadline = time.monotonic() + REPORT_WAIT_S
            run_status = "succeeded" if exit_code == 0 else "failed"
            while True:
                try:
                    with Client(str(report["server_url"]), report.get("token"), timeout_s=5.0) as client:
                        for label, role, rank in report.get("tasks") or []:
                            code = _task_code(job, str(label))
                            client.update_task(job.run_id, str(role), int(rank), status="succeeded" if code == 0 else "failed",
                                               exit_code=code, attempt=job.attempt)
                        client.update_run(job.run_id, status=run_status, message=reason, exit_code=exit_code)
                    (Path(job.out_dir) / REPORT_FILE).unlink(missing_ok=True)
                    break
                except RunyardError as e:
                    if isinstance(e, ServerUnreachable) and time.monotonic() < deadline:
                        time.sleep(0.5)
                        continue
                    log.warning("job %s: reporting its exit code failed: %s", job.job_id, e.message)
                    break
        if job.account:
            _seal_home(job)
        with self._cond:
            job.status, job.exit_code, job.reason = status, exit_code, reason
            job.holding = False
            job.reporting = False
            self._records.write_quietly(job)
            self._start_queued()
            self._cond.notify_all()

    def clean_work(self, max_age_s: float = RECORD_MAX_AGE_S) -> list[str]:
        """Remove the working directories of jobs that ended over ``max_age_s`` ago.

        A directory goes once no record names its job any more (adopting the records drops
        terminal records of that age) and nothing in it changed for that long; a job that
        runs or ended recently keeps its record, so its directory stays. Returns the names removed.
        """
        import shutil

        cutoff = time.time() - max_age_s
        removed: list[str] = []
        try:
            entries = list(os.scandir(self.work_dir))
        except FileNotFoundError:
            return removed
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or self._records.exists(entry.name):
                continue
            with self._cond:
                if entry.name in self._jobs:
                    continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            home, account = _home_of(Path(entry.path, ".runyard"))  # a run_as pool job's directory outside the home goes too
            if home and Path(home).name == entry.name:
                if account and os.path.lexists(home):  # the sudo route's: its account's (left by a crash)
                    from runyard.backends.local._accounts import remove_job_home, uses_sudo

                    if uses_sudo():
                        remove_job_home(account, Path(home))
                shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
        if removed:
            log.info("removed %d working directories of jobs that ended over %.0f days ago", len(removed), max_age_s / 86400)
        return removed

    def _load_records(self) -> None:
        """Adopt the records of earlier agents: orphans still hold resources; old terminal records go."""
        now = time.monotonic()
        for job in self._records.adopt():
            with self._cond:
                self._jobs[job.job_id] = job
                self._refresh_orphan(job, now)
                self._admission.adopt(job)  # it counts toward its experiment's at_most, and holds its account
                if job.account and job.holding:
                    self._account_project[job.account] = job.project


HOME_FILE = "home"  # in a job's output directory: a run_as pool job's directory (<jobs_dir>/<job_id>) [and account, with sudo]
REPORT_FILE = "report.json"  # in a job's output directory: how to report its exit when its agent died (mode 600)


def _write_report_file(out_dir: Path, launch: Any) -> None:
    """The server, token and tasks a later agent needs to report this job's exit (in the agent's own directory)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = dumps({"server_url": launch.server_url, "token": launch.token,
                  "tasks": [[slot.label, slot.role, slot.rank] for slot in launch.tasks]})
    tmp = out_dir / f".{REPORT_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, out_dir / REPORT_FILE)


def _seal_home(job: Job) -> None:
    """A run_as pool job ended: its directory goes back to the agent (see ``_accounts.seal_job_home``),
    or, without root, is removed as its account (``_accounts.remove_job_home``)."""
    from runyard.backends.local._accounts import remove_job_home, seal_job_home, uses_sudo

    home = _home_of(Path(job.out_dir))[0]
    if not home:
        return
    if uses_sudo():
        if os.path.lexists(home):
            remove_job_home(job.account, Path(home))
        shutil.rmtree(Path(job.out_dir).parent / "stage", ignore_errors=True)
    else:
        seal_job_home(Path(home))


def _home_of(out_dir: Path) -> tuple[str, str]:
    """``(home, account)`` a job's ``HOME_FILE`` names (account: "" as root), or ``("", "")``."""
    try:
        lines = (out_dir / HOME_FILE).read_text().splitlines()
    except OSError:
        return "", ""
    return (lines[0].strip() if lines else ""), (lines[1].strip() if len(lines) > 1 else "")


def _signal_group(job: Job, pgid: int, sig: int) -> None:
    """Signal an adopted job's process group: directly, or as its account through sudo (without root)."""
    from runyard.backends.local._accounts import uses_sudo

    if job.account and uses_sudo():
        from runyard.runner import sudo_kill_group

        sudo_kill_group(job.account, pgid, sig)
    else:
        _proc.killpg(pgid, sig)


def _task_code(job: Job, label: str) -> int | None:
    try:
        return int((Path(job.out_dir) / label / EXIT_CODE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _warm_imports() -> None:
    from runyard.runner import preload

    preload()


def _remove_containers(run_id: int, attempt: int) -> None:
    """Remove the podman containers of an attempt whose runner is gone: killing the ``podman run`` client
    leaves its container running under conmon. The task runner labels them with this home
    (``runyard.home``) and names them ``runyard-<owner>-RUN-ATTEMPT-...``."""
    import subprocess

    from runyard.runner._container import home_key

    podman = shutil.which("podman")
    if podman is None:
        return
    try:
        names = subprocess.run([podman, "ps", "-a", "--format", "{{.Names}}", "--filter", f"label=runyard.home={home_key()}",
                                "--filter", f"name=^runyard-[0-9a-f]{{12}}-{run_id}-{attempt}-"],
                               capture_output=True, text=True, timeout=60, check=False).stdout.split()
        if names:
            subprocess.run([podman, "rm", "-f", "--ignore", "-t", "0", *names], capture_output=True, timeout=120,
                           check=False)
    except (OSError, subprocess.SubprocessError):
        log.warning("could not remove the containers of run %s attempt %s", run_id, attempt, exc_info=True)
