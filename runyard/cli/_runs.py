"""Run commands: ``ls``, ``status``, ``info``, ``note``, ``logs``, ``cancel``, ``download``."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import (
    ago,
    compact_params,
    console,
    counts_text,
    err_console,
    fmt_duration,
    fmt_number,
    fmt_size,
    fmt_time,
    print_json,
    run_duration,
    status_text,
)
from runyard.errors import InvalidInput, NotFound
from runyard.records.status import TERMINAL

if TYPE_CHECKING:
    from runyard.client import Client

__all__: list[str] = []

MAX_METRIC_COLUMNS = 6
LOG_WAIT_S = 10.0


def _escape(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))


# ------------------------------------------------------------------------- ls
def _metric_keys(runs: list[dict[str, Any]], n: int) -> list[str]:
    """The ``n`` metric keys most runs share (ties by name), shown as columns.

    The runner's system metrics (``sys/...``) come after the user's own.
    """
    counts: dict[str, int] = {}
    for run in runs:
        for key in run.get("metrics") or {}:
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda k: (k.startswith("sys/"), -counts[k], k))[:n]


@app.command("ls")
def ls(
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project's runs."),
    experiment: int | None = typer.Option(None, "--experiment", "-e", help="Only this experiment's runs."),
    status: Annotated[list[str] | None, typer.Option(
        "--status", "-s", help="Keep runs with this status (repeatable): queued, starting, running, succeeded, failed, "
                               "canceled, pruned.")] = None,
    filter_: Annotated[list[str] | None, typer.Option(
        "--filter", help="Filter expression (repeatable, ANDed), e.g. 'metrics.loss.min < 0.5', 'params.act == relu', "
                    "'metrics.\"val loss\" < 1' (docs/queries.md).")] = None,
    sort: str | None = typer.Option(None, "--sort", help="Sort expression, e.g. 'metrics.acc.max desc'."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10000, help="Runs per page."),
    offset: int = typer.Option(0, "--offset", min=0, help="Runs to skip (paging)."),
    json_: bool = typer.Option(False, "--json", help="Print the API's page JSON ({items, total, offset, limit})."),
    csv_: bool = typer.Option(False, "--csv", help="Print CSV: the run's fields, params.<name>, "
                              "metrics.<key>.last/min/max and tags.<name> columns, one row per run."),
    all_: bool = typer.Option(False, "--all", help="Every matching run, page after page (with --csv or --json; "
                              "--limit and --offset are then ignored)."),
) -> None:
    """List runs, newest first: id, project, name, status, duration, params, last metric values, created.

    ``--csv`` is for spreadsheets and pandas: a text cell that starts with ``=``, ``+``, ``-``, ``@`` or a
    tab is written with a leading ``'`` so that a spreadsheet shows it rather than running it as a formula.

    Examples:

        $ runyard ls

        $ runyard ls --project demo --status succeeded --sort "metrics.loss.min asc" --limit 10

        $ runyard ls --filter "params.lr >= 0.01" --filter "metrics.loss.last < 1" --json

        $ runyard ls --project demo --all --csv
    """
    from rich.table import Table

    if csv_ and json_:
        raise typer.BadParameter("--csv or --json: choose one.")
    if all_ and not (csv_ or json_):
        raise typer.BadParameter("--all needs --csv or --json.")
    with get_client() as client:
        if all_:
            items = list(client.iter_runs(project=project, experiment_id=experiment, status=status or (),
                                          filters=filter_ or (), order_by=sort or "id asc"))
            page = {"items": items, "total": len(items), "offset": 0, "limit": len(items)}
        else:
            page = client.list_runs(project=project, experiment_id=experiment, status=status or (),
                                    filters=filter_ or (), order_by=sort, limit=limit, offset=offset)
    if csv_:
        _print_csv(page["items"])
        return
    if json_:
        print_json(page)
        return
    runs = page["items"]
    con = console()
    if not runs:
        more = f" (there are {page['total']} in all; lower --offset)" if page["total"] else ""
        con.print(f"No runs match{more}.", markup=False)
        return
    keys = _metric_keys(runs, MAX_METRIC_COLUMNS)
    table = Table(box=None, header_style="bold")
    table.add_column("ID", justify="right")
    for col in ("PROJECT", "NAME", "STATUS", "DURATION", "PARAMS"):
        table.add_column(col, justify="right" if col == "DURATION" else "left")
    for key in keys:
        table.add_column(_escape(key), justify="right")
    table.add_column("CREATED")
    now = time.time()
    for run in runs:
        metrics = run.get("metrics") or {}
        state = status_text(run["status"])
        message = str(run.get("status_message") or "")
        if run["status"] in ("queued", "starting") and message.startswith("pending: "):
            state += f" [dim]({_escape(message)})[/]"  # why it waits: no GPU free, slots busy…
        cells = [str(run["id"]), _escape(run["project"]), _escape(run.get("name") or "-"), state,
                 fmt_duration(run_duration(run, now=now)), _escape(compact_params(run.get("params") or {}) or "-")]
        cells += [fmt_number(metrics[k]["last"]) if k in metrics else "-" for k in keys]
        cells.append(ago(run.get("created_at"), now=now))
        table.add_row(*cells)
    con.print(table)
    shown_to = page["offset"] + len(runs)
    if page["total"] > len(runs):
        note = f"Runs {page['offset'] + 1}–{shown_to} of {page['total']}."
        if shown_to < page["total"]:
            note += f" Next page: --offset {shown_to}."
        con.print(note, markup=False, style="dim")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # a spreadsheet would run it as a formula
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def _print_csv(runs: list[dict[str, Any]]) -> None:
    import csv

    from runyard.client import run_rows

    columns, rows = run_rows(runs)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(columns)
    for row in rows:
        out.writerow([_csv_cell(v) for v in row])
    sys.stdout.flush()


# --------------------------------------------------------------------- status
def _engine_state(run: dict[str, Any]) -> str:
    parts = []
    if run.get("backend"):
        parts.append(f"backend {run['backend']}")
    if run.get("engine_job_id"):
        parts.append(f"job {run['engine_job_id']}")
    return ", ".join(parts)


@app.command("status")
def status(
    run_id: int = typer.Argument(..., metavar="RUN", help="Run id."),
    json_: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """One line: the run's status, for how long, its message and where it runs.

    A failed run's line ends with its last stderr line (``--json``: the last three, as ``last_stderr``).

    Examples:

        $ runyard status 1

        $ runyard status 1 --json
    """
    with get_client() as client:
        run = client.get_run(run_id)
        # A failed run: why, in the program's own words (its last stderr lines), not just "exit code 1".
        stderr = [ln["text"] for ln in client.tail_logs(run_id, 3, stream="stderr") if ln["text"].strip()] \
            if run["status"] == "failed" else []
    if json_:
        out = {k: run.get(k) for k in ("id", "project", "experiment_id", "name", "status", "status_message", "attempt",
                                       "exit_code", "backend", "engine_job_id", "created_at", "started_at", "ended_at")}
        if run["status"] == "failed":
            out["last_stderr"] = stderr
        print_json(out)
        return
    st = run["status"]
    if st in TERMINAL:
        when = f" {ago(run.get('ended_at'))}" if run.get("ended_at") else ""
        timing = f"{when} after {fmt_duration(run_duration(run))}" if run.get("started_at") else when
    elif run.get("started_at"):
        timing = f" for {fmt_duration(run_duration(run))}"
    else:  # queued: waiting since it was created
        timing = f" for {fmt_duration(time.time() - run['created_at'])}"
    line = f"Run {run['id']}"
    if run.get("name"):
        line += f" ({_escape(run['name'])})"
    line += f": {status_text(st)}{timing}"
    if run.get("exit_code") is not None:
        line += f", exit code {run['exit_code']}"
    if run.get("attempt", 1) > 1:
        line += f", attempt {run['attempt']}"
    engine = _engine_state(run)
    if engine:
        line += " " + _escape(f"[{engine}]")
    # The message's lines, but not "exit code N" again (already said) nor the stderr line shown below.
    said = {f"exit code {run['exit_code']}"} if run.get("exit_code") is not None else set()
    last_err = stderr[-1].strip() if stderr else ""
    parts = [t.strip() for t in (run.get("status_message") or "").splitlines()]
    parts = [t for t in parts if t and t not in said and t != last_err]
    if last_err:
        parts.append(last_err)
    if parts:
        line += " — " + " — ".join(_escape(t) for t in parts)
    console().print(line, soft_wrap=True)


# ----------------------------------------------------------------------- info
@app.command("info")
def info(
    run_id: int = typer.Argument(..., metavar="RUN", help="Run id."),
    json_: bool = typer.Option(False, "--json", help="Print the run and its artifacts as JSON."),
) -> None:
    """Everything about a run: status, timing, params, metric summaries, tags, tasks, note, artifacts.

    Examples:

        $ runyard info 1

        $ runyard info 1 --json
    """
    from rich.table import Table

    with get_client() as client:
        run = client.get_run(run_id)
        metrics = run.get("metrics") or client.metric_summaries(run_id)
        artifacts = client.list_artifacts(run_id)
        note = client.get_note(run_id)
    if json_:
        print_json({**run, "metrics": metrics, "artifacts": artifacts, "note": note})
        return
    con = console()
    title = f"Run {run['id']}" + (f" ({_escape(run['name'])})" if run.get("name") else "")
    con.print(f"[bold]{title}[/]")
    overview = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    overview.add_column(style="bold")
    overview.add_column()
    rows: list[tuple[str, str]] = [
        ("project", _escape(run["project"])),
        ("experiment", str(run["experiment_id"]) if run.get("experiment_id") is not None else "-"),
        ("status", status_text(run["status"])),
    ]
    if run.get("status_message"):
        rows.append(("message", _escape(run["status_message"])))
    rows += [
        ("attempt", str(run.get("attempt", 1))),
        ("exit code", "-" if run.get("exit_code") is None else str(run["exit_code"])),
    ]
    engine = _engine_state(run)
    if engine:
        rows.append(("runs on", _escape(engine)))
    rows += [
        ("created", f"{fmt_time(run.get('created_at'))} ({ago(run.get('created_at'))})"),
        ("started", fmt_time(run.get("started_at"))),
        ("ended", fmt_time(run.get("ended_at"))),
        ("duration", fmt_duration(run_duration(run))),
    ]
    for k, v in rows:
        overview.add_row(k, v)
    con.print(overview)

    params = run.get("params") or {}
    con.print("\n[bold]Params[/]")
    if params:
        t = Table(box=None, header_style="bold", padding=(0, 2, 0, 2))
        t.add_column("NAME")
        t.add_column("VALUE")
        for k, v in params.items():
            t.add_row(_escape(k), _escape(fmt_number(v) if isinstance(v, float) else v))
        con.print(t)
    else:
        con.print("  (none)")

    con.print("\n[bold]Metrics[/]")
    if metrics:
        t = Table(box=None, header_style="bold", padding=(0, 2, 0, 2))
        for col in ("KEY", "LAST", "MIN", "MAX", "COUNT", "STEP"):
            t.add_column(col, justify="left" if col == "KEY" else "right")
        for k in sorted(metrics):
            m = metrics[k]
            t.add_row(_escape(k), fmt_number(m.get("last")), fmt_number(m.get("min")), fmt_number(m.get("max")),
                      str(m.get("count", 0)), str(m.get("step", 0)))
        con.print(t)
    else:
        con.print("  (none)")

    tags = run.get("tags") or {}
    if tags:
        con.print("\n[bold]Tags[/]")
        con.print("  " + _escape("  ".join(f"{k}={v}" for k, v in sorted(tags.items()))))

    tasks = run.get("tasks") or []
    if tasks:
        con.print("\n[bold]Tasks[/]")
        t = Table(box=None, header_style="bold", padding=(0, 2, 0, 2))
        rendezvous = any(task.get("address") for task in tasks)
        for col in ("TASK", "STATUS", "ATTEMPT", "HOST", "PID", "EXIT CODE", "DURATION") + (("ADDRESS",) if rendezvous else ()):
            t.add_column(col)
        for task in tasks:
            t.add_row(f"{task['role']}-{task['rank']}", status_text(task["status"]), str(task.get("attempt", 1)),
                      _escape(task.get("host") or "-"), str(task.get("pid") or "-"),
                      "-" if task.get("exit_code") is None else str(task["exit_code"]),
                      fmt_duration(run_duration(task)), *((_escape(task.get("address") or "-"),) if rendezvous else ()))
        con.print(t)

    if note.get("text"):
        con.print(f"\n[bold]Note[/] [dim]({_escape(note.get('updated_by') or '-')}, {_escape(note.get('updated_at') or '-')})[/]")
        for line in note["text"].splitlines():
            con.print("  " + line, markup=False, highlight=False, soft_wrap=True)

    con.print("\n[bold]Artifacts[/]")
    if artifacts:
        t = Table(box=None, header_style="bold", padding=(0, 2, 0, 2))
        t.add_column("PATH")
        t.add_column("SIZE", justify="right")
        for a in artifacts:
            t.add_row(_escape(a["path"]), fmt_size(a["size"]))
        con.print(t)
        con.print(f"  Download them with `runyard download {run['id']}`.", markup=False, style="dim")
    else:
        con.print("  (none)")


# ----------------------------------------------------------------------- note
NOTE_MAX = 100_000


@app.command("note")
def note(
    run_id: int = typer.Argument(..., metavar="RUN", help="Run id."),
    text: str | None = typer.Argument(None, metavar="[TEXT]", help="The new note (Markdown); \"\" clears it."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the note from this file ('-': standard input)."),
    append: bool = typer.Option(False, "--append", "-a", help="Add TEXT as a new paragraph after the current note."),
    json_: bool = typer.Option(False, "--json", help="Print the note as JSON."),
) -> None:
    """Set a run's note (Markdown, shown in the UI and by `runyard info`), or print it.

    With neither TEXT nor --file the note is printed. Setting it needs the editor role in the
    run's project. The note holds at most 100,000 characters.

    Examples:

        $ runyard note 1 "Best so far: **lr 0.1**, no augmentation."

        $ runyard note 1 "Loss plateaus after epoch 3." --append

        $ runyard note 1 --file -

        $ runyard note 1
    """
    import sys

    import runyard.names as names

    if text is not None and file is not None:
        raise InvalidInput("Give the note as TEXT or with --file, not both.",
                           f"e.g. `runyard note {run_id} \"text\"` or `runyard note {run_id} --file notes.md`.")
    if file is not None:
        try:
            raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        except OSError as e:
            raise InvalidInput(f"Cannot read the note from {str(file)!r}: {e.strerror or e}.",
                               "Pass an existing text file, or '-' for standard input.") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInput(f"The note file {str(file)!r} is not UTF-8 text (byte {e.start}).",
                               "Save it as UTF-8, e.g. `iconv -t UTF-8 notes.md > notes-utf8.md`.") from None
    with get_client() as client:
        if text is None:
            current = client.get_note(run_id)
        else:
            names.check_text(text, "The note")
            if append:
                old = client.get_note(run_id)["text"]
                text = f"{old.rstrip()}\n\n{text}" if old.strip() else text
            if len(text) > NOTE_MAX:
                raise InvalidInput(f"A run's note holds at most {NOTE_MAX:,} characters, but this one has {len(text):,}.",
                                   "Shorten it, or store long text as an artifact and link it from the note.")
            current = client.set_note(run_id, text)
    if json_:
        print_json(current)
        return
    con = console()
    if text is not None:
        con.print(f"Run {run_id}: note {'cleared' if not current['text'] else 'saved'} "
                  f"({len(current['text']):,} characters).", markup=False, highlight=False)
        return
    if not current["text"]:
        con.print(f"Run {run_id} has no note. Set one with `runyard note {run_id} TEXT`.", markup=False, highlight=False)
        return
    con.print(current["text"], markup=False, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------- logs
@app.command("logs")
def logs(
    run_id: int = typer.Argument(..., metavar="RUN", help="Run id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the run ends."),
    task: str | None = typer.Option(None, "--task", "-t", help="Only this task's lines, e.g. master-0 or worker-1."),
) -> None:
    """Print a run's log lines (stderr lines in red on a terminal).

    Lines of distributed runs start with their task, e.g. ``[worker-1]``; ``--task``
    shows one task's lines alone (its role and rank, as ``runyard info`` lists them).

    Examples:

        $ runyard logs 1

        $ runyard logs 1 --follow

        $ runyard logs 1 --task worker-1
    """
    con = console()
    offset = 0
    with get_client() as client:
        labels = [f"{t['role']}-{t['rank']}" for t in client.get_run(run_id).get("tasks") or []]
        if task is not None and labels and task not in labels and task not in ("main", "main-0"):
            raise InvalidInput(f"Run {run_id} has no task {task!r}; its tasks are {', '.join(sorted(set(labels)))}.",
                               f"Pass one of them, e.g. `runyard logs {run_id} --task {labels[0]}`.")
        distributed = len(set(labels)) > 1
        try:
            while True:
                page = client.read_logs(run_id, offset, task=task, wait_s=LOG_WAIT_S if follow else 0)
                for line in page["lines"]:
                    _print_line(con, line, prefix=task is None and (distributed or line["task"] not in ("main", "main-0")))
                offset = page["next_offset"]
                if page["lines"]:
                    continue  # drain everything already stored before deciding to stop
                if not follow or page["run_status"] in TERMINAL:
                    break
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    if follow:
        with get_client() as client:
            run = client.get_run(run_id)
        err_console().print(f"Run {run_id} finished: {status_text(run['status'])}."
                            if run["status"] in TERMINAL else f"Run {run_id} is {run['status']}.")


def _print_line(con: Any, line: dict[str, Any], *, prefix: bool) -> None:
    text = line["text"]
    if prefix:
        text = f"[{line['task']}] {text}"
    style = {"stderr": "red", "system": "dim"}.get(line.get("stream", "stdout"))
    con.out(text, style=style, highlight=False)


# --------------------------------------------------------------------- cancel
_EXP_RE = re.compile(r"^exp:(\d+)$")


@app.command("cancel")
def cancel(
    target: str | None = typer.Argument(None, metavar="RUN_OR_EXPERIMENT",
                                        help="A run id (12) or an experiment (exp:3)."),
    experiment: int | None = typer.Option(None, "--experiment", "-e", help="Cancel this experiment and its active runs."),
    json_: bool = typer.Option(False, "--json", help="Print the canceled run or experiment as JSON."),
) -> None:
    """Cancel a run, or an experiment with all its queued and running runs.

    Examples:

        $ runyard cancel 2

        $ runyard cancel exp:1

        $ runyard cancel --experiment 1
    """
    run_id, exp_id = _parse_target(target, experiment)
    with get_client() as client:
        if exp_id is not None:
            exp = client.cancel_experiment(exp_id)
            if json_:
                print_json(exp)
                return
            console().print(f"Canceled experiment {exp['id']} ({_escape(exp['name'])}): {status_text(exp['status'])}; "
                            f"runs: {counts_text(exp.get('counts') or {})}.")
            return
        run = client.cancel_run(run_id)  # type: ignore[arg-type]  # _parse_target gives one of the two
    if json_:
        print_json(run)
        return
    console().print(f"Canceled run {run['id']}: {status_text(run['status'])}"
                    + (f" — {_escape(run['status_message'])}" if run.get("status_message") else "") + ".")


def _parse_target(target: str | None, experiment: int | None) -> tuple[int | None, int | None]:
    if experiment is not None:
        if target is not None:
            raise typer.BadParameter(f"Give either a RUN_OR_EXPERIMENT or --experiment, not both (got {target!r} "
                                     f"and --experiment {experiment}).", param_hint="RUN_OR_EXPERIMENT")
        return None, experiment
    if target is None:
        raise typer.BadParameter("Name what to cancel: a run id (`runyard cancel 12`) or an experiment "
                                 "(`runyard cancel exp:3`).", param_hint="RUN_OR_EXPERIMENT")
    if target.isdigit():
        return int(target), None
    m = _EXP_RE.match(target)
    if m:
        return None, int(m.group(1))
    raise typer.BadParameter(f"{target!r} is neither a run id nor an experiment. Use a run id like 12, or exp:3 "
                             "for experiment 3.", param_hint="RUN_OR_EXPERIMENT")


# ------------------------------------------------------------------- download
@app.command("download")
def download(
    run_id: int = typer.Argument(..., metavar="RUN", help="Run id."),
    path: str | None = typer.Argument(None, help="An artifact, or a directory prefix; default: all artifacts."),
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write into (keeps artifact paths).")] = Path(),
) -> None:
    """Download a run's artifacts into a directory, keeping their paths.

    Examples:

        $ runyard download 1

        $ runyard download 1 model -o out
    """
    with get_client() as client:
        items = client.list_artifacts(run_id, prefix=path or "")
        if not items:
            if path:
                every = client.list_artifacts(run_id)
                names = ", ".join(a["path"] for a in every[:10]) + (", …" if len(every) > 10 else "")
                raise NotFound(
                    f"Run {run_id} has no artifact {path!r} and none under {path.rstrip('/')}/."
                    + (f" Its artifacts: {names}." if every else " It has no artifacts."),
                    f"See them with `runyard info {run_id}`.",
                )
            console().print(f"Run {run_id} has no artifacts.", markup=False)
            return
        root = output.resolve()
        targets = [(a, _target(root, a["path"])) for a in items]
        total = sum(a["size"] for a in items)
        _fetch(client, run_id, targets, total)
    console().print(f"Downloaded {len(items)} file{'s' if len(items) != 1 else ''} ({fmt_size(total)}) to {output}.",
                    markup=False)


def _target(root: Path, artifact_path: str) -> Path:
    dest = (root / artifact_path).resolve()
    if root != dest and root not in dest.parents:
        # The server cleans paths on upload; refuse anything that would still escape the directory.
        raise InvalidInput(f"Artifact path {artifact_path!r} points outside {root}.",
                           "Download it by hand with `curl`, or report the run's artifacts as corrupt.")
    return dest


def _fetch(client: Client, run_id: int, targets: list[tuple[dict[str, Any], Path]], total: int) -> None:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    err = err_console()
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        bar = progress.add_task(f"run {run_id}", total=total)
        for artifact, dest in targets:
            progress.update(bar, description=artifact["path"])
            try:
                client.download_artifact(run_id, artifact["path"], dest, progress=lambda n: progress.advance(bar, n))
            except OSError as e:
                if isinstance(e, ConnectionError):
                    raise
                raise InvalidInput(f"Cannot write {dest}: {e.strerror or e}.",
                                   "Choose another directory with -o DIR, or free space and retry.") from e
