"""The tasks of one distributed run on one machine, with fail-fast semantics.

``TaskGroup(launch, client, workdir, endpoints, ...).run()`` starts one
:class:`~runyard.runner._task.TaskExecution` per task of ``launch.tasks`` (each
in a thread, with the command and framework environment of
:func:`runyard.launch.plan_task`) and decides the run's status once, for all:

- a task fails (non-zero exit, killed, over the time limit): the run fails with
  "task worker-1 (role worker, rank 1) failed: <reason>" and the task's last log
  lines; every other task is stopped (SIGTERM, SIGKILL after the grace period);
- every task that is not a service (Ray nodes, the XGBoost tracker, TF parameter
  servers) succeeded: the run succeeds, and the services still running are stopped;
- the run is canceled, pruned or deleted on the server: each task sees it on its
  own heartbeat and stops; the group reports nothing more;
- :meth:`cancel` (the backend's cancel, the agent stopping): every task is stopped
  and the given status is reported once.

The run's status is reported once, by the last task to exit, so a run that
ended has no process left; every task reports its own status.
Restarting a run restarts the whole group: a new attempt is a new group.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard.records.compute import EngineStatus, RunLaunch, TaskSlot

__all__ = ["GroupResult", "TaskGroup"]


@dataclass(frozen=True)
class GroupResult:
    """How the group ended, as the engine reports it for the job."""

    status: EngineStatus
    exit_code: int | None
    reason: str


class TaskGroup:
    """Runs every task of ``launch`` on this machine. ``run()`` blocks; ``cancel()`` is thread-safe.

    Args:
        launch: the attempt (``launch.distributed`` set).
        client: a ``runyard.client.Client`` shared by the tasks.
        workdir: each task runs in ``workdir/<label>``.
        endpoints: rendezvous addresses (``runyard.launch.local_endpoints``).
        extra_env: per task label, the backend's placement variables (``CUDA_VISIBLE_DEVICES``).
        on_spawn: called with each process's pid and its task's label.
        on_exit: called once every task's processes ended, before the final reports.
        single_host: every task runs on this machine.
        execution_options: passed on to each ``TaskExecution``.
    """

    def __init__(self, launch: RunLaunch, client: Any, workdir: Path, endpoints: Mapping[str, tuple[str, int]], *,
                 extra_env: Mapping[str, Mapping[str, str]] | None = None,
                 on_spawn: Callable[[int, str], None] | None = None,
                 on_exit: Callable[[GroupResult], None] | None = None, single_host: bool = True,
                 execution_options: Mapping[str, Any] | None = None) -> None:
        from runyard.launch import plan_task
        from runyard.runner._task import TaskExecution

        self.launch = launch
        self._lock = threading.Lock()
        self._on_exit = on_exit
        self._outcome: tuple[str, str, TaskSlot | None] | None = None  # (run status, message, deciding task)
        self._failed: tuple[TaskSlot, Any] | None = None
        self._done: set[str] = set()
        self._exited: set[str] = set()
        self._n_exited = 0
        self._stopping = False
        self._cancel_status: tuple[str | None, str] | None = None
        self._decisions: dict[str, tuple[str | None, str, int | None]] = {}
        self.plans = {s.label: plan_task(launch, s, endpoints, single_host=single_host) for s in launch.tasks}
        self._primary = {s.label for s in launch.tasks if not self.plans[s.label].service}
        self.executions: dict[str, TaskExecution] = {}
        for slot in launch.tasks:
            plan = self.plans[slot.label]
            env = {**plan.env, **((extra_env or {}).get(slot.label) or {})}
            self.executions[slot.label] = TaskExecution(
                launch, slot, client, Path(workdir) / slot.label, env,
                on_spawn=None if on_spawn is None else (lambda pid, label=slot.label: on_spawn(pid, label)),
                on_exit=lambda result, s=slot: self._task_exited(s, result), command=plan.command,
                run_outcome=lambda result, s=slot: self._decisions.pop(s.label, (None, "", None)),
                **dict(execution_options or {}))

    # ------------------------------------------------------------------ control
    def cancel(self, message: str = "canceled by the backend", run_status: str | None = "canceled") -> None:
        """Stop every task; ``run_status`` (with ``message``) is reported once. Idempotent."""
        with self._lock:
            if self._cancel_status is None and self._outcome is None:
                self._cancel_status = (run_status, message)
            self._stopping = True  # a task failing from here on fails because of this stop
        self._stop_all(message, task_status=None)

    def _stop_all(self, message: str, *, task_status: str | None, exclude: str | None = None) -> None:
        with self._lock:
            running = [e for label, e in self.executions.items() if label != exclude and label not in self._exited]
        for execution in running:  # a task that exited has nothing to stop, and its log stays as it ended
            execution.cancel(message=message, run_status=None, task_status=task_status)

    # ------------------------------------------------------------------ run
    def run(self) -> GroupResult:
        threads = []
        for label, execution in self.executions.items():
            t = threading.Thread(target=execution.run, daemon=True,
                                 name=f"runyard-task-{self.launch.run_id}-{label}")
            threads.append(t)
            t.start()
        for t in threads:
            t.join()
        return self._group_result()

    def _task_exited(self, slot: TaskSlot, result: Any) -> None:
        # Decided here, when the task's processes ended (before its final reports), so siblings are
        # stopped at once and the group's result is known when the last task exits.
        with self._lock:
            self._exited.add(slot.label)
        self._decide(slot, result)
        with self._lock:
            self._n_exited += 1
            last = self._n_exited == len(self.executions)
            # The last task to exit reports the run's status: a run that ended has no process left.
            outcome = self._outcome
            if last and outcome is not None:
                exit_code = self._failed[1].exit_code if self._failed is not None else (0 if outcome[0] == "succeeded" else None)
                self._decisions[slot.label] = (outcome[0] or None, outcome[1], exit_code)
            else:
                self._decisions[slot.label] = (None, "", None)
        if last and self._on_exit is not None:
            self._on_exit(self._group_result())

    def _decide(self, slot: TaskSlot, result: Any) -> None:
        """Take this task's result into the run's outcome; stop the others when it is decided."""
        stop_others: tuple[str, str | None] | None = None
        with self._lock:
            if self._outcome is None:
                if result.status in (EngineStatus.FAILED, EngineStatus.TIMEOUT) and not self._stopping:
                    what = f"task {slot.label} (role {slot.role}, rank {slot.rank}) failed: "
                    self._outcome = ("failed", what + result.message, slot)
                    self._failed = (slot, result)
                    self._stopping = True
                    stop_others = (f"stopped: task {slot.label} failed ({result.reason})", None)
                elif result.status is EngineStatus.SUCCEEDED and slot.label in self._primary:
                    self._done.add(slot.label)
                    if self._done == self._primary:
                        self._outcome = ("succeeded", "", slot)
                        self._stopping = True
                        stop_others = ("stopped: the run's other tasks finished", "succeeded")
                elif self._cancel_status is not None:
                    status, message = self._cancel_status
                    self._outcome = (status or "", message, slot) if status else None
                    self._stopping = True
        if stop_others is not None:
            self._stop_all(stop_others[0], task_status=stop_others[1], exclude=slot.label)

    def _group_result(self) -> GroupResult:
        with self._lock:
            outcome, failed, cancel = self._outcome, self._failed, self._cancel_status
        if outcome is not None and outcome[0] == "succeeded":
            return GroupResult(EngineStatus.SUCCEEDED, 0, "exit code 0")
        if failed is not None:
            slot, result = failed
            status = EngineStatus.TIMEOUT if result.status is EngineStatus.TIMEOUT else EngineStatus.FAILED
            return GroupResult(status, result.exit_code, f"task {slot.label} failed: {result.reason}")
        if cancel is not None:
            return GroupResult(EngineStatus.CANCELED, None, cancel[1])
        return GroupResult(EngineStatus.CANCELED, None, "canceled")
