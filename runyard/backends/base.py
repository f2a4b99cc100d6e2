"""The backend interface: the ``Backend`` protocol and ``BaseBackend``, the class every backend derives from.

A backend only starts, watches and stops tasks. Every backend starts the same task
runner (``runyard/runner``), so logs, metrics and statuses behave the same
everywhere. Policy (retries, status transitions, restarts, timing, feature checks)
lives once in the scheduler, never in a backend. A backend gets everything it needs
in ``RunLaunch`` and imports nothing from ``store``, ``server`` or ``scheduler``.

Writing one: derive from :class:`BaseBackend`, set ``name`` and ``options_model``,
implement ``submit``, ``poll`` and ``cancel`` (and ``capacity``/``unsupported``
when the defaults do not fit), use ``runyard.backends.kit`` for the runner's command
line, the launch file and the snapshot's blobs, and subclass
``runyard.testing.backend_contract.BackendContract`` in its tests. docs/backends.md
("Writing a backend") walks through it.

The plain data types (``Resources``, ``RunLaunch`` …) live in ``runyard.records.compute``
and are re-exported here.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from runyard.backends.options import parse_options
from runyard.errors import SubmitError
from runyard.records.compute import (
    CheckResult,
    EngineState,
    EngineStatus,
    Feature,
    Resources,
    RunLaunch,
    TaskSlot,
)

__all__ = [
    "Backend",
    "BaseBackend",
    "CheckResult",
    "EngineState",
    "EngineStatus",
    "Feature",
    "NoOptions",
    "Resources",
    "RunLaunch",
    "TaskSlot",
]


class NoOptions(BaseModel):
    """The options model of a backend that takes none: any key is refused."""

    model_config = ConfigDict(extra="forbid")


class Backend(Protocol):
    """What the scheduler, the server and the CLI call on a backend (see :class:`BaseBackend` for each hook)."""

    name: ClassVar[str]
    options_model: ClassVar[type[BaseModel]]

    def unsupported(self, launch: RunLaunch) -> dict[Feature, str]: ...

    def capacity(self) -> Resources | None: ...

    def nodes(self) -> list[Resources] | None: ...

    def can_queue(self, resources: Resources, distributed: bool) -> bool: ...

    def started_roles(self, framework: str) -> frozenset[str] | None: ...

    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str: ...

    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]: ...

    def cancel(self, job_id: str) -> None: ...

    def warm(self) -> None: ...

    def stop_if_idle(self) -> bool: ...

    def check(self) -> list[CheckResult]: ...

    def close(self) -> None: ...


class BaseBackend(abc.ABC):
    """The base of every backend: options parsing and a default for every hook but submit, poll and cancel.

    The scheduler calls a backend from its own thread, but the server's request
    threads (``unsupported`` at submission, ``check`` from the CLI) and a test's
    threads may call it at the same time: a backend keeps its own state behind a lock.

    Args:
        options: the backend's entry in ``backends.yml`` (without ``type``), or an
            instance of ``options_model``. Validated by :func:`runyard.backends.options.parse_options`:
            a misspelled key raises ``SpecError`` naming the valid keys and their defaults.

    Attributes:
        options: the validated options, an instance of ``options_model``.
    """

    #: The backend's type, as ``type:`` in ``backends.yml`` names it.
    name: ClassVar[str] = "base"
    #: The pydantic model of the options (``extra="forbid"``). A field's ``json_schema_extra`` may carry
    #: ``rule`` (what a valid value is), ``fix`` (how to fix a wrong one) and ``default`` (the default in words).
    options_model: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: Mapping[str, Any] | BaseModel | None = None) -> None:
        self.options: Any = parse_options(self.options_model, options, backend=self.name)

    def options_for(self, launch: RunLaunch) -> Any:
        """The backend's options with the run's own (``launch.options``) laid over them, checked by the same parser.

        Raises:
            SpecError: a run's option is not one of the backend's, or invalid.
        """
        if not launch.options:
            return self.options
        merged = {**self.options.model_dump(exclude_unset=True), **dict(launch.options)}
        return parse_options(self.options_model, merged, backend=self.name, name="options",
                             hint=f"Fix the {self.name} backend's options of the experiment.")

    # ------------------------------------------------------------ to implement
    @abc.abstractmethod
    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str:
        """Start the attempt's tasks; return the engine's job id.

        Called by the scheduler once per attempt of a run, from its thread, after the run
        moved to ``starting``; the scheduler records the job id before the run moves on.
        Must be idempotent per ``(run_id, attempt)``: a server that crashed between
        submitting and recording the job id submits the same attempt again, and must
        get the same job id back (not a second copy of the run).

        Args:
            launch: everything the runner needs; see :class:`RunLaunch`.
            at_most: given only when ``can_queue`` said yes for this launch: the
                backend may hold the run (``PENDING``) until fewer than ``at_most`` runs of
                its experiment run. Backends that do not queue never receive it.

        Raises:
            SubmitError: the engine refused (with its message), or the launch needs a
                feature :meth:`unsupported` names (use :meth:`refuse_unsupported`).
        """

    @abc.abstractmethod
    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]:
        """The state of every job asked, in as few engine calls as possible (ideally one).

        Called by the scheduler every few seconds for all active runs of this backend, and
        by tests. Must answer for every id: ``LOST`` when the engine no longer knows the
        job (or never did), ``UNKNOWN`` with the raw text when the engine says something
        not understood or cannot be reached. Never raises for one bad id; raises
        ``BackendError`` only when the engine cannot be asked at all. ``poll([])`` is ``{}``.
        A terminal state stays terminal on later polls.

        Args:
            wait_s: block up to this long until one of the jobs is terminal (0: answer
                at once). :func:`runyard.backends.kit.poll_waiting` implements it over a
                plain poll.
        """

    @abc.abstractmethod
    def cancel(self, job_id: str) -> None:
        """Stop the job; it then polls ``CANCELED``.

        Called by the scheduler for a run canceled, pruned or failed on the server whose
        job still runs (the runner also stops its task at its next heartbeat). Idempotent:
        cancelling an ended or unknown job is a no-op.
        """

    # --------------------------------------------------------------- defaults
    def unsupported(self, launch: RunLaunch) -> dict[Feature, str]:
        """``{feature: reason}`` for what this backend cannot do for ``launch``; ``{}`` when it can run it.

        Called by the server at submission (with a probe launch: run id 0, no snapshot)
        and by :meth:`submit`. Must not touch the engine: it answers from the launch and
        the options. Default: several tasks are unsupported.
        """
        if len(launch.tasks) > 1:
            return {Feature.MULTI_TASK: f"the {self.name} backend runs one task per run"}
        return {}

    def refuse_unsupported(self, launch: RunLaunch) -> None:
        """Raise ``SubmitError`` naming every feature :meth:`unsupported` gives for ``launch`` (for ``submit``)."""
        problems = self.unsupported(launch)
        if problems:
            raise SubmitError(f"The {self.name} backend cannot run this: "
                              + "; ".join(f"{f.value}: {why}" for f, why in problems.items()) + ".",
                              "Use a backend that supports it, or change the run's resources.")

    def capacity(self) -> Resources | None:
        """Free resources now, or ``None`` when the engine queues runs itself.

        Called by the scheduler once per dispatch pass before it submits: a run is
        submitted only when its resources fit in what is left. Default ``None``: the
        engine queues (Slurm, Kubernetes).
        """
        return None

    def nodes(self) -> list[Resources] | None:
        """The shapes of the machines runs start on (each one's total, not what is free), or ``None`` when unknown.

        The scheduler refuses at submission a run that can never fit (a task larger than
        every node, or, on a backend of one node, all its tasks together larger than it:
        ``runyard.scheduler.infeasible``), instead of queueing it forever. Called from
        the server's request threads at submission and by the scheduler when a run
        waits: answer from a cache (the engine may be asked at most every minute or
        so). Default ``None``: unknown, every run is accepted.
        """
        return None

    def can_queue(self, resources: Resources, distributed: bool) -> bool:
        """Whether the backend holds runs of this shape in a queue of its own until they can start.

        When true, the scheduler hands such runs over before :meth:`capacity` has room for
        them, with ``submit(launch, at_most=N)``; the backend starts each once fewer than
        ``N`` runs of its experiment run and its resources are free (the local agent does
        this for single-task runs without GPUs). Called by the scheduler per queued run,
        before it checks capacity; must not touch the engine. Default: ``False`` (the
        scheduler submits only once :meth:`capacity` has room, and never passes ``at_most``).

        Args:
            resources: what one task of the run asks for.
            distributed: whether the run has several tasks (a ``distributed:`` section).
        """
        return False

    def started_roles(self, framework: str) -> frozenset[str] | None:
        """The roles of a distributed run of ``framework`` this backend starts tasks for; ``None``: every role.

        The scheduler counts only these roles' resources when it checks capacity and whether
        a run can ever fit (the Ray backend runs a ``framework: ray`` run's ``job`` task alone:
        the cluster's own nodes stand for its ``head`` and ``worker`` tasks). Must not touch
        the engine. Default: ``None``.
        """
        return None

    def warm(self) -> None:  # noqa: B027 - an optional hook, not abstract: by default there is nothing to start
        """Start what the backend runs on ahead of the first run. Default: nothing.

        Called by the server once as it starts leading, in a thread of its own; errors are
        logged, never fatal. Idempotent.
        """

    def stop_if_idle(self) -> bool:
        """Stop what :meth:`warm` started if no job uses it; return whether something was asked to stop.

        Called by the server as it stops. Jobs keep running either way. Default: nothing
        to stop (``False``).
        """
        return False

    def check(self) -> list[CheckResult]:
        """What ``runyard backends test NAME`` shows: one :class:`CheckResult` per thing checked.

        Connectivity, credentials, the engine's commands on the far side, the Python
        there, in the order they depend on each other. Never raises for a failed check: a
        failed check is ``ok=False`` with a ``detail`` saying what is missing and a
        ``hint`` naming the fix. Default: no checks (``[]``).
        """
        return []

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract: by default there is nothing to release
        """Release connections; jobs keep running. Idempotent. Default: nothing to release.

        Called by the server when it stops or when the backend's entry in ``backends.yml``
        changes.
        """
