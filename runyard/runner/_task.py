"""The task runner: runs one task of a run and reports everything about it.

Every backend ends up here, so logs, metrics and statuses behave the same on
every compute target. ``TaskExecution(launch, slot, client, workdir, extra_env).run()``:

1. materialises the run's snapshot into ``workdir`` (when it has one);
2. runs each ``setup`` step, then the ``command``, each through ``bash -c`` (a plain
   command of words and quotes directly, as bash would exec it) in
   ``workdir``, in a process group of its own (``start_new_session``), with
   ``os.environ`` (or ``base_env``: the local agent's allow-list) + ``launch.env`` + ``extra_env`` + ``RUNYARD_TASK_ROLE`` /
   ``RUNYARD_TASK_RANK``, and ``PATH`` starting with the directory of
   ``sys.executable`` (so ``python train.py`` finds the SDK);
3. reports the task and the run ``running``, streams stdout/stderr, heartbeats,
   and samples system metrics, all through a :class:`~runyard.runner._reporter.Reporter`;
4. stops the task when asked: canceled (SIGTERM to the group at once, SIGKILL
   after ``grace_period_s``), pruned (``grace_period_s`` to exit by itself after
   ``runyard.should_stop()`` turns true, then SIGTERM, then SIGKILL 5 s later),
   over its time limit (SIGTERM, SIGKILL after the grace period);
5. reports the exit: 0 → succeeded; otherwise failed with "exit code N" (or
   "killed by signal SIGX") and the last 20 output lines.

Output: through pipes, or (``output_dir``, the local agent) to files the runner tails,
with the command under a small sh wrapper that writes its exit code to a file: the
task then outlives the process that watches it, and another can read how it ended.

Threads: the caller's thread reads the pipes (or files) and sends signals; the reporter
thread does all HTTP. Neither blocks the other, so a slow or dead server never
stalls the task's output, and a chatty task never delays a cancel.

Operational traps:

- When the main process exits, the runner reads on for at most 1 s (a
  background child may still hold the pipes), then SIGKILLs what is left of the
  process group: a task's processes end with the task.
- ``PYTHONUNBUFFERED=1`` is set unless ``launch.env`` says otherwise: a piped
  Python buffers ``print`` output until exit, and live logs are the point.
- ``RUNYARD_DATABASE_URL`` is removed from the task's environment: the runner may
  inherit it from a server process, and user code must not see database passwords.
- Exit codes of signalled processes are reported the shell's way, 128 + N (137
  for SIGKILL), the same number Kubernetes and Slurm show.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard._proc import killpg
from runyard.errors import RunyardError, ServerUnreachable
from runyard.records.compute import EngineStatus, RunLaunch, TaskSlot

if TYPE_CHECKING:
    from runyard.runner._sudo import SudoAccount

__all__ = ["TaskExecution", "TaskResult"]

log = logging.getLogger("runyard.runner")

N_TAIL_LINES = 30  # kept in memory
N_MESSAGE_LINES = 20  # put in the failure message
MAX_LINE_BYTES = 64 * 1024
DRAIN_AFTER_EXIT_S = 1.0
PRUNE_KILL_AFTER_S = 5.0
# A pruned run's code hears of it through should_stop(), which reads the run's status every 2 s
# (runyard.sdk._sender.STATUS_EVERY_S) from a sender thread that wakes every second: points it logs
# this soon after the runner heard of it are not "instead of exiting", it could not have known yet.
SDK_HEARS_WITHIN_S = 4.0
# How long the log's line on who stopped a run waits for the server's word when a backend relays a cancel
# (a heartbeat's answer; a loaded server takes more than a second); the signals go at once.
WORD_WAIT_S = 5.0
START_HOLD_S = 0.1  # a task that ends this soon reports its start and end in one request
_HOST = socket.gethostname()


@dataclass(frozen=True)
class TaskResult:
    """How a task ended.

    Attributes:
        status: the engine view (SUCCEEDED, FAILED, CANCELED, TIMEOUT).
        exit_code: the command's exit code (128 + N when killed by signal N);
            ``None`` when no process ran.
        reason: one line, e.g. "exit code 3", "killed by signal SIGKILL",
            "time limit of 60s exceeded", "canceled", "pruned: stopped by SIGTERM".
        message: the status message reported for the run (reason + last lines).
        run_status / task_status: what was reported to the server; ``run_status`` is
            ``None`` when the server already decided it (canceled, pruned, deleted).
        reported: every report reached the server.
    """

    status: EngineStatus
    exit_code: int | None
    reason: str
    message: str
    run_status: str | None
    task_status: str
    reported: bool = False


@dataclass
class _Stop:
    why: str  # canceled | pruned | deleted | time_limit | backend
    term_at: float  # the first stop signal (stop_signal:, default SIGINT)
    kill_at: float
    run_status: str | None = None  # for why == backend: what to report for the run
    message: str = ""
    task_status: str | None = None  # for why == backend: what to report for the task
    second_at: float | None = None  # SIGTERM after the default SIGINT
    noted_at: float | None = None  # when the log says who stopped the run (a backend's cancel waits for the server's word)


class TaskExecution:
    """Runs one task of one attempt of a run. ``run()`` blocks; ``cancel()`` is thread-safe.

    Args:
        launch: the attempt.
        slot: which task of the run this is (role and rank).
        client: a ``runyard.client.Client`` for ``launch.server_url`` (may be shared).
        workdir: where the snapshot goes and the commands run; created if missing.
        extra_env: placement variables from the backend (e.g. ``CUDA_VISIBLE_DEVICES``).
        on_spawn: called with the pid of each process started (setup steps, command).
        on_exit: called with the result once the processes ended, before the final
            reports are delivered (the backend frees the task's resources here).
        finish_timeout_s: how long to keep retrying the final reports while the
            server is unreachable.
        echo: also write the task's output to this process's stdout/stderr
            (``runyard.runner exec`` under Slurm/SSH, where that output is kept too).
        cache_dir: where materialised snapshot blobs are cached between runs.
        heartbeat_s / sample_s: how often to heartbeat and to sample system metrics.
        command: what this task runs instead of ``launch.command`` (a distributed
            task's command from ``runyard.launch.plan_task``).
        run_outcome: for a task of several: called with the task's result (after
            ``on_exit``); returns the run status, message and exit code this task
            reports, or ``(None, "", None)`` to report none (the task group decides).
        settle: called with the result once the processes ended, before ``on_exit`` and
            any report; returns the result to report instead (``runyard.runner exec``
            turns an engine's stop of a run that had already ended into a cancel).
        base_env: the environment the task starts from instead of ``os.environ`` (the local
            agent's allow-list, ``runyard.backends.kit.job_environment``).
        output_dir: the task's output goes to files in ``<output_dir>/<task label>/`` instead of pipes: ``stdout``,
            ``stderr``, and ``exit-code`` (the command's exit code, one line, written by a
            small sh wrapper when the command ends). A task so started keeps running and
            printing when the process that watches it dies, and its exit code can be read
            back by another (the local agent's crash adoption).
        user: ``(uid, gid)`` to run the processes as (supplementary groups cleared); needs root.
        prepare: called with the working directory once the snapshot is in it, before any
            process starts (the local agent hands it to the job's account here).
        sudo: run the processes as another account through ``sudo -n -u ACCOUNT`` (a
            :class:`~runyard.runner._sudo.SudoAccount`; the local agent without root): the snapshot
            goes into ``workdir`` (the caller's), then to ``<home>/<label>`` as the account; every
            signal to the task is sent as the account.
    """

    def __init__(self, launch: RunLaunch, slot: TaskSlot, client: Any, workdir: Path,
                 extra_env: Mapping[str, str] | None = None, *, on_spawn: Callable[[int], None] | None = None,
                 on_exit: Callable[[TaskResult], None] | None = None, finish_timeout_s: float = 900.0,
                 echo: bool = False, cache_dir: Path | None = None, heartbeat_s: float = 1.0,
                 sample_s: float = 5.0, command: str | None = None,
                 run_outcome: Callable[[TaskResult], tuple[str | None, str, int | None]] | None = None,
                 settle: Callable[[TaskResult], TaskResult] | None = None,
                 base_env: Mapping[str, str] | None = None, output_dir: Path | None = None,
                 user: tuple[int, int] | None = None, prepare: Callable[[Path], None] | None = None,
                 sudo: SudoAccount | None = None) -> None:
        from runyard.runner._reporter import Reporter

        self.launch = launch
        self.slot = slot
        self.workdir = Path(workdir)
        self._client = client
        self._extra_env = dict(extra_env or {})
        self._command = launch.command if command is None else command
        self._run_outcome = run_outcome
        self._settle = settle
        self._on_spawn = on_spawn
        self._on_exit = on_exit
        self._finish_timeout_s = finish_timeout_s
        self._echo = echo
        self._cache_dir = cache_dir
        self._base_env = None if base_env is None else dict(base_env)
        self._output_dir = None if output_dir is None else Path(output_dir) / slot.label
        self._user = user
        self._prepare = prepare
        self._sudo = sudo
        self._rundir = self.workdir  # where the processes run (the account's copy, with sudo)
        self._lock = threading.Lock()
        self._stop: _Stop | None = None
        self._term_sent = False
        self._second_sent = False
        self._kill_sent = False
        self._word_by = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._tail: collections.deque[str] = collections.deque(maxlen=N_TAIL_LINES)
        self._reporter = Reporter(client, launch.run_id, slot.label, on_run_status=self._on_run_status,
                                  heartbeat_s=heartbeat_s, sample_s=sample_s)
        self._sampler: Any = None
        self._container: Any = None  # runyard.runner._container.TaskContainer, for a run with an image
        self._deadline: float | None = None  # the time limit, monotonic
        self._tensorboard: Any = None  # runyard.runner._tensorboard.EventTailer, for a run with tensorboard:
        self.pid: int | None = None
        self._metrics: Any = None  # runyard.runner._output_metrics.OutputMetrics, while the command runs
        self._output_metrics: Any = None
        # Of a distributed run, the first task's output is read (every rank of DDP & co. prints the same epoch lines).
        if launch.task_io.get("output_metrics") and slot == launch.tasks[0]:
            from runyard.runner._output_metrics import OutputMetrics

            self._output_metrics = OutputMetrics(launch.task_io["output_metrics"],
                                                 note=lambda text: self._reporter.line("system", text, time.time()))

    # ------------------------------------------------------------------ control
    def cancel(self, message: str = "canceled by the backend", run_status: str | None = "canceled",
               task_status: str | None = None) -> None:
        """Stop the task now: the stop signal to its process group (``stop_signal:``, default SIGINT then
        SIGTERM), SIGKILL after the grace period.

        Idempotent. ``run_status`` is reported for the run (``None``: report nothing);
        ``task_status`` for the task (default: failed or canceled, after ``run_status``).
        With the default message (a backend relaying the scheduler's cancel of a run a user
        canceled), the log names who stopped the run once the server says so (the next heartbeat,
        asked for at once); "the backend" only when it does not within ``WORD_WAIT_S``. The signals
        do not wait for it.
        """
        self._request_stop("backend", 0.0, self._stop_grace_s(), run_status=run_status, message=message,
                           task_status=task_status, wait_for_word=message == "canceled by the backend")
        if message == "canceled by the backend":
            self._reporter.heartbeat_now()

    def _stop_grace_s(self, why: str = "") -> float:
        """How long the code has after the stop signal (``stop_grace:``; else the experiment's grace, 5 s when pruned)."""
        io = self.launch.task_io
        if io.get("stop_grace_s") is not None:
            return float(io["stop_grace_s"])
        return PRUNE_KILL_AFTER_S if why == "pruned" else self.launch.grace_period_s

    def _on_run_status(self, status: str) -> None:
        if status == "canceled":
            self._request_stop("canceled", 0.0, self._stop_grace_s())
        elif status == "pruned":
            first = self._stop is None
            self._request_stop("pruned", self.launch.grace_period_s, self._stop_grace_s("pruned"))
            if first and hasattr(self._client, "metric_summaries"):  # not while spooling: no server to ask
                threading.Thread(target=self._stop_at_next_sdk_metric, daemon=True,
                                 name=f"runyard-pruned-{self.launch.run_id}-{self.slot.label}").start()
        elif status == "deleted":
            self._request_stop("deleted", 0.0, self._stop_grace_s())
        elif status == "failed" and self.launch.distributed is not None:
            # A sibling task on another host failed the run (runyard.runner exec): stop too.
            self._request_stop("backend", 0.0, self._stop_grace_s(), message="stopped: another task of the run failed")

    def _signals(self) -> tuple[int, int | None]:
        """The stop signal and the one after it: ``stop_signal:``, or SIGINT then SIGTERM."""
        name = self.launch.task_io.get("stop_signal")
        if name:
            return int(getattr(signal, str(name), signal.SIGTERM)), None
        return signal.SIGINT, signal.SIGTERM

    def _request_stop(self, why: str, term_after_s: float, grace_s: float, *, run_status: str | None = None,
                      message: str = "", task_status: str | None = None, wait_for_word: bool = False) -> None:
        now = time.monotonic()
        _, second = self._signals()
        with self._lock:
            term_at = now + term_after_s
            stop = self._stop
            if stop is None:
                stop = self._stop = _Stop(why, term_at, 0.0, run_status, message, task_status)
                self._schedule(stop, term_at, grace_s, second)
                if wait_for_word:
                    stop.noted_at = None  # noted by _note_stop: the server's word, or the backend's after WORD_WAIT_S
                    self._word_by = now + WORD_WAIT_S
                else:
                    self._note_stop(stop, term_after_s, grace_s)
            else:
                if stop.why == "backend" and stop.noted_at is None and why in ("canceled", "deleted"):
                    stop.why = why  # the server's word on a backend's cancel: who stopped the run
                    stop.run_status = None
                    self._note_stop(stop, 0.0, grace_s)
                if term_at < stop.term_at and not self._term_sent:  # e.g. canceled while pruned: stop sooner
                    self._schedule(stop, term_at, grace_s, second)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    @staticmethod
    def _schedule(stop: _Stop, term_at: float, grace_s: float, second: int | None) -> None:
        stop.term_at = term_at
        if second is None:
            stop.second_at, stop.kill_at = None, term_at + grace_s
        else:
            stop.second_at, stop.kill_at = term_at + grace_s, term_at + grace_s + PRUNE_KILL_AFTER_S

    def _note_stop(self, stop: _Stop, term_after_s: float, grace_s: float) -> None:
        """Say in the log who stopped the run and how (lock held)."""
        stop.noted_at = time.monotonic()
        first, second = self._signals()
        grace_s = max(0.0, grace_s)
        what = {"canceled": "the run was canceled by a user", "pruned": "the run was pruned by the early-stopping rule",
                "deleted": "the run was deleted by a user",
                "time_limit": f"the time limit of {self.launch.time_limit_s}s was reached",
                "backend": stop.message or "stopped by the backend"}[stop.why]
        if second is None:
            how = f"sending {signal.Signals(first).name}, SIGKILL {grace_s:g}s later"
        else:
            how = (f"sending {signal.Signals(first).name}, {signal.Signals(second).name} {grace_s:g}s later, "
                   f"SIGKILL {PRUNE_KILL_AFTER_S:g}s after that")
        if stop.why == "pruned":
            note = (f"[runyard] {what}: waiting {term_after_s:g}s (or until the next metric in its output) for the "
                    f"task to exit, then {how}")
        else:
            note = f"[runyard] {what}: {how}"
        self._reporter.line("system", note, time.time())

    def _stop_at_metric(self, how: str = "printed") -> None:
        """A pruned run's code printed (or logged) another metric instead of exiting: stop it now."""
        with self._lock:
            stop = self._stop
            if stop is None or stop.why != "pruned" or self._term_sent:
                return
            _, second = self._signals()
            self._schedule(stop, time.monotonic(), self._stop_grace_s("pruned"), second)
            self._reporter.line("system", f"[runyard] the pruned run {how} another metric instead of exiting: "
                                "stopping it now", time.time())
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _stop_at_next_sdk_metric(self) -> None:
        """A pruned run whose code logs through the SDK and never asks ``should_stop()``: stopped at its next
        point. Its points still reach the server after the decision; the server's count of its own (not
        ``sys/``) points is read once a second while the run waits for its code to exit, counting from
        ``SDK_HEARS_WITHIN_S`` on: code that asks should_stop() (a framework's callback) logs a step or two
        before it hears of the decision, and must not be stopped for them."""
        run_id = self.launch.run_id

        def points() -> int | None:
            try:
                summaries = self._client.metric_summaries(run_id)
            except RunyardError:  # a server away or refusing: the grace period stops it anyway
                return None
            return sum(int(v.get("count") or 0) for k, v in summaries.items() if not k.startswith("sys/"))

        deadline = time.monotonic() + SDK_HEARS_WITHIN_S
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            with self._lock:
                if self._stop is None or self._stop.why != "pruned" or self._term_sent or self._proc is None:
                    return
        before = points()
        while True:
            time.sleep(1.0)
            with self._lock:
                stop, done = self._stop, self._term_sent or self._proc is None
            if stop is None or stop.why != "pruned" or done:
                return
            now = points()
            if before is None:
                before = now
            elif now is not None and now > before:
                self._stop_at_metric("logged")
                return

    def _apply_signals(self, now: float) -> None:
        with self._lock:
            stop, proc = self._stop, self._proc
            if stop is None:
                return
            if stop.noted_at is None and now >= self._word_by:
                self._note_stop(stop, 0.0, stop.kill_at - stop.term_at)
            if proc is None:
                return
            first, second = self._signals()
            send = None
            if not self._kill_sent and now >= stop.kill_at:
                send, self._kill_sent, self._term_sent, self._second_sent = signal.SIGKILL, True, True, True
            elif not self._term_sent and now >= stop.term_at:
                send, self._term_sent = first, True
            elif (second is not None and not self._second_sent and stop.second_at is not None
                  and now >= stop.second_at):
                send, self._second_sent = second, True
        if send is not None:
            self._killpg(proc.pid, send)

    def _killpg(self, pgid: int, sig: int) -> None:
        if self._sudo is None:
            killpg(pgid, sig)
        else:
            from runyard.runner._sudo import kill_group

            kill_group(self._sudo.account, pgid, sig)

    # --------------------------------------------------------------------- run
    def run(self) -> TaskResult:
        """Run the task to its end and report it. Never raises for task failures."""
        launch = self.launch
        self._reporter.start()
        rc: int | None = None
        failed_step = ""
        error = ""
        keeper = None
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            error = self._materialize()
            if not error and launch.task_io.get("mounts"):
                from runyard.runner._outputs import make_mounts

                error = make_mounts(self.workdir, launch.task_io["mounts"], contained=launch.container is not None)
            if not error and self._prepare is not None:
                self._prepare(self.workdir)
            if not error and launch.datasets:  # after prepare: the job's account gets read access, not ownership
                error = self._materialize_datasets()
            if not error and launch.models:  # the same, for the model versions of models:
                error = self._materialize_models()
            if not error:
                env = self._environment()
                if self._sudo is not None:
                    from runyard.runner._sudo import install

                    self._rundir = install(self._sudo, self.workdir, self.slot.label, env)
                    if launch.datasets or launch.models:
                        self._release_sealed_dirs()
                    shutil.rmtree(self.workdir, ignore_errors=True)  # the agent's staging copy
                if launch.container is not None:
                    rc, failed_step, error = self._prepare_image(env)
                keeper = self._start_outputs() if rc in (None, 0) and not error else None
                steps = [(f"setup step {i}", s) for i, s in enumerate(launch.setup, 1)] + [("", self._command)]
                for what, command in steps if rc in (None, 0) and not error else ():
                    if self._stop is not None:
                        break
                    rc = self._run_process(command, env, final=not what, contained=self._container is not None)
                    if rc != 0:
                        failed_step = what
                        break
        except Exception as e:
            log.exception("run %s task %s: runner error", launch.run_id, self.slot.label)
            error = f"runner error: {type(e).__name__}: {e}"
        if self._container is not None:
            self._container.cleanup(self._capture)
        if launch.datasets or launch.models:  # the files stay read-only; the directories writable again, so the workdir can go
            self._release_sealed_dirs()
        if self._tensorboard is not None:
            self._finish_tensorboard()
        if keeper is not None:  # however the task ended: the files it wrote are kept
            self._finish_outputs(keeper)
        result = self._result(rc, failed_step, error)
        if self._settle is not None:
            result = self._settle(result)
        self._reporter.set_sampler(None)
        if self._on_exit is not None:
            self._on_exit(result)
        slot = self.slot
        self._reporter.task_status(role=slot.role, rank=slot.rank, status=result.task_status, exit_code=result.exit_code,
                                   attempt=launch.attempt)
        run_status, run_message, run_exit = result.run_status, result.message, result.exit_code
        if self._run_outcome is not None:
            run_status, run_message, run_exit = self._run_outcome(result)
        if run_status is not None:
            self._reporter.run_status(run_status, run_message, run_exit)
        reported = self._reporter.finish(self._finish_timeout_s)
        with self._lock:
            sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if reported and self._output_dir is not None:  # the server has every line: the copies need not stay
            for name in ("stdout", "stderr"):
                (self._output_dir / name).unlink(missing_ok=True)
        return TaskResult(result.status, result.exit_code, result.reason, result.message, result.run_status,
                          result.task_status, reported)

    def _start_outputs(self) -> Any:
        """The task's :class:`~runyard.runner._outputs.OutputKeeper` (uploading every ``outputs_every``), or None."""
        io = self.launch.task_io
        if not io.get("outputs"):
            return None
        from runyard.runner._outputs import OutputKeeper

        prefix = "" if len(self.launch.tasks) <= 1 else f"{self.slot.label}/"
        keeper = OutputKeeper(self._client, self.launch.run_id, self._rundir, io["outputs"],
                              note=lambda text: self._reporter.line("system", text, time.time()), prefix=prefix)
        if io.get("outputs_every_s"):
            keeper.start(float(io["outputs_every_s"]))
        return keeper

    def _finish_outputs(self, keeper: Any) -> None:
        keeper.close()
        if self._stop is not None and self._stop.why == "deleted":
            return
        try:
            keeper.keep(final=True)
        except Exception as e:  # the run's end is still reported
            log.exception("run %s: keeping outputs failed", self.launch.run_id)
            self._reporter.line("system", f"[runyard] outputs: could not be kept ({type(e).__name__}: {e})", time.time())

    def _materialize(self) -> str:
        """Fetch the snapshot into the workdir; returns an error message, or "" when done."""
        snapshot_id = self.launch.snapshot_id
        if not snapshot_id:
            return ""
        from runyard import config
        from runyard.snapshot import materialize

        cache_dir = self._cache_dir or config.home() / "cache" / "blobs"
        delay = 0.2
        while True:
            try:
                # Copies, not hard links into the cache: a run that rewrites one of its files in
                # place must not change the same file under a concurrent run of the snapshot.
                materialize(_SnapshotCache(self._client, self.launch.server_url, self.launch.token), snapshot_id,
                            self.workdir, cache_dir=cache_dir, link=False)
                return ""
            except ServerUnreachable:
                if self._stop is not None:
                    return "stopped while fetching the snapshot"
                time.sleep(delay)  # not the dispatch path: only while the server is down
                delay = min(5.0, delay * 2)
            except RunyardError as e:
                return f"could not fetch snapshot {snapshot_id}: {e.message}"

    def _materialize_datasets(self) -> str:
        """Each of the launch's datasets, read-only in ``<workdir>/datasets/<name>/``; an error message, or ""."""
        from runyard.snapshot import materialize_dataset

        return self._materialize_inputs(
            "dataset", "datasets", self.launch.datasets, materialize_dataset,
            lambda v: f"{v.get('project')}/{v.get('dataset')}:{v.get('version')}")

    def _materialize_models(self) -> str:
        """Each of the launch's model versions, read-only in ``<workdir>/models/<name>/``; an error message, or ""."""
        from runyard.snapshot import materialize_model

        return self._materialize_inputs(
            "model", "models", self.launch.models, materialize_model,
            lambda v: str(v.get("uri") or f"models:/{v.get('project')}/{v.get('model')}/{v.get('version')}"))

    def _materialize_inputs(self, kind: str, folder: str, items: Mapping[str, Mapping[str, Any]],
                            write: Callable[..., Any], label_of: Callable[[Mapping[str, Any]], str]) -> str:
        """Write each of ``items`` (name → version) read-only into ``<workdir>/<folder>/<name>/`` with ``write``
        (through the blob cache), waiting while the server is down; an error message, or ""."""
        from runyard import config

        cache_dir = self._cache_dir or config.home() / "cache" / "blobs"
        client = _SnapshotCache(self._client, self.launch.server_url, self.launch.token)
        for name, version in items.items():
            label = label_of(version)
            delay = 0.2
            while True:
                try:
                    done = write(client, version, self.workdir / folder / name, cache_dir)
                    break
                except ServerUnreachable:
                    if self._stop is not None:
                        return f"stopped while fetching the {folder}"
                    time.sleep(delay)  # only while the server is down
                    delay = min(5.0, delay * 2)
                except RunyardError as e:
                    return f"could not materialise {kind} {name} ({label}): {e.message}"
                except OSError as e:
                    return f"could not materialise {kind} {name} ({label}): {e}"
            self._reporter.line("system", f"[runyard] {kind} {name}: {label}, {done.n_files} files in {folder}/{name}/ "
                                f"(read-only; {done.n_downloaded} downloaded)", time.time())
        return ""

    def _release_sealed_dirs(self) -> None:
        """The directories of ``datasets/`` and of each ``models/<name>/`` writable by their owner again (the
        rest of a ``models/`` folder the code snapshot brought is the user's own, left as it is)."""
        from runyard.snapshot import release_dataset_dirs

        if self.launch.datasets:
            release_dataset_dirs(self.workdir / "datasets")
        for name in self.launch.models:
            release_dataset_dirs(self.workdir / "models" / name)

    def _dataset_root(self, folder: str = "datasets") -> str:
        """Where the task's processes find ``datasets/`` (or ``models/``): in the container, the account's copy
        (sudo), or the workdir."""
        if self.launch.container is not None:
            from runyard.runner._container import GUEST_WORK

            return f"{GUEST_WORK}/{folder}"
        if self._sudo is not None:
            return str(self._sudo.home / self.slot.label / folder)
        return str(self.workdir.resolve() / folder)

    def _environment(self) -> dict[str, str]:
        launch = self.launch
        env = dict(os.environ if self._base_env is None else self._base_env)
        env.pop("RUNYARD_DATABASE_URL", None)
        env.update(launch.env)
        env.update(self._extra_env)
        defaults = {
            "RUNYARD_RUN_ID": str(launch.run_id),
            "RUNYARD_SERVER": launch.server_url,
            "RUNYARD_PROJECT": launch.project,
            "RUNYARD_PARAMS": json.dumps(dict(launch.params)),
            "PYTHONUNBUFFERED": "1",
        }
        if launch.token:
            defaults["RUNYARD_TOKEN"] = launch.token
        for k, v in defaults.items():
            if k not in launch.env and k not in self._extra_env:
                env[k] = v
        from runyard.launch import task_resources
        from runyard.runner._threads import thread_env

        # Thread pools follow the task's CPUs unless the user's env: (or the backend) says otherwise.
        env.update(thread_env(task_resources(launch, self.slot).cpus, {**launch.env, **self._extra_env}))
        if launch.datasets:
            from runyard.snapshot._dataset_dirs import env_name

            root = self._dataset_root()
            env.update({env_name(name): f"{root}/{name}" for name in launch.datasets})
        if launch.models:
            from runyard.snapshot._dataset_dirs import model_env_name

            root = self._dataset_root("models")
            env.update({model_env_name(name): f"{root}/{name}" for name in launch.models})
        env["RUNYARD_ATTEMPT"] = str(launch.attempt)
        env["RUNYARD_TASK_ROLE"] = self.slot.role
        env["RUNYARD_TASK_RANK"] = str(self.slot.rank)
        bindir = os.path.dirname(sys.executable)
        path = env.get("PATH", os.defpath)
        env["PATH"] = bindir + os.pathsep + path if path else bindir
        return env

    def _prepare_image(self, env: dict[str, str]) -> tuple[int | None, str, str]:
        """Get the run's image ready (pull, build, convert): ``(exit code, failed step, error)``."""
        from runyard.runner._container import ImageStepFailed, TaskContainer

        gpus = env.get("CUDA_VISIBLE_DEVICES")
        spool = self._extra_env.get("RUNYARD_SPOOL_DIR")
        self._container = TaskContainer(self.launch, self.slot, gpus=gpus.split(",") if gpus else None,
                                        spool=Path(spool) if spool else None, task_env_names=self._extra_env)

        def step(argv: list[str], what: str) -> int:
            if self._stop is not None:
                return 130
            return self._run_process(argv, env, final=False)

        def note(text: str) -> None:
            self._emit("system", text.encode())

        home = env.get("HOME")
        if (self._user is not None or self._sudo is not None) and home and self._container.runtime == "podman":
            # Rootless podman as a pool account: a runtime directory of the account's own, in its job home
            # (without one, podman falls back to /tmp/podman-run-UID, shared by the account's jobs).
            xdg = f"{home}/.runyard-xdg"
            self._capture(["mkdir", "-m", "700", "-p", xdg])
            self._container.runtime_env["XDG_RUNTIME_DIR"] = xdg

        try:
            tags = self._container.prepare(self._rundir, step, self._capture, note, lambda: self._stop is not None)
        except ImageStepFailed as e:
            if e.rc is None:
                return None, "", e.message
            return e.rc, e.what, ""
        self._reporter.tags(tags)
        return None, "", ""

    def _capture(self, argv: list[str]) -> tuple[int, str]:
        """Run a short command as the task's account (not logged): its exit code and stdout."""
        kwargs: dict[str, Any] = {"capture_output": True, "timeout": 120, "check": False, "stdin": subprocess.DEVNULL}
        if self._sudo is not None:
            from runyard.runner._sudo import argv as sudo_argv
            from runyard.runner._sudo import popen_env

            argv = sudo_argv(self._sudo, self.slot.label, argv)
            kwargs.update(env=popen_env(), cwd="/")
        else:
            kwargs.update(env=self._environment(), cwd=self._rundir)
            if self._user is not None:
                kwargs.update(user=self._user[0], group=self._user[1], extra_groups=[])
        try:
            res = subprocess.run(argv, **kwargs)
        except (OSError, subprocess.TimeoutExpired) as e:
            return 127, str(e)
        return res.returncode, res.stdout.decode(errors="replace")

    def _run_process(self, command: str | list[str], env: dict[str, str], final: bool = True,
                     contained: bool = False) -> int:
        files = None
        if self._output_dir is not None:
            files = _OutputFiles(self._output_dir, exit_code=final)
        try:
            if contained:
                plain = _plain_argv(command) if isinstance(command, str) else None
                command, env = self._container.command(command, env, plain, self._rundir)
            from runyard.runner._threads import parse_cores, pinned

            with pinned(parse_cores(self._extra_env.get("RUNYARD_CPU_CORES"))):  # the local agent's cores for the job
                proc = _spawn(command, self._rundir, env, files, self._user, self._sudo, self.slot.label)
        except BaseException:
            if files is not None:
                files.close()
            raise
        first = self.pid is None
        self.pid = proc.pid
        if final:  # metrics come from the command's output, not from setup steps or image builds
            self._metrics = self._output_metrics
        with self._lock:
            self._proc = proc
            self._term_sent = self._second_sent = self._kill_sent = False
        launch, slot = self.launch, self.slot
        now = time.monotonic()
        if first:
            if launch.time_limit_s is not None:
                self._deadline = now + launch.time_limit_s
            self._reporter.hold(START_HOLD_S)
            self._reporter.run_status("running", heartbeat_if_refused=True)
            self._reporter.task_status(role=slot.role, rank=slot.rank, status="running", pid=proc.pid, host=_HOST,
                                       attempt=launch.attempt)
            self._start_sampler(proc.pid, env.get("CUDA_VISIBLE_DEVICES"))
            if launch.tensorboard is not None and slot == launch.tasks[0]:
                self._start_tensorboard(str(launch.tensorboard.get("logdir", "")))
        else:
            self._reporter.task_status(role=slot.role, rank=slot.rank, pid=proc.pid, attempt=launch.attempt)
            with self._lock:
                sampler = self._sampler
            if sampler is not None:
                sampler.retarget(proc.pid)
        if self._on_spawn is not None:
            self._on_spawn(proc.pid)
        try:
            return self._watch(proc) if files is None else self._watch_files(proc, files)
        finally:
            with self._lock:
                self._proc = None
            if files is not None:
                files.close()

    def _start_tensorboard(self, logdir: str) -> None:
        """Tail ``tensorboard.logdir``'s event files beside the task (its first task of several)."""
        from runyard.runner._tensorboard import EventTailer, inside

        path = inside(self._rundir, logdir)
        if path is None:
            self._emit("system", f"[runyard] tensorboard: logdir {logdir!r} leads outside the run's working "
                       "directory (a symbolic link?); its event files are not read.".encode())
            return
        self._tensorboard = EventTailer(path, self._reporter.log_metrics, lambda text: self._emit("system", text.encode()))
        self._tensorboard.start()

    def _finish_tensorboard(self) -> None:
        """Read the event files' last scalars; keep the files as artifacts with ``serve: true``."""
        from runyard.runner._tensorboard import keep_event_files

        tailer, self._tensorboard = self._tensorboard, None
        tailer.stop()
        if not (self.launch.tensorboard or {}).get("serve"):
            return

        def upload(name: str, file: Path) -> None:
            with open(file, "rb") as fh:
                self._client.upload_artifact(self.launch.run_id, name, fh)

        n = keep_event_files(tailer.logdir, upload, lambda text: self._emit("system", text.encode()))
        if n:
            self._emit("system", f"[runyard] tensorboard: kept {n} event file{'s' if n != 1 else ''} for "
                       f"`runyard tensorboard`".encode())

    def _start_sampler(self, pid: int, cuda_visible: str | None) -> None:
        """Sample from the reporter thread; the sampler is built there on the first call
        (so a short task pays nothing for it on its start path)."""
        prefix = "" if len(self.launch.tasks) <= 1 else f"{self.slot.label}/"

        followed: list[int] = []  # the container's process last sampled (podman's conmon), if any

        def sample() -> dict[str, float]:
            with self._lock:
                sampler, current = self._sampler, self.pid
            contained = self._container.sample_pid() if self._container is not None else None
            if sampler is None:
                from runyard.runner._sysmetrics import ProcessTreeSampler

                sampler = ProcessTreeSampler(contained or current or pid, cuda_visible)
                followed[:] = [contained] if contained else []
                with self._lock:
                    self._sampler = sampler
                return {}  # the first sample only primes cpu_percent()
            if contained and followed != [contained]:  # the container's processes are not the runtime client's children
                sampler.retarget(contained)
                followed[:] = [contained]
            values = sampler.sample()
            if prefix:
                return {k.replace("sys/", f"sys/{prefix}", 1): v for k, v in values.items()}
            return values

        self._reporter.set_sampler(sample)

    def _watch(self, proc: subprocess.Popen[bytes]) -> int:
        """Read the pipes until the process ended; send the signals that are due."""
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        sel.register(out_fd, selectors.EVENT_READ, "stdout")
        sel.register(err_fd, selectors.EVENT_READ, "stderr")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        pidfd = -1
        try:
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):  # no pidfd (old kernel): poll the exit instead
            pidfd = -1
        partial = {"stdout": b"", "stderr": b""}
        open_pipes = 2
        drain_until: float | None = None
        try:
            while True:
                now = self._tick()
                if drain_until is None and _exited(proc):
                    drain_until = now + DRAIN_AFTER_EXIT_S
                if drain_until is not None and (open_pipes == 0 or now >= drain_until):
                    break
                timeout = self._select_timeout(now, drain_until, pidfd >= 0 or open_pipes > 0)
                for key, _ in sel.select(timeout):
                    tag = key.data
                    if tag == "wake":
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                    elif tag == "exit":
                        sel.unregister(pidfd)
                    else:
                        data = os.read(key.fd, 65536)
                        if not data:
                            sel.unregister(key.fd)
                            open_pipes -= 1
                            if partial[tag]:
                                self._emit(tag, partial[tag])
                                partial[tag] = b""
                            continue
                        self._emit_lines(tag, partial, data)
            for tag, rest in partial.items():
                if rest:
                    self._emit(tag, rest)
        finally:
            sel.close()
            if pidfd >= 0:
                os.close(pidfd)
            proc.stdout.close()
            proc.stderr.close()
            # Background children that outlived the main process end with the task.
            self._killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return proc.returncode

    def _watch_files(self, proc: subprocess.Popen[bytes], files: _OutputFiles) -> int:
        """Tail the output files until the process ended; send the signals that are due.

        The process's exit is an event (pidfd); the files are read every ``FILE_POLL_MIN_S``
        while the task prints, backing off to ``FILE_POLL_MAX_S`` while it is quiet. After
        the exit the group is killed (a background child that still writes ends with the
        task) and the files are read to their end.
        """
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        pidfd = -1
        try:
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):
            pidfd = -1
        partial = {"stdout": b"", "stderr": b""}
        readers = {"stdout": (files.stdout_r, files.stdout_w), "stderr": (files.stderr_r, files.stderr_w)}
        unpunched = {"stdout": 0, "stderr": 0}

        def read_all() -> bool:
            got = False
            for tag, (fd, write_fd) in readers.items():
                for _ in range(64):  # at most 4 MB per stream and pass: signals and the other stream go on
                    data = os.read(fd, 65536)
                    if not data:
                        break
                    got = True
                    unpunched[tag] += len(data)
                    if unpunched[tag] >= PUNCH_BYTES:  # a chatty task's file takes no more disk than a few MB
                        _punch_hole(write_fd, os.lseek(fd, 0, os.SEEK_CUR))
                        unpunched[tag] = 0
                    self._emit_lines(tag, partial, data)
            return got

        interval = FILE_POLL_MIN_S
        try:
            while True:
                now = self._tick()
                ended = _exited(proc)
                # Read often while the task prints, less while it is quiet (its exit wakes us anyway).
                interval = FILE_POLL_MIN_S if read_all() else min(FILE_POLL_MAX_S, interval * 2)
                if ended:
                    break
                timeout = min(self._select_timeout(now, None, True), interval if pidfd >= 0 else FILE_POLL_MIN_S)
                for key, _ in sel.select(timeout):
                    if key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                    elif key.data == "exit":
                        sel.unregister(pidfd)
            self._killpg(proc.pid, signal.SIGKILL)  # background children end with the task
            while read_all():
                pass
            for tag, rest in partial.items():
                if rest:
                    self._emit(tag, rest)
        finally:
            sel.close()
            if pidfd >= 0:
                os.close(pidfd)
            if self._sudo is None:
                killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if self._sudo is not None:  # sudo ended with its command: what is left of the group is the account's
                self._killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def _tick(self) -> float:
        """Stop a task over its time limit and send the signals that are due; returns the time (monotonic)."""
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline and self._stop is None:
            self._request_stop("time_limit", 0.0, self._stop_grace_s())
        self._apply_signals(now)
        return now

    def _emit_lines(self, stream: str, partial: dict[str, bytes], data: bytes) -> None:
        """Report the whole lines of ``partial[stream] + data`` (over-long ones in pieces); keep the rest."""
        *lines, rest = (partial[stream] + data).split(b"\n")
        for ln in lines:
            self._emit(stream, ln)
        while len(rest) > MAX_LINE_BYTES:
            self._emit(stream, rest[:MAX_LINE_BYTES])
            rest = rest[MAX_LINE_BYTES:]
        partial[stream] = rest

    def _select_timeout(self, now: float, drain_until: float | None, exit_is_event: bool) -> float:
        wake = [now + (1.0 if exit_is_event else 0.02)]
        if drain_until is not None:
            wake.append(drain_until)
        if self._deadline is not None and self._stop is None:
            wake.append(self._deadline)
        stop = self._stop
        if stop is not None:
            if not self._term_sent:
                wake.append(stop.term_at)
            if not self._second_sent and stop.second_at is not None:
                wake.append(stop.second_at)
            if not self._kill_sent:
                wake.append(stop.kill_at)
            if stop.noted_at is None:
                wake.append(self._word_by)
        return max(0.0, min(wake) - now)

    def _emit(self, stream: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        text = text.removesuffix("\r")
        if "\r" in text:  # progress bars redraw with \r: keep what a terminal would show
            text = text.rsplit("\r", 1)[-1]
        self._tail.append(text)
        ts = time.time()
        self._reporter.line(stream, text, ts)
        if self._metrics is not None and stream != "system":
            found = self._metrics.parse(text)
            for values, step in found:
                self._reporter.metrics(values, step, ts)
            if found and self._stop is not None:
                self._stop_at_metric()
        if self._echo:
            out = sys.stdout if stream == "stdout" else sys.stderr
            out.write(text + "\n")
            out.flush()

    # ------------------------------------------------------------------ result
    def _result(self, rc: int | None, failed_step: str, error: str) -> TaskResult:
        limit = self.launch.time_limit_s
        exit_code, how = _describe_exit(rc)
        stop = self._stop
        tail = list(self._tail)[-N_MESSAGE_LINES:]
        if stop is not None and stop.noted_at is None:  # ended before the server said who stopped it
            with self._lock:
                self._note_stop(stop, 0.0, stop.kill_at - stop.term_at)

        def message(first: str) -> str:
            return first + ("\n" + "\n".join(tail) if tail else "")

        if error and rc is None and stop is None:
            return TaskResult(EngineStatus.FAILED, None, error, message(error), "failed", "failed")
        if stop is not None:
            signalled = self._term_sent or self._kill_sent
            if stop.why == "time_limit":
                reason = f"TIMEOUT: time limit of {limit}s exceeded"
                return TaskResult(EngineStatus.TIMEOUT, exit_code, reason, message(reason), "failed", "failed")
            if stop.why == "pruned":
                reason = f"pruned: {'stopped, ' + how if signalled else 'exited by itself, ' + how}"
                return TaskResult(EngineStatus.CANCELED, exit_code, reason, reason, None, "pruned")
            if stop.why == "canceled":
                return TaskResult(EngineStatus.CANCELED, exit_code, f"canceled ({how})", "canceled", None, "canceled")
            if stop.why == "deleted":
                return TaskResult(EngineStatus.CANCELED, exit_code, f"the run was deleted ({how})", "", None, "canceled")
            reason = f"{stop.message} ({how})"
            task_status = stop.task_status or (stop.run_status if stop.run_status in ("canceled", "failed") else "canceled")
            return TaskResult(EngineStatus.CANCELED, exit_code, reason, message(reason), stop.run_status, task_status)
        if rc == 0:
            return TaskResult(EngineStatus.SUCCEEDED, 0, "exit code 0", "", "succeeded", "succeeded")
        reason = f"{failed_step} failed: {how}" if failed_step else how
        return TaskResult(EngineStatus.FAILED, exit_code, reason, message(reason), "failed", "failed")


_SNAPSHOTS: collections.OrderedDict[tuple[str, str | None, str], dict[str, Any]] = collections.OrderedDict()
_SNAPSHOTS_LOCK = threading.Lock()
_SNAPSHOTS_MAX = 16


class _SnapshotCache:
    """``client`` with ``get_snapshot`` answered from memory after its first success.

    A snapshot's id is the hash of its manifest, so a stored snapshot never changes;
    the local agent runs every run of an experiment from one snapshot, and this saves
    a request per run. Keyed by server and snapshot id: the agent only materialises the
    snapshot a launch names, which the server's scheduler chose for that run.
    """

    def __init__(self, client: Any, server_url: str, token: str | None) -> None:
        self._client = client
        self._key = (server_url, token)

    def get_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        key = (self._key[0], snapshot_id)  # content-addressed: the same for every run (and token) that names it
        with _SNAPSHOTS_LOCK:
            snap = _SNAPSHOTS.get(key)
            if snap is not None:
                _SNAPSHOTS.move_to_end(key)
                return snap
        snap = self._client.get_snapshot(snapshot_id)
        with _SNAPSHOTS_LOCK:
            _SNAPSHOTS[key] = snap
            while len(_SNAPSHOTS) > _SNAPSHOTS_MAX:
                _SNAPSHOTS.popitem(last=False)
        return snap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


# A command made only of words (letters, digits, quotes, and - _ . / : , + @ % =) means the same
# to bash as to shlex.split: it runs without bash in between (bash would exec it anyway, after
# its own start-up, a few ms of CPU per run). Anything else (variables, globs, pipes, redirections,
# ~, escapes, a leading VAR=value) goes through `bash -c`.
_PLAIN_COMMAND = re.compile(r"""[A-Za-z0-9_\-./:,+@%= "']+""")


class _OutputFiles:
    """A process's output files in ``directory`` (``stdout``, ``stderr``, and ``exit-code`` for the
    command): the write ends the process gets, the read ends the runner tails (from where this
    process starts: a setup step's output before it is not read again)."""

    def __init__(self, directory: Path, *, exit_code: bool) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self.fds: list[int] = []
        self.stdout_w = self._open(directory / "stdout", flags, 0o600)
        self.stderr_w = self._open(directory / "stderr", flags, 0o600)
        self.stdout_r = self._open(directory / "stdout", os.O_RDONLY | os.O_CLOEXEC)
        self.stderr_r = self._open(directory / "stderr", os.O_RDONLY | os.O_CLOEXEC)
        os.lseek(self.stdout_r, 0, os.SEEK_END)
        os.lseek(self.stderr_r, 0, os.SEEK_END)
        self.exit_w = (self._open(directory / EXIT_CODE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                       if exit_code else -1)

    def _open(self, path: Path, flags: int, mode: int = 0o600) -> int:
        fd = os.open(path, flags, mode)
        self.fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


EXIT_CODE_FILE = "exit-code"
PUNCH_BYTES = 8 * 1024 * 1024  # output read this far is freed on disk (the file keeps its size)
_FALLOC_PUNCH = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
_fallocate: Any = None


def _punch_hole(fd: int, end: int) -> None:
    """Free the disk blocks of ``[0, end)`` of the file ``fd`` (read already), keeping its size and offsets.

    Linux ``fallocate(FALLOC_FL_PUNCH_HOLE)``; where the call or the file system lacks it, nothing happens.
    """
    global _fallocate
    if _fallocate is None:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            func = libc.fallocate
            func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
            _fallocate = func
        except (OSError, AttributeError):
            _fallocate = False
    if _fallocate:
        _fallocate(fd, _FALLOC_PUNCH, 0, end)
FILE_POLL_MIN_S = 0.02  # output files are read this often while the task prints,
FILE_POLL_MAX_S = 0.25  # backing off to this while it is quiet
# The command under a POSIX sh that outlives it by a moment: it writes the command's exit code
# (128 + N when killed by signal N) to its standard input (the exit-code file, opened for writing;
# the command itself gets /dev/null), then ends the way the command did (killed by the same
# signal), so the runner's view of the exit is unchanged. Signals to the process group are held
# until the command ended (a trap, not an ignore: the command gets the default handlers).
_EXIT_WRAPPER = (
    'trap : TERM INT HUP QUIT\n'
    'exec 3>&2 2>/dev/null\n'  # the shell's own notices ("Killed") are not the task's output
    '(exec "$@" </dev/null 2>&3 3>&-)\n'
    'rc=$?\n'
    'printf \'%d\\n\' "$rc" >&0\n'
    'case $rc in 129|130|131|132|134|135|136|137|138|139|140|141|142|143|144)'
    ' trap - TERM INT HUP QUIT; kill -$((rc - 128)) $$;; esac\n'
    'exit "$rc"\n'
)


def _spawn(command: str | list[str], workdir: Path, env: dict[str, str], files: _OutputFiles | None = None,
           user: tuple[int, int] | None = None, sudo: SudoAccount | None = None,
           label: str = "") -> subprocess.Popen[bytes]:
    """Start ``command`` in ``workdir`` in a session of its own, stdout and stderr piped (or to ``files``)."""
    if sudo is not None:
        return _spawn_sudo(command, env, files, sudo, label)
    kwargs: dict[str, Any] = {"cwd": workdir, "env": env, "stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE,
                              "stderr": subprocess.PIPE, "start_new_session": True}
    if files is not None:
        kwargs["stdout"], kwargs["stderr"] = files.stdout_w, files.stderr_w
    if user is not None:
        kwargs.update(user=user[0], group=user[1], extra_groups=[])
    if not isinstance(command, str):  # an argv (a container runtime's): exec'd as it is
        if files is not None and files.exit_w >= 0:
            kwargs["stdin"] = files.exit_w
            return subprocess.Popen(["/bin/sh", "-c", _EXIT_WRAPPER, "runyard-task", *command], **kwargs)
        try:
            return subprocess.Popen(command, **kwargs)
        except (FileNotFoundError, PermissionError, NotADirectoryError):  # sh says it ("not found", exit 127)
            return subprocess.Popen(["/bin/sh", "-c", 'exec "$@"', "runyard-task", *command], **kwargs)
    argv = _plain_argv(command)
    if files is not None and files.exit_w >= 0:
        kwargs["stdin"] = files.exit_w
        inner = argv if argv is not None and shutil.which(argv[0], path=env.get("PATH")) else ["bash", "-c", command]
        return subprocess.Popen(["/bin/sh", "-c", _EXIT_WRAPPER, "runyard-task", *inner], **kwargs)
    if argv is not None:
        try:
            return subprocess.Popen(argv, **kwargs)  # the PATH searched is env's
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            pass  # bash says it the usual way ("command not found", exit 127; 126)
    return subprocess.Popen(["bash", "-c", command], **kwargs)


def _spawn_sudo(command: str | list[str], env: dict[str, str], files: _OutputFiles | None, sudo: SudoAccount,
                label: str) -> subprocess.Popen[bytes]:
    """``_spawn`` through sudo: the environment and directory come from the task's env file
    (``runyard.runner._sudo``); sudo is the session's leader, its command in its process group."""
    from runyard.runner._sudo import argv, popen_env

    kwargs: dict[str, Any] = {"cwd": "/", "env": popen_env(), "stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE,
                              "stderr": subprocess.PIPE, "start_new_session": True}
    if files is not None:
        kwargs["stdout"], kwargs["stderr"] = files.stdout_w, files.stderr_w
    if isinstance(command, str):
        plain = _plain_argv(command)
        inner = plain if plain is not None and shutil.which(plain[0], path=env.get("PATH")) else ["bash", "-c", command]
    else:
        inner = list(command)
    if files is not None and files.exit_w >= 0:
        kwargs["stdin"] = files.exit_w
        inner = ["/bin/sh", "-c", _EXIT_WRAPPER, "runyard-task", *inner]
    return subprocess.Popen(argv(sudo, label, inner), **kwargs)


def _plain_argv(command: str) -> list[str] | None:
    if not _PLAIN_COMMAND.fullmatch(command):
        return None
    try:
        argv = shlex.split(command)
    except ValueError:  # unbalanced quotes: bash reports it
        return None
    if not argv or "=" in argv[0] or argv[0] in _SHELL_WORDS:
        return None
    return argv


_SHELL_WORDS = frozenset({"exec", "exit", "cd", "source", ".", "export", "set", "unset", "alias", "eval", "read", "ulimit",
                          "umask", "wait", "true", "false", "echo", "printf", "test", "[", "time", "command", "builtin",
                          "trap", "shift", "return", "local", "declare", "typeset", "readonly", "let", "if", "then", "else",
                          "fi", "for", "while", "until", "do", "done", "case", "esac", "function", "select", "coproc", "!",
                          "{", "}", "[["})


def _describe_exit(rc: int | None) -> tuple[int | None, str]:
    if rc is None:
        return None, "no process ran"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return 128 - rc, f"killed by signal {name}"
    return rc, f"exit code {rc}"


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the task's process has ended, without reaping it.

    Until ``proc.wait()`` reaps it, the ended process is a zombie that keeps its pid, and so its
    process group's id, from being given to another process: signalling the group (background
    children that outlived the task) cannot reach an unrelated process group that got the
    recycled number (``Popen.poll()`` reaps, and pids wrap around at ``pid_max``).
    """
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped elsewhere
        return proc.poll() is not None
