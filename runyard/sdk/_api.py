"""The module-level SDK functions and the process's one active run.

One run is active per process. ``log`` and the other writing calls start one on first
use ("auto-init", as ``init()`` with defaults). The first ``init()`` installs process
hooks:

- an ``atexit`` handler that finishes the active run with the process's outcome:
  ``failed`` (exit code 1) after an uncaught exception, seen through a wrapped
  ``sys.excepthook``; the code of ``sys.exit(code)`` (``failed`` unless it is 0 or None;
  ``sys.exit("message")`` is code 1), seen through a wrapped ``sys.exit`` in the main
  thread, since a ``SystemExit`` reaches neither the excepthook nor the atexit handler;
  else ``succeeded``. Not seen: ``raise SystemExit(n)`` written out (and the ``exit()``
  builtin) end ``succeeded`` unless inside ``with runyard.init()``, which sees it;
- a SIGTERM handler, only if the program has none (SIG_DFL): it sends the buffered
  points (for up to 10 s), sets the run ``failed`` ("stopped by SIGTERM", exit code
  143), then dies of SIGTERM as it would have;
- an after-fork handler that stops a forked child from queueing points no thread would
  ever send.

A process that vanishes without any of these (SIGKILL, ``os._exit``, a power cut) stops
heartbeating; the server ends its run ``failed`` ("lost") after
``RUNYARD_LOST_RUN_TIMEOUT_S``.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

from runyard.sdk._run import Run, _exit_message, env_params, exit_outcome, flush_timeout_s, start_run

__all__ = ["active_run", "finish", "init", "log", "log_artifact", "log_image", "log_params", "log_table", "note", "params",
           "set_tags", "should_stop"]

_active: Run | None = None
_lock = threading.RLock()
_hooks_installed = False
_exit_error: str | None = None
_no_exit = object()
_exit_code: object = _no_exit  # the code of the main thread's last sys.exit()
SIGTERM_FLUSH_S = 10.0


def init(project: str | None = None, name: str = "", params: Mapping[str, Any] | None = None,
         tags: Mapping[str, Any] | None = None, capture_output: bool | None = None) -> Run:
    """Start the run this process logs to, and make it the active run.

    Inside a run launched by Runyard (``RUNYARD_RUN_ID`` and ``RUNYARD_SERVER`` set)
    this attaches to that run: its params come from ``RUNYARD_PARAMS`` and win over the
    ``params`` given here, which act as defaults (the others are logged too).
    Elsewhere it creates an ad-hoc run on ``RUNYARD_SERVER``, or on the embedded local
    server (started on demand). An active run is finished first.

    Args:
        project: ad-hoc runs only; default ``RUNYARD_PROJECT`` or ``"default"``.
        name: ad-hoc runs only; default ``run-<id>``.
        params: hyper-parameters (JSON-like values).
        tags: tags; values are stored as strings.
        capture_output: ad-hoc runs only: record this process's console output (a tee:
            it still prints), its system metrics (``sys/*``), and its environment (host,
            Python, command line, git commit, branch and diff, installed packages), as a
            launched run has them; in the background, after init() returned. False turns
            all of it off; the default is on unless ``RUNYARD_SDK_CAPTURE=0``.

    Returns:
        The run. If the server cannot be reached to create it, the failure is reported
        on stderr and the run's ``id`` is None: logging then does nothing.

    Raises:
        TypeError: ``params`` or ``tags`` is not a dict.
        runyard.errors.InvalidInput: malformed ``RUNYARD_RUN_ID``/``RUNYARD_PARAMS``, or
            params the server refuses.

    Example:
        >>> run = runyard.init(project="demo", name="baseline", params={"lr": 0.1})
        >>> runyard.params()["lr"]
        0.1
        >>> runyard.finish()
    """
    global _active
    with _lock:
        previous = _active
        if previous is not None:
            previous.finish()
        if capture_output is None:
            capture_output = os.environ.get("RUNYARD_SDK_CAPTURE", "1").strip().lower() not in ("0", "false", "no", "off")
        run = start_run(project, name, params, tags, _forget, capture_output)
        if previous is not None and previous.id is not None and previous.id == run.id:
            run._n_logs = previous._n_logs  # re-attached to the same launched run: default steps go on
        _active = run
        _install_hooks()
    return run


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Queue metric points of the active run and return at once (about 1 µs for one metric).

    A background thread sends them in batches; when the server is away they are kept
    (in memory, then on disk) and sent when it is back. Nothing here raises into the
    training loop except a non-dict ``metrics``: unusable values are reported once on
    stderr and dropped. Starts a run with defaults if none is active.

    Args:
        metrics: name → number (int, float, numpy scalar, 0-d tensor).
        step: default: the number of earlier log() calls of the run (0, 1, 2, ...).

    Example:
        >>> runyard.init(project="demo")  # doctest: +ELLIPSIS
        Run(...)
        >>> for epoch in range(3):
        ...     runyard.log({"loss": 1.0 / (epoch + 1), "acc": 0.5 + epoch / 10}, step=epoch)
        >>> runyard.finish()
    """
    run = _active
    if run is None:
        run = _auto()
    run.log(metrics, step)


def log_params(params: Mapping[str, Any]) -> None:
    """Record params of the active run (synchronously; failures are reported, not raised).

    Raises:
        TypeError: ``params`` is not a dict.

    Example:
        >>> runyard.log_params({"batch_size": 64})
        >>> runyard.params()["batch_size"]
        64
        >>> runyard.finish()
    """
    _auto().log_params(params)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set tags of the active run (synchronously; failures are reported, not raised).

    Raises:
        TypeError: ``tags`` is not a dict.

    Example:
        >>> runyard.set_tags({"dataset": "digits"})
        >>> runyard.finish()
    """
    _auto().set_tags(tags)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> list[str]:
    """Upload a file or a directory to the active run, after flushing its metrics.

    Args:
        path: a file, or a directory (every file under it).
        name: the artifact path; default the file's or directory's name. Files of a
            directory go under ``name/<relative path>``.

    Returns:
        The artifact paths uploaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.

    Example:
        >>> _ = Path("ckpt").mkdir()
        >>> _ = Path("ckpt/epoch1.txt").write_text("w")
        >>> runyard.log_artifact("ckpt")
        ['ckpt/epoch1.txt']
        >>> runyard.finish()
    """
    return _auto().log_artifact(path, name)


def log_image(key: str, image: Any, step: int | None = None, caption: str | None = None) -> str | None:
    """Store an image of the active run (a PNG the UI's Images tab shows); returns at once, uploaded in the background.

    See :meth:`Run.log_image`: ``image`` is a PIL image, a numpy array (HxW, HxWx1, HxWx3, HxWx4;
    uint8, or floats in [0, 1]), a matplotlib Figure or the path of an image file.

    Raises:
        runyard.errors.InvalidInput: a bad key, step, caption or array, or a package it needs is missing.
        TypeError: ``image`` is of no known kind.

    Example:
        >>> import numpy as np
        >>> for step in range(2):
        ...     runyard.log_image("noise", np.random.rand(16, 16), step=step, caption=f"step {step}")
        'media/images/noise/0-0.png'
        'media/images/noise/1-0.png'
        >>> runyard.finish()
    """
    return _auto().log_image(key, image, step, caption)


def log_table(key: str, data: Any, step: int | None = None, format: str = "csv") -> str | None:  # noqa: A002
    """Store a table of the active run (CSV, or Parquet with pyarrow); returns at once, uploaded in the background.

    See :meth:`Run.log_table`: ``data`` is a pandas DataFrame, a list of dicts, or
    ``{"columns": [...], "rows": [[...], ...]}``.

    Raises:
        runyard.errors.InvalidInput: a bad key, step, format or cell, or pyarrow missing for Parquet.
        TypeError: ``data`` is of no known kind.

    Example:
        >>> runyard.log_table("confusion", {"columns": ["true", "pred", "n"], "rows": [["cat", "dog", 3]]}, step=5)
        'media/tables/confusion/5.csv'
        >>> runyard.finish()
    """
    return _auto().log_table(key, data, step, format)


def note(text: str, append: bool = False) -> None:
    """Set the active run's note (Markdown, at most 100,000 characters); ``append=True`` adds a paragraph.

    Raises:
        runyard.errors.InvalidInput: too long, or a NUL character or an unpaired surrogate.
        TypeError: ``text`` is not a string.

    Example:
        >>> runyard.note("Tried **mixup**; see the confusion table.")
        >>> runyard.note("Worse than the baseline.", append=True)
        >>> runyard.finish()
    """
    _auto().note(text, append)


def params() -> dict[str, Any]:
    """The params of the active run; without one, those of the launched run (``RUNYARD_PARAMS``) or {}.

    Example:
        >>> with runyard.init(project="demo", params={"lr": 0.1}):
        ...     runyard.params()
        {'lr': 0.1}
    """
    run = _active
    if run is not None:
        return run.params
    return env_params() if os.environ.get("RUNYARD_RUN_ID") else {}


def should_stop() -> bool:
    """True once the active run was stopped on the server (pruned, canceled); cheap, call it every step.

    Example:
        >>> with runyard.init(project="demo"):
        ...     for step in range(100):
        ...         if runyard.should_stop():
        ...             break
        ...         runyard.log({"loss": 1.0 / (step + 1)})
    """
    run = _active
    return run.should_stop() if run is not None else False


def active_run() -> Run | None:
    """The active run, or None.

    Example:
        >>> run = runyard.init(project="demo")
        >>> runyard.active_run() is run
        True
        >>> runyard.finish()
        >>> runyard.active_run() is None
        True
    """
    return _active


def finish(status: str = "succeeded") -> None:
    """Finish the active run (if any): flush its metrics, then set its status if it is ad hoc.

    See :meth:`Run.finish`. Runs still active at interpreter exit are finished
    automatically (``failed`` when the exit is due to an uncaught exception).

    Example:
        >>> run = runyard.init(project="demo")
        >>> runyard.finish("failed")
    """
    run = _active
    if run is not None:
        run.finish(status)


# ------------------------------------------------------------------ internals
def _auto() -> Run:
    with _lock:
        return _active if _active is not None else init()


def _forget(run: Run) -> None:
    global _active
    if _active is run:
        _active = None


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    previous = sys.excepthook

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        global _exit_error
        if not hasattr(sys, "ps1"):  # an interactive session reports errors without exiting
            _exit_error = _exit_message(exc_type, exc)
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    original_exit = sys.exit

    def exit(status: object = None) -> None:  # noqa: A001  (it replaces sys.exit, under that name)
        global _exit_code
        if threading.current_thread() is threading.main_thread():  # elsewhere it only ends the thread
            _exit_code = status
        original_exit(status)

    exit.__doc__ = original_exit.__doc__
    sys.exit = exit
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_sigterm(signum: int, frame: Any) -> None:
    run = _active
    if run is not None:
        run._end("failed", "the process was stopped by SIGTERM", 128 + signal.SIGTERM,
                 timeout_s=min(flush_timeout_s(), SIGTERM_FLUSH_S))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # die of it, as without this handler


def _at_exit() -> None:
    run = _active
    if run is None:
        return
    if _exit_error is not None:
        run._end("failed", f"the process exited with {_exit_error}", 1)
    elif _exit_code is not _no_exit:
        run._end(*exit_outcome(_exit_code))
    else:
        run._end("succeeded", None, 0)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # another thread may have held it at the fork
    if _active is not None:
        _active._forked()
