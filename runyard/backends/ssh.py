"""The SSH backend: runs tasks on a pool of hosts reached over SSH, each with its CPU/GPU slots.

Concept map:

| Runyard        | here                                                                              |
| -------------- | --------------------------------------------------------------------------------- |
| run attempt    | a job directory ``<work_dir>/jobs/<run_id>.<attempt>`` on one host                |
| job id         | ``"<run_id>.<attempt>@<host>:<port>"``                                            |
| task           | ``python -m runyard.runner exec --launch launch.json`` started detached (setsid, |
|                | nohup) by a small ``sh`` wrapper; the wrapper's pid is the process group's id     |
| job state      | files in the job directory: ``pid``, ``exit`` (exit code), ``cancel`` (asked to  |
|                | stop), ``res`` (what it holds), ``out.log`` (the runner's output)                 |
| snapshot       | blobs sent by SFTP into ``<work_dir>/cache/blobs/<aa>/<sha256>`` once per host;   |
|                | the runner (``RUNYARD_HOME=<work_dir>``) materialises from that cache             |
| capacity       | each host's ``cpus``/``gpus``/``memory_mb`` minus what its live jobs hold        |
| cancel         | ``cancel`` marker, then SIGTERM to the job's process group; the runner passes it |
|                | on to the task (SIGKILL after the grace period)                                   |
| GPU placement  | ``CUDA_VISIBLE_DEVICES`` of the indices assigned (``""`` for CPU-only runs)       |

Everything the backend knows is re-read from the hosts: after a network or host
outage, or a server restart, ``poll`` and ``capacity`` pick up where they left off
(jobs keep running on their hosts; a job whose host is unreachable polls as
``UNKNOWN``, never as lost). ``poll`` costs one SSH command per host for all its
jobs; ``capacity`` one per host (cached for ``usage_ttl_s``).

Operational traps:

- The runner on the host talks to the server at the launch's ``server_url``
  (``RUNYARD_PUBLIC_URL`` of the server): the hosts must reach it.
- The host's ``python`` must import the same Runyard version as the server
  (``runyard backends test NAME`` checks it).
- Resources are reservations, not limits (no cgroups), as on the local backend.
- A job directory keeps the run's materialised snapshot and its output after the
  run ends; remove old ones from ``<work_dir>/jobs`` when disk runs short.
- ``work_dir`` is relative to the login user's home unless absolute.
"""

from __future__ import annotations

import logging
import posixpath
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runyard.backends._images import ContainerOptions, container_checks, with_container
from runyard.backends._remote import RemoteBlobs, RemoteError, RemoteHost
from runyard.backends.base import BaseBackend, CheckResult, EngineState, EngineStatus, Feature, Resources, RunLaunch
from runyard.backends.kit import (
    job_name,
    launch_file_bytes,
    launch_snapshot_ids,
    poll_waiting,
    runner_command,
    stage_snapshot,
)
from runyard.errors import SubmitError

__all__ = ["SSHBackend", "SSHBackendOptions", "SSHHostOptions"]

log = logging.getLogger("runyard.backends")

REQUIRED_COMMANDS = ("sh", "setsid", "nohup", "kill", "cat", "mkdir", "mv", "tail", "sed")


class SSHHostOptions(BaseModel):
    """One host of the pool."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, description="name or address")
    port: int = Field(22, ge=1, le=65535, description="SSH port")
    user: str | None = Field(None, description="login name (default: the server's user)")
    key_file: str | None = Field(None, description="private key (default: ssh-agent and ~/.ssh/id_*)")
    known_hosts: str | None = Field(None, description="known_hosts file to check the host key (default: ~/.ssh/known_hosts)")
    cpus: float = Field(1.0, gt=0, description="CPUs to hand out on this host")
    gpus: int = Field(0, ge=0, description="GPUs to hand out (indices 0..gpus-1)")
    memory_mb: int | None = Field(None, ge=0, description="memory to hand out in MB (default: the host's total)")
    python: str = Field("python3", min_length=1, description="Python on the host that imports runyard")
    work_dir: str = Field(".runyard-ssh", min_length=1, description="job directories and blob cache "
                                                                   "(relative to the login user's home unless absolute)")

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}"


class _SSHBackendOptionsOwn(BaseModel):
    """Settings of an SSH backend entry (``type: ssh``)."""

    model_config = ConfigDict(extra="forbid")

    hosts: list[SSHHostOptions] = Field(
        min_length=1, description="the hosts to run on",
        json_schema_extra={"fix": "Each host is {host, port, user, key_file, known_hosts, cpus, gpus, memory_mb, python, "
                                  "work_dir}, only host required; e.g. hosts: [{host: gpu1.example.org, user: me, "
                                  "key_file: ~/.ssh/id_ed25519, cpus: 8}]."})
    connect_timeout_s: float = Field(10.0, gt=0, description="how long connecting to a host may take")
    command_timeout_s: float = Field(60.0, gt=0, description="how long one SSH command may take")
    start_timeout_s: float = Field(30.0, gt=0, description="how long a job may take to start on its host")
    usage_ttl_s: float = Field(2.0, ge=0, description="how long capacity() reuses a host's usage")

    @model_validator(mode="after")
    def _unique_hosts(self) -> SSHBackendOptions:
        seen: set[str] = set()
        for h in self.hosts:
            if h.key in seen:
                raise ValueError(f"the host {h.key} is listed twice; list each host:port once")
            seen.add(h.key)
        return self

class SSHBackendOptions(ContainerOptions, _SSHBackendOptionsOwn):
    """Settings of an SSH backend entry (``type: ssh``).

    The container settings (docs/containers.md) come last; the default ``container_runtime``
    here is podman."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class _Usage:
    """What a host's live jobs hold, as read from the host at ``at``."""

    at: float
    jobs: dict[str, tuple[Resources, tuple[int, ...]]] = field(default_factory=dict)  # run.attempt → (resources, gpus)
    memory_mb: int = 0
    has_job: bool = False  # the job asked about has a directory on this host

    def held(self) -> Resources:
        total = Resources(0.0, 0, 0)
        for res, _ in self.jobs.values():
            total = total + res
        return total

    def gpus_held(self) -> set[int]:
        return {g for _, gpus in self.jobs.values() for g in gpus}


class _Host:
    """One host of the pool: its options, connection, what it holds, and which blobs it has."""

    def __init__(self, opts: SSHHostOptions, connect_timeout_s: float) -> None:
        self.opts = opts
        self.key = opts.key
        known_hosts: str | None = opts.known_hosts
        self.remote = RemoteHost(opts.host, opts.port, opts.user, opts.key_file, known_hosts=known_hosts,
                                 connect_timeout_s=connect_timeout_s)
        work = opts.work_dir
        if work == "~":
            work = "."
        elif work.startswith("~/"):
            work = work[2:] or "."
        self.work = work.rstrip("/") or "/"
        self.jobs_dir = posixpath.join(self.work, "jobs")
        self.blobs_dir = posixpath.join(self.work, "cache", "blobs")
        self.lock = threading.Lock()  # one submit at a time per host (usage, GPU choice, start)
        self.usage: _Usage | None = None
        self.blobs: set[str] = set()  # digests known to be in the host's cache
        self.pending_cancels: set[str] = set()  # run.attempt names to cancel once the host answers again

    def job_dir(self, name: str) -> str:
        return posixpath.join(self.jobs_dir, name)

    def total(self, memory_mb: int) -> Resources:
        mem = self.opts.memory_mb if self.opts.memory_mb is not None else memory_mb
        return Resources(self.opts.cpus, mem, self.opts.gpus)


class SSHBackend(BaseBackend):
    """Runs tasks on SSH hosts, detached, with their state in files on the hosts. Thread-safe.

    Args:
        options: a mapping validated as :class:`SSHBackendOptions` (unknown keys raise
            ``SpecError`` listing the valid ones with their defaults).
    """

    name: ClassVar[str] = "ssh"
    options_model: ClassVar[type[BaseModel]] = SSHBackendOptions
    options: SSHBackendOptions

    def __init__(self, options: Mapping[str, Any] | SSHBackendOptions | None = None) -> None:
        super().__init__(options)
        self._hosts = {h.key: _Host(h, self.options.connect_timeout_s) for h in self.options.hosts}

    # ------------------------------------------------------------- interface
    def unsupported(self, launch: RunLaunch) -> dict[Feature, str]:
        """``{}`` unless the run has several tasks, or no host has the GPUs it asks for."""
        problems: dict[Feature, str] = {}
        if len(launch.tasks) > 1:
            problems[Feature.MULTI_TASK] = "the ssh backend runs single-task runs only; use the local or slurm backend for distributed runs"
        most = max(h.opts.gpus for h in self._hosts.values())
        if launch.resources.gpus > most:
            problems[Feature.GPUS] = (f"the run asks for {launch.resources.gpus} GPU(s) per task but the largest host has "
                                      f"{most}")
        return problems

    def capacity(self) -> Resources:
        """Free resources: the most any single host has free (a task runs on one host).

        Unreachable hosts count as full. One SSH command per host, at most every ``usage_ttl_s``.
        """
        best = Resources(0.0, 0, 0)
        for host in self._hosts.values():
            try:
                usage = self._usage(host, max_age_s=self.options.usage_ttl_s)
            except RemoteError as e:
                host.usage = None
                log.warning("ssh host %s unreachable, counted as full: %s", host.key, e.message)
                continue
            free = host.total(usage.memory_mb) - usage.held()
            free = Resources(max(0.0, free.cpus), max(0, free.memory_mb), max(0, free.gpus))
            if (free.gpus, free.cpus, free.memory_mb) > (best.gpus, best.cpus, best.memory_mb):
                best = free
        return best

    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str:
        """Start the attempt on the first host with room; returns ``"<run>.<attempt>@<host>:<port>"``.

        Idempotent per attempt: an attempt already on a host returns that job's id.
        ``at_most`` is never given (``can_queue`` is false: the scheduler waits for capacity).

        Raises:
            SubmitError: an unsupported feature, no host with room, or the host refused
                (unreachable, wrong key, cannot write, the runner did not start).
        """
        self.refuse_unsupported(launch)
        launch = with_container(launch, self.options, default_runtime="podman", backend="ssh")
        name = job_name(launch)
        errors: list[str] = []
        for host in self._hosts.values():
            with host.lock:
                try:
                    usage = self._usage(host, max_age_s=0.0, also=name)
                except RemoteError as e:
                    errors.append(f"{host.key}: {e.message}")
                    continue
                if usage.has_job:
                    return f"{name}@{host.key}"
                free = host.total(usage.memory_mb) - usage.held()
                if not launch.resources.fits_in(free):
                    errors.append(f"{host.key}: full ({_fmt(free)} free)")
                    continue
                taken = usage.gpus_held()
                gpus = tuple([g for g in range(host.opts.gpus) if g not in taken][: launch.resources.gpus])
                try:
                    self._start(host, name, launch, gpus)
                except RemoteError as e:
                    raise SubmitError(f"Starting run {launch.run_id} on {host.remote.label} failed: {e.message}",
                                      e.hint) from e
                usage.jobs[name] = (launch.resources, gpus)
                return f"{name}@{host.key}"
        raise SubmitError(f"No ssh host can take run {launch.run_id} (needs {_fmt(launch.resources)}): " + "; ".join(errors)
                          + ".", "Wait for runs to end, add hosts, or check the hosts with `runyard backends test NAME`.")

    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]:
        """States of ``job_ids``: one SSH command per host. Unreachable hosts answer ``UNKNOWN``.

        ``wait_s`` (as on the local backend): keep polling, up to this long, until one job is terminal.
        """
        return poll_waiting(self._poll_once, job_ids, wait_s)

    def cancel(self, job_id: str) -> None:
        """Mark the job canceled and SIGTERM its process group. Idempotent; unknown or ended jobs: no-op.

        An unreachable host gets the cancel when it answers again (at a later poll); the
        runner also stops the task by itself once the server says the run is canceled.
        """
        parsed = self._parse(job_id)
        if parsed is None:
            return
        host, name = parsed
        try:
            self._cancel(host, name)
        except RemoteError as e:
            log.warning("cancel of %s: host unreachable (%s); it is sent when the host answers", job_id, e.message)
            host.pending_cancels.add(name)

    def close(self) -> None:
        """Close the SSH connections; jobs keep running on their hosts."""
        for host in self._hosts.values():
            host.remote.close()

    def check(self) -> list[CheckResult]:
        """Per host: the connection and key, the commands used there, the work directory, Python, Runyard."""
        results: list[CheckResult] = []
        many = len(self._hosts) > 1
        for host in self._hosts.values():
            prefix = f"{host.key}: " if many else ""
            results += [CheckResult(prefix + r.name, r.ok, r.detail, r.hint) for r in self._check_host(host)]
        return results

    # -------------------------------------------------------------- helpers
    def _parse(self, job_id: str) -> tuple[_Host, str] | None:
        name, _, key = job_id.rpartition("@")
        host = self._hosts.get(key)
        if host is None or not name or not _valid_name(name):
            return None
        return host, name

    def _usage(self, host: _Host, *, max_age_s: float, also: str | None = None) -> _Usage:
        """The host's live jobs (one SSH command), reused for ``max_age_s``; ``also``: a job name to look for."""
        now = time.monotonic()
        if also is None and host.usage is not None and now - host.usage.at <= max_age_s:
            return host.usage
        jobs = shlex.quote(host.jobs_dir)
        check_also = f'[ -d {shlex.quote(also)} ] && echo "have"; ' if also else ""
        script = (
            f"mkdir -p {jobs} && cd {jobs} || exit 70\n"
            "awk '/^MemTotal:/ {print \"mem\", int($2/1024)}' /proc/meminfo 2>/dev/null\n"
            + check_also +
            "for j in *; do\n"
            '  [ -d "$j" ] && [ ! -f "$j/exit" ] && [ -f "$j/res" ] || continue\n'
            '  if [ -f "$j/pid" ] && ! kill -0 "$(cat "$j/pid")" 2>/dev/null && [ ! -f "$j/exit" ]; then continue; fi\n'
            '  echo "job $j $(cat "$j/res")"\n'
            "done\n"
        )
        code, out, err = host.remote.run(script, timeout_s=self.options.command_timeout_s)
        if code != 0:
            raise RemoteError(f"Cannot list the jobs in {host.jobs_dir} on {host.remote.label} (exit {code}): {err.strip()}",
                              "Check that work_dir is writable by the login user.")
        usage = _Usage(time.monotonic())
        for line in out.splitlines():
            parts = line.split()
            if parts[:1] == ["mem"] and len(parts) == 2 and parts[1].isdigit():
                usage.memory_mb = int(parts[1])
            elif parts[:1] == ["have"]:
                usage.has_job = True
            elif parts[:1] == ["job"] and len(parts) >= 5:
                try:
                    gpus = tuple(int(g) for g in parts[5].split(",") if g) if len(parts) > 5 else ()
                    usage.jobs[parts[1]] = (Resources(float(parts[2]), int(parts[3]), int(parts[4])), gpus)
                except ValueError:
                    log.warning("ssh host %s: unreadable res file of job %s: %r", host.key, parts[1], line)
        host.usage = usage
        return usage

    def _start(self, host: _Host, name: str, launch: RunLaunch, gpus: tuple[int, ...]) -> None:
        # Each blob crosses once per host (the code's, and the datasets' the run reads); the runner materialises
        # from that cache.
        for snapshot_id in launch_snapshot_ids(launch):
            stage_snapshot(launch, RemoteBlobs(host.remote, host.blobs_dir, timeout_s=self.options.command_timeout_s),
                           known=host.blobs, snapshot_id=snapshot_id)
        job = host.job_dir(name)
        host.remote.put_bytes(launch_file_bytes(launch), posixpath.join(job, "launch.json"), mode=0o600)
        res = f"{launch.resources.cpus:g} {launch.resources.memory_mb} {launch.resources.gpus} {','.join(map(str, gpus))}"
        env = {"RUNYARD_HOME": host.work, "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}
        script = _start_script(job, host.opts.python, env, res, self.options.start_timeout_s)
        code, out, err = host.remote.run(script, timeout_s=self.options.start_timeout_s + 10.0)
        if code != 0:
            detail = (err.strip() or out.strip() or f"exit code {code}").splitlines()[-5:]
            raise RemoteError(f"the runner did not start: {' | '.join(detail)}",
                              f"Check the host with `runyard backends test NAME`; the job's output is {job}/out.log on the host.")

    def _poll_once(self, job_ids: Sequence[str]) -> dict[str, EngineState]:
        states: dict[str, EngineState] = {}
        by_host: dict[str, list[tuple[str, str]]] = {}
        for job_id in job_ids:
            parsed = self._parse(job_id)
            if parsed is None:
                states[job_id] = EngineState(EngineStatus.LOST, reason="no such job on any configured ssh host",
                                             raw="unknown job id")
                continue
            host, name = parsed
            by_host.setdefault(host.key, []).append((job_id, name))
        for key, jobs in by_host.items():
            host = self._hosts[key]
            try:
                found = self._poll_host(host, [name for _, name in jobs])
            except RemoteError as e:
                host.usage = None  # capacity() asks again (and counts the host full while it is down)
                for job_id, _ in jobs:
                    states[job_id] = EngineState(EngineStatus.UNKNOWN, reason=f"host unreachable: {e.message}",
                                                 raw="unreachable")
                continue
            for job_id, name in jobs:
                states[job_id] = found[name]
        return states

    def _poll_host(self, host: _Host, names: list[str]) -> dict[str, EngineState]:
        if host.pending_cancels:
            for name in sorted(host.pending_cancels):
                self._cancel(host, name)
                host.pending_cancels.discard(name)
        quoted = " ".join(shlex.quote(n) for n in names)
        script = (f"if ! cd {shlex.quote(host.jobs_dir)} 2>/dev/null; then\n"
                  f'  for j in {quoted}; do echo "$j|none"; done; exit 0; fi\n'
                  f"for j in {quoted}; do\n"
                  '  if [ ! -d "$j" ]; then echo "$j|none"; continue; fi\n'
                  '  c=0; [ -e "$j/cancel" ] && c=1\n'
                  '  if [ ! -f "$j/exit" ] && [ -f "$j/pid" ] && kill -0 "$(cat "$j/pid")" 2>/dev/null; then\n'
                  '    echo "$j|running|$c"; continue; fi\n'
                  '  if [ -f "$j/exit" ]; then\n'
                  '    r=$(tail -c 16384 "$j/out.log" 2>/dev/null | sed -n "s/^\\[runyard\\] task [^:]*: //p" | tail -n 1)\n'
                  '    echo "$j|exit|$c|$(cat "$j/exit")|$r"; continue; fi\n'
                  '  if [ -f "$j/pid" ]; then echo "$j|dead|$c"; else echo "$j|starting|$c"; fi\n'
                  "done\n")
        code, out, err = host.remote.run(script, timeout_s=self.options.command_timeout_s)
        if code != 0:
            raise RemoteError(f"polling jobs on {host.remote.label} failed (exit {code}): {err.strip()}",
                              "Check the host with `runyard backends test NAME`.")
        found: dict[str, EngineState] = {}
        ended = False
        for line in out.splitlines():
            parts = line.split("|", 4)
            name, kind = parts[0], parts[1] if len(parts) > 1 else ""
            canceled = len(parts) > 2 and parts[2] == "1"
            if kind == "none":
                found[name] = EngineState(EngineStatus.LOST, reason=f"no job directory {host.job_dir(name)} on {host.key}",
                                          raw="none")
            elif kind == "running":
                found[name] = EngineState(EngineStatus.RUNNING, raw="running")
            elif kind == "starting":
                found[name] = EngineState(EngineStatus.PENDING, reason="starting", raw="starting")
            elif kind == "dead":
                ended = True
                found[name] = EngineState(EngineStatus.CANCELED if canceled else EngineStatus.LOST,
                                          reason="the runner's process ended without writing its exit code "
                                                 "(killed with SIGKILL, or the host rebooted)", raw="dead")
            elif kind == "exit":
                ended = True
                code_text = parts[3].strip() if len(parts) > 3 else ""
                reason = parts[4].strip() if len(parts) > 4 else ""
                try:
                    rc = int(code_text)
                except ValueError:
                    found[name] = EngineState(EngineStatus.UNKNOWN, reason=f"unreadable exit file: {code_text!r}",
                                              raw=code_text)
                    continue
                status = _status_of(rc, reason, canceled)
                found[name] = EngineState(status, rc, reason or ("" if rc == 0 else f"exit code {rc}"), raw=f"exit {rc}")
        for name in names:
            if name not in found:
                found[name] = EngineState(EngineStatus.UNKNOWN, reason="the host did not answer for this job",
                                          raw=out[-200:])
        if ended and host.usage is not None:
            for name, state in found.items():
                if state.status.terminal:
                    host.usage.jobs.pop(name, None)
        return found

    def _cancel(self, host: _Host, name: str) -> None:
        job = shlex.quote(host.job_dir(name))
        script = (f"cd {job} 2>/dev/null || exit 0\n"
                  "[ -f exit ] && exit 0\n"
                  ": > cancel\n"
                  # Started but its pid not written yet: the start script reads the cancel marker.
                  "[ -f pid ] || exit 0\n"
                  'kill -TERM -- "-$(cat pid)" 2>/dev/null || true\n')
        code, _, err = host.remote.run(script, timeout_s=self.options.command_timeout_s)
        if code != 0:
            raise RemoteError(f"cancel on {host.remote.label} failed (exit {code}): {err.strip()}",
                              "Check the host with `runyard backends test NAME`.")

    def _check_host(self, host: _Host) -> list[CheckResult]:
        label = host.remote.label
        try:
            host.remote.connect()
        except RemoteError as e:
            return [CheckResult("ssh connection", False, e.message, e.hint or "")]
        results = [CheckResult("ssh connection", True, f"logged in to {label}"
                               + (f" with {host.opts.key_file}" if host.opts.key_file else ""))]
        try:
            code, out, _ = host.remote.run("for c in " + " ".join(REQUIRED_COMMANDS)
                                           + '; do command -v "$c" >/dev/null 2>&1 || echo "$c"; done',
                                           timeout_s=self.options.command_timeout_s)
            missing = out.split()
            if missing:
                results.append(CheckResult("commands on the host", False, f"missing on {label}: {', '.join(missing)}",
                                           "Install them there (Debian/Ubuntu: `apt-get install coreutils util-linux sed`)."))
            else:
                results.append(CheckResult("commands on the host", True, f"found {', '.join(REQUIRED_COMMANDS)}"))
            work = shlex.quote(host.jobs_dir)
            code, out, err = host.remote.run(f"mkdir -p {work} && touch {work}/.runyard-check && rm -f {work}/.runyard-check "
                                             f"&& cd {shlex.quote(host.work)} && pwd", timeout_s=self.options.command_timeout_s)
            if code == 0:
                results.append(CheckResult("work directory", True, f"{out.strip()} is writable"))
            else:
                results.append(CheckResult("work directory", False, f"cannot write {host.work} on {label}: {err.strip()}",
                                           "Set work_dir to a directory the login user can write."))
            python = host.opts.python
            code, out, err = host.remote.run(f"{python} -c 'import sys; print(sys.version.split()[0], sys.executable)'",
                                             timeout_s=self.options.command_timeout_s)
            if code != 0:
                found = "not found" if code == 127 else f"failed (exit {code}): {err.strip()[-300:]}"
                results.append(CheckResult("python on the host", False, f"`{python}` on {label}: {found}",
                                           "Install Python 3.11+ there, or set the host's python option to its path "
                                           "(e.g. python: /opt/venv/bin/python)."))
                return results
            version, _, exe = out.strip().partition(" ")
            results.append(CheckResult("python on the host", True, f"Python {version} at {exe}"))
            code, out, err = host.remote.run(f"{python} -c 'import runyard, runyard.runner; print(runyard.__version__)'",
                                             timeout_s=self.options.command_timeout_s)
            import runyard

            if code != 0:
                why = err.strip().splitlines()[-1] if err.strip() else f"exit code {code}"
                results.append(CheckResult("runyard on the host", False, f"`{python}` cannot import runyard: {why}",
                                           f"Install it there: `{python} -m pip install 'runyard=={runyard.__version__}'`."))
            elif out.strip() != runyard.__version__:
                results.append(CheckResult("runyard on the host", False,
                                           f"runyard {out.strip()} there, {runyard.__version__} on the server",
                                           f"Install the server's version there: "
                                           f"`{python} -m pip install 'runyard=={runyard.__version__}'`."))
            else:
                results.append(CheckResult("runyard on the host", True, f"runyard {out.strip()}"))

            def run_there(argv: Sequence[str]) -> tuple[int, str, str]:
                r = host.remote.run(list(argv), timeout_s=max(120.0, self.options.command_timeout_s))
                return r.exit_code, r.stdout, r.stderr

            results += container_checks(self.options, "podman", run_there, label)
        except RemoteError as e:
            results.append(CheckResult("ssh commands", False, e.message, e.hint or ""))
        return results


def _start_script(job: str, python: str, env: Mapping[str, str], res: str, start_timeout_s: float) -> str:
    """The shell script that starts the runner detached in ``job`` and waits until its pid is recorded.

    The wrapper ``sh`` leads a new session (setsid), so its pid is the process group's id
    that cancel signals. It ignores SIGTERM/SIGHUP/SIGINT itself so that it outlives the
    runner and writes the exit code (the runner installs its own handlers for them).
    """
    q = shlex.quote
    exports = " ".join(f"{k}={q(v)}" for k, v in env.items())
    inner = (
        "trap '' TERM HUP INT; echo $$ > pid.tmp && mv pid.tmp pid; "
        # Not an SSH session any more: bash sources ~/.bashrc when SSH_CLIENT is set (even for
        # `bash -c`), which may put another Python first on PATH for the task.
        "unset SSH_CLIENT SSH_CONNECTION SSH2_CLIENT SSH_TTY; "
        "if [ -e cancel ]; then echo 143 > exit.tmp; mv exit.tmp exit; exit 0; fi; "
        f"{exports} {runner_command(python, 'launch.json', workdir='work')} "
        "> out.log 2>&1 < /dev/null; "
        "echo $? > exit.tmp; mv exit.tmp exit"
    )
    n_tries = max(1, int(start_timeout_s / 0.05))
    return (
        f"cd {q(job)} || exit 70\n"
        "if [ -f pid ]; then exit 0; fi\n"  # idempotent: started before
        f"printf '%s\\n' {q(res)} > res\n"
        f"setsid nohup sh -c {q(inner)} > /dev/null 2>&1 < /dev/null &\n"
        f"i=0; while [ ! -f pid ] && [ $i -lt {n_tries} ]; do sleep 0.05; i=$((i+1)); done\n"
        "[ -f pid ] || { echo 'the wrapper wrote no pid file in time' >&2; exit 71; }\n"
    )


def _status_of(exit_code: int, reason: str, cancel_marked: bool) -> EngineStatus:
    """The engine view of an ended job, from the runner's last line (``[runyard] task X of run N: REASON``).

    The runner's reasons mirror ``TaskResult.status``: "TIMEOUT: ..." for its time limit;
    "canceled (...)", "pruned: ...", "the run was deleted (...)" and "stopped: ..." (a
    signal from us) for stops; anything else non-zero failed.
    """
    if exit_code == 0:
        return EngineStatus.SUCCEEDED
    if reason.startswith("TIMEOUT:"):
        return EngineStatus.TIMEOUT
    if reason.startswith(("canceled", "pruned:", "the run was deleted", "stopped: ")) or cancel_marked:
        return EngineStatus.CANCELED
    return EngineStatus.FAILED


def _valid_name(name: str) -> bool:
    run, _, attempt = name.partition(".")
    return run.isdigit() and attempt.isdigit()


def _fmt(r: Resources) -> str:
    return f"{r.cpus:g} CPUs, {r.gpus} GPUs" + (f", {r.memory_mb} MB" if r.memory_mb else "")

