"""What a launched run records, for a run started from plain Python: console, system metrics, environment.

``runyard.init()`` outside a launched run (``capture_output=True``, the default) starts a
:class:`Capture`:

- ``sys.stdout`` and ``sys.stderr`` are replaced by tees: everything still reaches the
  original streams at once, and each whole line is also queued for the run's log (task
  ``main``, streams ``stdout``/``stderr``; a progress bar's ``\\r`` redraws keep what a terminal
  would show). Only Python-level writes are seen: output a C extension or a child process
  writes to the file descriptors directly is not.
- A daemon thread, started after ``init()`` returns its run, then records the environment
  once, as tags: ``host``, ``python``, ``command`` (``sys.orig_argv``), ``cwd``, and, in a git
  work tree (the main script's directory, else the working directory), ``git.commit``,
  ``git.branch`` and ``git.dirty``; and as artifacts: ``environment/packages.txt`` (every
  installed distribution, ``name==version``) and ``environment/git.diff`` (a dirty tree's
  ``git diff HEAD``, cut at 1 MiB).
- The same thread sends the queued lines every 0.2 s (at most 500 per request, each batch
  with an idempotency key) and samples the process tree's CPU, memory and GPU use every
  ``RUNYARD_SDK_SAMPLE_S`` seconds (default 5) as the metrics ``sys/*`` a launched run gets.

When the run ends, the tees come off (when nothing replaced them since), and the lines still
queued are sent within the flush timeout. A run started while the server is away sends its
lines once the server created it; they are kept in memory only (at most 100,000 lines).
"""

from __future__ import annotations

import os
import platform
import shlex
import socket
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runyard.sdk._run import Run

__all__ = ["Capture"]

SEND_EVERY_S = 0.2
MAX_LINES_PER_REQUEST = 500
MAX_QUEUED_LINES = 100_000
MAX_LINE_CHARS = 64 * 1024
TAG_MAX_CHARS = 1000
TASK = "main"


class _Tee:
    """A text stream that writes through to ``target`` and hands what it writes to ``sink``."""

    def __init__(self, target: Any, stream: str, sink: Any) -> None:
        self._target = target
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        n = self._target.write(text)
        try:
            self._sink(self._stream, text)
        except Exception:  # noqa: BLE001, S110 - a capture problem must never break the program's print()
            pass
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, buffer, ...: the original's
        return getattr(self._target, name)


class Capture:
    """Tees the console into ``run``'s log and samples system metrics; see the module docstring.

    Args:
        run: the ad-hoc run (its ``id`` may still be None while the server is away).
        sample_s: how often to sample system metrics.
    """

    def __init__(self, run: Run, *, sample_s: float = 5.0) -> None:
        self._run = run
        self._sample_s = sample_s
        self._lines: deque[dict[str, Any]] = deque()
        self._partial = {"stdout": "", "stderr": ""}
        self._lock = threading.Lock()
        self._n_dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="runyard-capture", daemon=True)
        self._tees: list[tuple[str, Any, _Tee]] = []
        self._forked = False

    def start(self) -> None:
        """Put the tees on and start the thread (cheap: the rest happens on the thread)."""
        for name in ("stdout", "stderr"):
            original = getattr(sys, name)
            if original is None:
                continue
            tee = _Tee(original, name, self._take)
            setattr(sys, name, tee)
            self._tees.append((name, original, tee))
        self._thread.start()

    def forked(self) -> None:
        """In a forked child: the thread did not come along, so the tees only print from now on."""
        self._forked = True

    # --------------------------------------------------------------- producers
    def _take(self, stream: str, text: str) -> None:
        if not text or self._forked:
            return
        now = time.time()
        with self._lock:
            text = self._partial[stream] + text
            if "\n" not in text:
                self._partial[stream] = text[-MAX_LINE_CHARS:]
                return
            *whole, rest = text.split("\n")
            self._partial[stream] = rest
            for line in whole:
                self._add(stream, line, now)

    def _add(self, stream: str, line: str, ts: float) -> None:
        line = line.removesuffix("\r")
        if "\r" in line:
            line = line.rsplit("\r", 1)[-1]
        if len(self._lines) >= MAX_QUEUED_LINES:
            self._n_dropped += 1
            return
        self._lines.append({"stream": stream, "text": line[:MAX_LINE_CHARS], "ts": ts})

    # ------------------------------------------------------------------ the end
    def close(self, timeout_s: float) -> None:
        """Take the tees off, then send what is queued (up to ``timeout_s``)."""
        for name, original, tee in self._tees:
            if getattr(sys, name) is tee:
                setattr(sys, name, original)
        self._tees = []
        with self._lock:
            for stream, rest in self._partial.items():
                if rest:
                    self._add(stream, rest, time.time())
            self._partial = {"stdout": "", "stderr": ""}
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------ thread
    def _main(self) -> None:
        t0 = time.monotonic()
        sampler = self._sample(None, t0)  # primes CPU times: the first values come one period later
        next_sample = t0 + self._sample_s
        environment_done = False
        while True:
            stopping = self._stop.wait(SEND_EVERY_S)
            now = time.monotonic()
            if now >= next_sample or stopping:  # and one last sample as the run ends
                next_sample = max(next_sample + self._sample_s, now)
                sampler = self._sample(sampler, t0)
            client, run_id = self._run._client, self._run.id
            if client is None:
                return  # the run ended (its client is closed)
            if run_id is None:
                if stopping:
                    return
                continue  # created when the server answers
            if not environment_done:
                environment_done = True
                self._record_environment(client, run_id)
            if not self._send_lines(client, run_id) and stopping:
                return
            if stopping and not self._lines:
                return

    def _send_lines(self, client: Any, run_id: int) -> bool:
        """Send the queued lines; False when the server did not take them (they stay queued)."""
        from runyard.errors import RunyardError

        while True:
            with self._lock:
                batch = [self._lines[i] for i in range(min(MAX_LINES_PER_REQUEST, len(self._lines)))]
                dropped, self._n_dropped = self._n_dropped, 0
            if dropped:
                batch.append({"stream": "system", "text": f"[runyard] {dropped} console lines were dropped: more than "
                              f"{MAX_QUEUED_LINES} waited for the server", "ts": time.time()})
            if not batch:
                return True
            try:
                client.append_logs(run_id, TASK, batch, batch_id=uuid.uuid4().hex)
            except RunyardError:
                return False
            with self._lock:
                for _ in range(len(batch) - (1 if dropped else 0)):
                    self._lines.popleft()

    def _sample(self, sampler: Any, t0: float) -> Any:
        try:
            if sampler is None:
                from runyard._sysmetrics import ProcessTreeSampler

                sampler = ProcessTreeSampler(os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"))
                return sampler  # the first sample only primes cpu_percent()
            values = sampler.sample()
        except Exception:  # noqa: BLE001 - no metrics rather than a broken program (psutil missing, ...)
            return sampler
        queue = self._run._queue
        if queue is None or self._run._closed:
            return sampler
        step, t = round(time.monotonic() - t0), time.time()
        for key, value in values.items():
            queue.append((key, step, float(value), t))
        return sampler

    def _record_environment(self, client: Any, run_id: int) -> None:
        from runyard._git import git_info
        from runyard.errors import RunyardError

        argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
        tags = {"host": socket.gethostname(), "python": f"{platform.python_implementation()} {platform.python_version()}",
                "command": shlex.join(argv), "cwd": os.getcwd()}
        script = Path(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
        where = script.resolve().parent if script is not None and script.is_file() else Path.cwd()
        files: dict[str, bytes] = {"environment/packages.txt": _packages().encode()}
        try:
            git = git_info(where)
        except (RunyardError, OSError):
            git = None
        if git is not None and git.commit:
            tags["git.commit"] = git.commit
            tags["git.branch"] = git.branch or "(detached)"
            tags["git.dirty"] = "true" if git.dirty else "false"
            if git.dirty and git.diff:
                files["environment/git.diff"] = git.diff.encode()
        clean = {k: _printable(v) for k, v in tags.items()}
        try:
            client.set_tags(run_id, clean)
        except RunyardError:
            pass  # the run's metrics and log matter more; nothing here is retried
        for path, data in files.items():
            try:
                client.upload_artifact(run_id, path, data)
            except RunyardError:
                pass


def _printable(text: str) -> str:
    """A tag value: control characters as spaces, at most TAG_MAX_CHARS characters."""
    import runyard.names as names

    text = "".join(" " if ord(c) < 32 or c == "\x7f" else c for c in text)
    text = text if len(text) <= TAG_MAX_CHARS else text[: TAG_MAX_CHARS - 1] + "…"
    return text if names.text_problem(text) is None else text.encode("ascii", "replace").decode()


def _packages() -> str:
    from importlib import metadata

    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "".join(line + "\n" for _, line in sorted(seen.items()))
