"""Run a Jupyter notebook as a run's task: ``python -m runyard.notebook train.ipynb``.

The command ``notebook: train.ipynb`` in runyard.yml gives every run, on every backend
(containers included: it is an ordinary command). It

1. reads the run's params from ``RUNYARD_PARAMS`` and injects them with papermill into the
   cell tagged ``parameters`` (a notebook given params but without that cell is refused:
   papermill would put them first, where the notebook's own defaults overwrite them);
2. executes the notebook with the ``python3`` kernel, in the notebook's directory, writing
   each cell's outputs to its own stdout (a cell's stderr to its stderr) as the kernel sends
   them: printed text, and the text form of results and displays (``Out[3]``), so the runner
   streams them as the run's log;
3. stores the executed notebook and its HTML rendering (nbconvert) as the run's artifacts
   ``notebook/<name>.ipynb`` and ``notebook/<name>.html``, whether the notebook succeeded or not;
4. exits 1 when a cell raised, its last line naming the cell and the error.

Outside a launched run (no ``RUNYARD_RUN_ID``) the executed notebook and its HTML are written
next to the notebook as ``<name>.out.ipynb`` and ``<name>.out.html`` instead.

papermill and nbconvert come with ``pip install 'runyard[notebooks]'``; without them this
exits 2 with that fix.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["ARTIFACT_DIR", "check_submission", "main", "missing_packages", "parameters_cell"]

ARTIFACT_DIR = "notebook"
_EXTRA_FIX = "Install them where the runs execute: pip install 'runyard[notebooks]'"


def missing_packages() -> list[str]:
    """The packages running a notebook needs that this Python lacks (``[]`` when it has them all)."""
    import importlib.util

    return [name for name in ("papermill", "nbconvert", "ipykernel") if importlib.util.find_spec(name) is None]


def parameters_cell(nb: Any) -> int | None:
    """The index of the notebook's cell tagged ``parameters`` (``nb``: its JSON as a dict), or None."""
    for i, cell in enumerate(nb.get("cells", [])):
        if "parameters" in (cell.get("metadata", {}).get("tags") or []):
            return i
    return None


def check_submission(directory: Path, notebook: str, params: list[str], *, local: bool) -> None:
    """Refuse at ``runyard run`` what would fail every run: a missing or unreadable notebook, params
    without a ``parameters`` cell, and (``local``: the runs execute with this Python) papermill missing.

    Raises:
        InvalidInput: naming the problem and its fix.
    """
    from runyard.errors import InvalidInput

    path = Path(directory) / notebook
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"notebook: {notebook} does not exist in {directory}.",
                           "Check the path in runyard.yml; it is relative to the directory holding it.") from None
    except (OSError, ValueError) as e:
        raise InvalidInput(f"notebook: {notebook} cannot be read as a notebook ({e}).",
                           "Save it again from Jupyter.") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise InvalidInput(f"notebook: {notebook} is JSON but not a notebook (it has no cells).",
                           "Name a .ipynb file saved by Jupyter.")
    if params and parameters_cell(nb) is None:
        raise InvalidInput(f"notebook: {notebook} has no cell tagged `parameters`, so the params "
                           f"({', '.join(sorted(params))}) have no place to go.",
                           "Tag the cell that sets their defaults with `parameters` (JupyterLab: the cell's "
                           "property inspector → Cell Tags; Jupyter Notebook: View → Cell Toolbar → Tags).")
    missing = missing_packages() if local else []
    if missing:
        raise InvalidInput(f"notebook: runs need {', '.join(missing)}, which {sys.executable} lacks (the local "
                           "backend runs them with it).", "pip install 'runyard[notebooks]'")


def _say(text: str) -> None:
    sys.stderr.write(f"[runyard] {text}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        _say("usage: python -m runyard.notebook NOTEBOOK.ipynb (the run's params come from RUNYARD_PARAMS)")
        return 2
    path = Path(args[0])
    missing = missing_packages()
    if missing:
        _say(f"running notebook {path} needs {', '.join(missing)}, which {sys.executable} lacks. {_EXTRA_FIX}.")
        return 2
    try:
        params = json.loads(os.environ.get("RUNYARD_PARAMS") or "{}")
    except ValueError:
        params = None
    if not isinstance(params, dict):
        _say("RUNYARD_PARAMS is not a JSON object, so the run's params are unknown. Leave it as the runner set it.")
        return 2
    try:
        nb_json = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        _say(f"notebook {path} does not exist in {Path.cwd()}. Check `notebook:` in runyard.yml, and that the "
             "notebook is not excluded by ignore: or .runyardignore.")
        return 2
    except (OSError, ValueError) as e:
        _say(f"notebook {path} cannot be read as a notebook ({e}). Save it again from Jupyter.")
        return 2
    if params and (not isinstance(nb_json, dict) or parameters_cell(nb_json) is None):
        _say(f"notebook {path} has no cell tagged `parameters`, so the run's params ({', '.join(sorted(params))}) "
             "have no place to go. Tag the cell that sets their defaults with `parameters` (JupyterLab: the "
             "cell's property inspector → Cell Tags; Jupyter Notebook: View → Cell Toolbar → Tags).")
        return 2
    return _execute(path, params)


def _execute(path: Path, params: dict[str, Any]) -> int:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    launched = bool(os.environ.get("RUNYARD_RUN_ID"))
    stem = path.name[: -len(".ipynb")] if path.name.endswith(".ipynb") else path.name
    with tempfile.TemporaryDirectory(prefix="runyard-notebook-") as tmp:
        out = Path(tmp) / f"{stem}.ipynb" if launched else path.with_name(f"{stem}.out.ipynb")
        failure = ""
        echo = _CellOutput()
        papermill_log = logging.getLogger("papermill")
        papermill_log.addHandler(echo)
        papermill_log.setLevel(logging.INFO)
        try:
            papermill.execute_notebook(str(path), str(out), parameters=params, kernel_name="python3", language="python",
                                       progress_bar=False, log_output=True, cwd=str(path.parent.resolve()),
                                       config=_kernel_config())
        except PapermillExecutionError as e:
            first = next((ln.strip() for ln in str(e.source).splitlines() if ln.strip()), "")
            first = first if len(first) <= 60 else first[:57] + "..."
            failure = f"the cell starting `{first}` raised {e.ename}: {e.evalue}"
        except Exception as e:  # noqa: BLE001 - the kernel did not start, the notebook is malformed, ...
            failure = f"could not execute: {type(e).__name__}: {e}"
        finally:
            papermill_log.removeHandler(echo)
        sys.stdout.flush()
        kept = _keep(out, stem, launched) if out.exists() else []
        if kept:
            _say(f"executed notebook kept as {', '.join(kept)}")
        if failure:
            _say(f"notebook {path} failed: {failure}")
            return 1
    return 0


class _CellOutput(logging.Handler):
    """Each output of a cell, as the kernel sends it: papermill's ``log_output`` messages (streams, and the
    text form of results and displays), written to this process's stdout (stderr for a cell's stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.funcName != "log_output_message":  # papermill's own notes (input path, kernel name)
            return
        text = record.getMessage()
        out = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        out.write(text if text.endswith("\n") else text + "\n")
        out.flush()


def _kernel_config() -> Any:
    """The kernel talks to this process over Unix sockets (IPC), not TCP ports on the machine."""
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    return config


def _keep(executed: Path, stem: str, launched: bool) -> list[str]:
    """Render the executed notebook as HTML; upload both (a launched run) or leave them beside it."""
    html = executed.with_suffix(".html")
    try:
        import nbformat
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(executed), as_version=4))
        html.write_text(body, encoding="utf-8")
    except Exception as e:  # noqa: BLE001 - the executed notebook is kept even when it cannot be rendered
        _say(f"the executed notebook could not be rendered as HTML ({type(e).__name__}: {e}); it is kept as .ipynb")
    files = [f for f in (executed, html) if f.exists()]
    if not launched:
        return [str(f) for f in files]
    import runyard

    run = runyard.init()
    kept: list[str] = []
    for f in files:
        kept += run.log_artifact(f, name=f"{ARTIFACT_DIR}/{stem}{f.suffix}")
    run.flush()
    return kept


if __name__ == "__main__":
    sys.exit(main())
