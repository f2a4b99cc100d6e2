"""TensorBoard: ``runyard import tensorboard DIR`` and ``runyard tensorboard EXPERIMENT``."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import console, err_console, print_json
from runyard.errors import InvalidInput, NotFound

import_app = typer.Typer(name="import", no_args_is_help=True, help="Bring runs recorded elsewhere into a project.")
app.add_typer(import_app)

ARTIFACT_PREFIX = "tensorboard/"
METRICS_PER_REQUEST = 10_000
_MISSING = "pip install 'runyard[tensorboard]'"


@import_app.command("tensorboard")
def import_tensorboard(
    directory: Path = typer.Argument(..., help="A directory of TensorBoard event files (searched at any depth)."),
    project: str = typer.Option(..., "--project", help="The project the runs go to."),
    json_: bool = typer.Option(False, "--json", help="Print the runs created as JSON."),
) -> None:
    """Make a run of every directory of TensorBoard event files under DIR, with its scalars.

    Each directory holding event files becomes one run, named after its path under DIR
    (DIR's own name for files directly in it), with every scalar as a metric: its tag,
    steps and wall times. The runs are tagged source=tensorboard.

    Examples:

        $ runyard import tensorboard lightning_logs --project mnist
    """
    import runyard.names as names
    from runyard.runner._tensorboard import event_files, read_scalars

    names.check_project_name(project)
    root = directory.resolve()
    if not root.is_dir():
        raise InvalidInput(f"{directory} is not a directory.", "Pass the directory your code gave its SummaryWriter "
                           "(the logdir), e.g. `runyard import tensorboard runs/ --project P`.")
    try:
        found = read_scalars(root)
    except ImportError as e:
        raise InvalidInput(str(e), _MISSING) from None
    if not event_files(root):
        raise NotFound(f"No TensorBoard event files (*tfevents*) under {directory}.",
                       "Pass the logdir your code wrote to; event files are named events.out.tfevents.*.")
    created: list[dict[str, Any]] = []
    with get_client() as client:
        for folder, points in sorted(found.items()):
            rel = folder.relative_to(root).as_posix()
            name = root.name if rel == "." else rel
            if names.run_name_problem(name) is not None:
                name = ""  # the server names it run-<id>
            record = client.create_run(project, name=name, tags={"source": "tensorboard", "logdir": str(folder)[:1000]})
            run_id = record["id"]
            for i in range(0, len(points), METRICS_PER_REQUEST):
                chunk = points[i:i + METRICS_PER_REQUEST]
                client.log_metrics(run_id, [p.key for p in chunk], [p.step for p in chunk], [p.value for p in chunk],
                                   [p.wall_time for p in chunk])
            status = "succeeded" if points else "failed"
            client.update_run(run_id, status, None if points else "no scalar could be read from its event files")
            created.append({"id": run_id, "name": record.get("name", name), "directory": str(folder),
                            "points": len(points), "metrics": sorted({p.key for p in points})})
    if json_:
        print_json(created)
        return
    for run in created:
        console().print(f"run {run['id']} {run['name']}: {run['points']} points of {len(run['metrics'])} metrics "
                        f"({', '.join(run['metrics'][:5])}{', …' if len(run['metrics']) > 5 else ''})", markup=False)
    console().print(f"Imported {len(created)} run{'s' if len(created) != 1 else ''} into project {project}.", markup=False)


@app.command("tensorboard")
def tensorboard(
    experiment_id: int = typer.Argument(..., metavar="EXPERIMENT", help="Experiment id."),
    port: int = typer.Option(0, "--port", help="Port on 127.0.0.1 (default: a free one)."),
    idle: float = typer.Option(30.0, "--idle", help="Stop after this many minutes without a request (0: never)."),
    server: bool | None = typer.Option(None, "--server/--local", help="Through the server (a link to its TensorBoard, "
                                       "started there) or here (download, TensorBoard on 127.0.0.1). Default: "
                                       "--server when the server is on another machine, else --local."),
    open_: bool = typer.Option(False, "--open", help="With --server: also open the link in the web browser."),
    json_: bool = typer.Option(False, "--json", help="With --server: print the server's answer as JSON."),
) -> None:
    """Start TensorBoard over the event files an experiment's runs kept.

    The runs must keep them: `tensorboard: {logdir: logs/, serve: true}` in runyard.yml.
    They are downloaded into a temporary directory (one directory per run, named
    after it) and served by TensorBoard on 127.0.0.1 until Ctrl-C, or until no request
    came for --idle minutes; the directory is removed afterwards.

    With --server (the default when the server is on another machine), the server starts the
    experiment's TensorBoard itself and this prints a link to it: a private address, valid for
    12 hours after its last use, that works without signing in, so do not share it.

    Examples:

        $ runyard tensorboard 12

        $ runyard tensorboard 12 --port 6006 --idle 0

        $ runyard tensorboard 12 --server --open
    """
    with get_client() as client:
        remote = not _loopback(client.base_url)
        if server if server is not None else remote:
            _through_server(client, experiment_id, open_, json_)
            return
    if not _importable("tensorboard"):
        raise InvalidInput(f"TensorBoard is not installed for {sys.executable}.", _MISSING)
    tmp = Path(tempfile.mkdtemp(prefix=f"runyard-tensorboard-{experiment_id}-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        with get_client() as client:
            exp = client.get_experiment(experiment_id)
            n_runs, n_files = _download(client, experiment_id, tmp)
        if n_files == 0:
            raise NotFound(f"No run of experiment {experiment_id} ({exp['name']}) kept TensorBoard event files.",
                           "Set `tensorboard: {logdir: logs/, serve: true}` in runyard.yml and run the experiment again.")
        port = port or _free_port()
        argv = [sys.executable, "-m", "runyard.server._tbserve", str(idle * 60), "--logdir", str(tmp),
                "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err_console().print(f"TensorBoard for experiment {experiment_id} ({n_runs} runs, {n_files} event files): "
                            f"http://127.0.0.1:{port}/ (pid {proc.pid}; Ctrl-C stops it"
                            + (f", as do {idle:g} idle minutes)" if idle else ")"), markup=False)
        sys.stderr.flush()
        rc = proc.wait()
        if rc != 0:
            tail = proc.stderr.read().decode(errors="replace").strip().splitlines()[-5:] if proc.stderr else []
            raise InvalidInput(f"TensorBoard exited with code {rc}: {' / '.join(tail) or 'no message'}.",
                               "Pick another --port if this one is taken.")
    except KeyboardInterrupt:
        err_console().print("TensorBoard stopped.", markup=False)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _loopback(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _through_server(client: Any, experiment_id: int, open_: bool, json_: bool) -> None:
    link = client.request("POST", f"/experiments/{experiment_id}/tensorboard").json()
    url = client.base_url + link["url"]
    if json_:
        print_json({**link, "url": url})
    else:
        console().print(url, markup=False, soft_wrap=True)
        err_console().print(f"TensorBoard for experiment {experiment_id} ({link['runs']} runs, {link['files']} files) "
                            "runs on the server. The link needs no sign-in: keep it to yourself. It stops working "
                            f"after {link['expires_in_s'] / 3600:g} hours unused; run this again for a new one.",
                            markup=False)
    if open_:
        import webbrowser

        webbrowser.open(url)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _download(client: Any, experiment_id: int, root: Path) -> tuple[int, int]:
    """Each run's ``tensorboard/`` artifacts into ``root/<run name>/``: (runs with files, files)."""
    runs = client.list_runs(experiment_id=experiment_id, limit=10000)["items"]
    n_runs = n_files = 0
    for run in runs:
        items = client.list_artifacts(run["id"], prefix=ARTIFACT_PREFIX)
        if not items:
            continue
        n_runs += 1
        folder = f"{run['id']}-{_safe(run.get('name') or '')}".rstrip("-")
        base = (root / folder).resolve()
        for art in items:
            dest = (base / art["path"][len(ARTIFACT_PREFIX):]).resolve()
            if base not in dest.parents:
                continue  # the server cleans paths on upload: nothing escapes, but never write outside
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_artifact(run["id"], art["path"], dest)
            n_files += 1
    return n_runs, n_files


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:80]

