"""Experiment commands: ``runyard run``, ``follow``, ``init``, ``rerun``, ``diff``.

``run`` reads and validates ``runyard.yml``, snapshots the directory (uploading only
blobs the server lacks), submits the experiment and, in a terminal, follows it
live until it ends. Ctrl-C detaches without cancelling anything.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import console, err_console, fmt_duration, fmt_number, print_json, run_duration, status_text
from runyard.errors import InvalidInput
from runyard.records.status import TERMINAL

__all__: list[str] = []



def _parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise InvalidInput(f"Cannot read the param override {pair!r}: it must be KEY=VALUE.", "For example: -p lr=0.01")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _check_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Each override fits its declared param: a number inside a range, one of a choice's values."""
    from runyard.spec import override_problem, validate_config

    declared = validate_config(config).params
    for key, value in overrides.items():
        problem = override_problem(key, declared[key], value) if key in declared else None
        if problem is not None:
            raise InvalidInput(f"-p {key}={_shown(value)}: {problem}.",
                               "Pick a value the param's declaration in runyard.yml allows, or change the declaration.")


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _with_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Fix overridden params to one value; a search over the rest continues."""
    from runyard.spec import validate_config

    if not overrides:
        return config
    _check_overrides(config, overrides)
    config = dict(config)
    params = dict(config.get("params") or {})
    for key, value in overrides.items():
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise InvalidInput(f"-p {key}=…: runyard.yml declares no param {key!r} (params: {known}).",
                               "Override a declared param, or add it under params: in runyard.yml.")
        params[key] = value
    config["params"] = params
    search = dict(config.get("search") or {})
    if all(not isinstance(v, (list, dict)) for v in params.values()):
        search.update({"algorithm": "grid", "max_runs": 1})
    elif search.get("algorithm") == "grid":
        search.pop("max_runs", None)
    config["search"] = search
    return validate_config(config).to_config()


@app.command("init")
def init(
    directory: Path = typer.Argument(Path("."), help="Where to write runyard.yml."),
    project: str | None = typer.Option(None, "--project", "-p", help="Project name (default: the directory's name)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing runyard.yml."),
) -> None:
    """Write a commented starter runyard.yml.

    Example:

        $ runyard init --project digits
    """
    import re

    from runyard.spec import starter_file

    target = directory / "runyard.yml"
    blocker = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if blocker is not None and blocker != directory and not blocker.is_dir():
        raise InvalidInput(f"{blocker} is a file, so the directory {directory} cannot be created in it.",
                           "Pass the directory that holds your code; runyard init writes DIRECTORY/runyard.yml.")
    if directory.exists() and not directory.is_dir():
        fix = (f"Run `runyard init {directory.parent}` to write {target.name} next to it, or edit {directory} itself."
               if directory.name == "runyard.yml" else
               "Pass the directory that holds your code; runyard init writes DIRECTORY/runyard.yml.")
        raise InvalidInput(f"{directory} is a file, not a directory.", fix)
    if target.exists() and not force:
        raise InvalidInput(f"{target} already exists.", "Edit it, or pass --force to replace it with the starter file.")
    name = project or re.sub(r"[^a-z0-9_-]+", "-", directory.resolve().name.lower()).strip("-_") or "my-project"
    text = starter_file(name)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"Cannot write {target}: {e.strerror or e}.",
                           "Pass a directory you may write to (it is created if missing, with its parents).") from e
    console().print(f"Wrote {target}. Edit it, then start the experiment with `runyard run {directory}`.", markup=False)


@app.command("run")
def run(
    directory: Path = typer.Argument(Path("."), help="The project directory holding runyard.yml."),
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Fix a param: KEY=VALUE (repeatable).")] = None,
    backend: str | None = typer.Option(
        None, "--backend", "-b",
        help="Run on this backend instead of runyard.yml's (several, comma-separated: each run goes to the first with room).",
    ),
    follow_: bool | None = typer.Option(None, "--follow/--detach", help="Follow live (default in a terminal) or return at once."),
    wait: bool = typer.Option(
        False, "--wait", help="Block silently until the experiment ends; exit 0 if it succeeded, 1 if it failed, 2 if canceled."),
    json_: bool = typer.Option(False, "--json", help="Print the experiment as JSON (implies --detach unless --wait)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the runs it would create (params per run, count) "
                                 "and what the snapshot leaves out; submit nothing, upload nothing."),
) -> None:
    """Snapshot DIR's code and start the experiment its runyard.yml describes.

    Entries the snapshot cannot store (broken links, symlink loops, FIFOs, devices) are
    listed on stderr (and under snapshot_warnings with --json).

    With --follow or --wait, the exit code says how the experiment ended: 0 succeeded,
    1 failed, 2 canceled, 130 interrupted (Ctrl-C; the experiment goes on).

    Examples:

        $ runyard run examples/digits-sweep

        $ runyard run . -p lr=0.01 --backend slurm-dev --detach

        $ runyard run . --dry-run
    """
    from runyard.cli._validate import plan_runs, print_plan, print_snapshot_warnings, snapshot_report
    from runyard.snapshot import create_snapshot
    from runyard.spec import load_spec

    spec = load_spec(directory)
    config = _with_overrides(spec.to_config(), _parse_overrides(param))
    if backend:
        listed = backend.split(",")
        config = {**config, "backend": listed[0] if len(listed) == 1 else listed}
    if spec.notebook is not None:
        from runyard.notebook import check_submission

        backends = config.get("backend")
        check_submission(directory, spec.notebook, list(spec.params),
                         local="local" in (backends if isinstance(backends, list) else [backends]))
    if dry_run:
        plan = plan_runs(config)
        snap_report = snapshot_report(directory, spec.ignore)
        if json_:
            print_json({"dry_run": True, "project": spec.project, "name": spec.name or spec.project,
                        "backend": config.get("backend"), **plan, "snapshot": snap_report})
            return
        print_plan(plan)
        console().print(f"snapshot: {snap_report['files']} files; nothing submitted (--dry-run).", markup=False)
        print_snapshot_warnings(snap_report["skipped"])
        return
    quiet = json_ or wait
    with get_client() as client:
        snap = _snapshot(client, directory, spec.ignore, quiet=quiet, create=create_snapshot)
        print_snapshot_warnings(snap.warnings)
        exp = client.create_experiment(spec.project, spec.name or spec.project, config, snapshot_id=snap.id, backend=backend)
        exp["snapshot_warnings"] = list(snap.warnings)
        if not quiet:
            console().print(
                f"Experiment {exp['id']} ({spec.project}/{exp['name']}) submitted: snapshot {snap.id[:12]} "
                f"({snap.n_files} files, {snap.n_uploaded} uploaded), backend {exp['backend']}.", markup=False)
        if wait:
            final = _wait(client, exp["id"])
            if json_:
                print_json(final)
            raise typer.Exit(exit_code_of(final["status"]))
        if json_:
            print_json(exp)
            return
        if follow_ is None:
            follow_ = sys.stdout.isatty()
        if follow_:
            _follow(client, exp["id"])
        else:
            console().print(f"Follow it with `runyard follow {exp['id']}`.", markup=False)


def _snapshot(client, directory: Path, ignore: list[str], *, quiet: bool, create):  # noqa: ANN001, ANN202
    if quiet or not sys.stderr.isatty():
        return create(client, directory, ignore)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(TextColumn("uploading code"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=err_console(), transient=True) as bar:
        task = bar.add_task("upload", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return create(client, directory, ignore, progress)


def _wait(client, experiment_id: int) -> dict[str, Any]:  # noqa: ANN001
    while True:
        exp = client.get_experiment(experiment_id)
        if exp["status"] != "running":
            return exp
        time.sleep(1.0)


@app.command("follow")
def follow(experiment: int = typer.Argument(..., help="Experiment id.")) -> None:
    """Follow an experiment live: its runs, the budget, and the best run at the end.

    Ctrl-C stops following; the experiment goes on. Without a terminal, one line is
    printed per run status change. Exit code: 0 the experiment succeeded, 1 it failed,
    2 it was canceled, 130 interrupted (Ctrl-C).

    Example:

        $ runyard follow 3
    """
    with get_client() as client:
        _follow(client, experiment)


# Exit codes of `runyard run --follow`, `--wait` and `runyard follow`: how the experiment ended.
EXIT_SUCCEEDED, EXIT_FAILED, EXIT_CANCELED, EXIT_INTERRUPTED = 0, 1, 2, 130


def exit_code_of(status: str) -> int:
    """The exit code for an experiment that ended ``status``: 0 succeeded, 2 canceled, 1 anything else."""
    return {"succeeded": EXIT_SUCCEEDED, "canceled": EXIT_CANCELED}.get(status, EXIT_FAILED)


def _follow(client, experiment_id: int) -> None:  # noqa: ANN001
    """Follow until the experiment ends, then exit with ``exit_code_of`` its status.

    On a terminal: a live table. Otherwise (a pipe, a CI log): one plain line per run whose
    status changes, as it happens. Either way the final table is read again once the
    experiment has ended, so it shows every run's final status and metrics.
    """
    exp = client.get_experiment(experiment_id)
    search = exp["config"].get("search") or {}
    metric, mode, budget = search.get("metric"), search.get("mode", "min"), search.get("max_runs") or 0
    con = console()
    try:
        if con.is_terminal:
            _follow_live(client, experiment_id, metric, mode, budget)
        else:
            _follow_lines(client, experiment_id)
        # The experiment ended: read it and its runs again for the final table (the last frame may predate the end).
        exp = client.get_experiment(experiment_id)
        runs = sorted(client.list_runs(experiment_id=experiment_id, limit=10000)["items"], key=lambda r: r["number"])
    except KeyboardInterrupt:
        con.print(f"\nStopped following; the experiment goes on. Resume with `runyard follow {experiment_id}`.", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    con.print(_runs_table(runs, metric, mode))
    _summary(exp, runs, metric, mode)
    raise typer.Exit(exit_code_of(exp["status"]))


def _follow_live(client, experiment_id: int, metric: str | None, mode: str, budget: int) -> None:  # noqa: ANN001
    from rich.console import Group
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    task = bar.add_task("", total=budget or None)
    warned: set[str] = set()
    with Live(console=console(), refresh_per_second=4, transient=True) as live:
        while True:
            exp = client.get_experiment(experiment_id)
            runs = client.list_runs(experiment_id=experiment_id, limit=10000)["items"]
            runs.sort(key=lambda r: r["number"])
            done = sum(1 for r in runs if r["status"] in TERMINAL)
            bar.update(task, completed=done, total=max(budget, len(runs)) or None,
                       description=" ".join(f"{k} {v}" for k, v in sorted(exp["counts"].items())))
            live.update(Group(_runs_table(runs, metric, mode), bar))
            for w in _new_warnings(exp, warned):  # above the live table, as they come (a metric never logged, say)
                live.console.print(f"Warning: {w}.", markup=False, style="bold yellow")
            if exp["status"] != "running":
                break
            time.sleep(0.5)
    # transient: the last frame goes; the caller prints the final table from a fresh read.


def _follow_lines(client, experiment_id: int) -> None:  # noqa: ANN001
    """Print ``run 12 (sweep-3): running`` once per status change, flushed at once (no terminal needed)."""
    seen: dict[int, str] = {}
    warned: set[str] = set()
    out = sys.stdout
    while True:
        exp = client.get_experiment(experiment_id)
        runs = client.list_runs(experiment_id=experiment_id, limit=10000)["items"]
        runs.sort(key=lambda r: r["number"])
        for r in runs:
            if seen.get(r["id"]) != r["status"]:
                seen[r["id"]] = r["status"]
                line = f"run {r['id']} ({r.get('name') or r['number']}): {r['status']}"
                if r["status"] == "failed" and r.get("status_message"):
                    line += " - " + " - ".join(t.strip() for t in r["status_message"].splitlines() if t.strip())
                out.write(line + "\n")
        out.flush()
        for w in _new_warnings(exp, warned):  # while it runs: a metric never logged is said at once
            err_console().print(f"Warning: {w}.", markup=False)
        if exp["status"] != "running":
            return
        time.sleep(0.5)


def _new_warnings(exp: dict[str, Any], warned: set[str]) -> list[str]:
    """The experiment's warnings not printed yet while following (noted in ``warned``)."""
    new = [w for w in exp.get("warnings") or () if w not in warned]
    warned.update(new)
    return new


def _best(runs: list[dict[str, Any]], metric: str | None, mode: str) -> dict[str, Any] | None:
    if not metric:
        return None
    scored = [r for r in runs if r["status"] == "succeeded" and metric in r["metrics"] and r["metrics"][metric]["last"] is not None]
    if not scored:
        return None
    return (max if mode == "max" else min)(scored, key=lambda r: r["metrics"][metric]["last"])


def _runs_table(runs: list[dict[str, Any]], metric: str | None, mode: str) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("RUN", "STATUS", "PARAMS", "DURATION"):
        table.add_column(col)
    if metric:
        table.add_column(f"{metric} (last)", justify="right")
        table.add_column(f"{metric} ({mode})", justify="right")
    now = time.time()
    for r in runs[-40:]:
        params = " ".join(f"{k}={fmt_number(v) if isinstance(v, float) else v}" for k, v in r["params"].items())
        row = [str(r["id"]), status_text(r["status"]), params[:60], fmt_duration(run_duration(r, now=now))]
        if metric:
            m = r["metrics"].get(metric)
            row += [fmt_number(m["last"]) if m else "-", fmt_number(m["max" if mode == "max" else "min"]) if m else "-"]
        table.add_row(*row)
    return table


def _summary(exp: dict[str, Any], runs: list[dict[str, Any]], metric: str | None, mode: str) -> None:
    con = console()
    counts = ", ".join(f"{v} {k}" for k, v in sorted(exp["counts"].items()))
    why = f" ({exp['message']})" if exp.get("message") else ""
    con.print(f"Experiment {exp['id']} {exp['status']}{why}: {counts}.", markup=False)
    for w in exp.get("warnings") or ():
        err_console().print(f"Warning: {w}.", markup=False)
    best = _best(runs, metric, mode)
    if best is not None:
        con.print(f"Best run: {best['id']} with {metric} = {fmt_number(best['metrics'][metric]['last'])} "
                  f"({', '.join(f'{k}={v}' for k, v in best['params'].items())}). See it with `runyard info {best['id']}`.",
                  markup=False)


@app.command("rerun")
def rerun(
    run_id: int = typer.Argument(..., help="The run to repeat."),
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Change a param: KEY=VALUE (repeatable).")] = None,
    follow_: bool | None = typer.Option(None, "--follow/--detach", help="Follow live (default in a terminal)."),
    json_: bool = typer.Option(False, "--json", help="Print the new experiment as JSON."),
) -> None:
    """Start a new run with the same code snapshot, config and params (``-p`` changes some).

    Example:

        $ runyard rerun 42 -p lr=0.05
    """
    with get_client() as client:
        old = client.get_run(run_id)
        if old.get("experiment_id") is None:
            raise InvalidInput(f"Run {run_id} was started by hand (runyard.init), not by `runyard run`; there is no "
                               "config or snapshot to repeat.", "Rerun your script instead.")
        exp = client.get_experiment(old["experiment_id"])
        config = dict(exp["config"])
        overrides = _parse_overrides(param)
        _check_overrides(config, overrides)
        params = {**old["params"], **overrides}
        unknown = set(params) - set(config.get("params") or {})
        if unknown:
            raise InvalidInput(f"-p {sorted(unknown)[0]}=…: the experiment declares no such param.",
                               f"Params: {', '.join(sorted(config.get('params') or {}))}.")
        config["params"] = params
        config["search"] = {**(config.get("search") or {}), "algorithm": "grid", "max_runs": 1, "parallel": 1}
        config.pop("early_stopping", None)
        pinned = _pin_image(config, old.get("tags") or {})
        from runyard.spec import validate_config

        config = validate_config(config).to_config()
        new = client.create_experiment(exp["project"], f"rerun-of-{run_id}", config, snapshot_id=exp["snapshot_id"],
                                       backend=exp["backend"])
        if json_:
            print_json(new)
            return
        console().print(f"Experiment {new['id']} reruns run {run_id} (snapshot {str(exp['snapshot_id'])[:12]}"
                        + (f", image {pinned}" if pinned else "") + ").", markup=False)
        if follow_ is None:
            follow_ = sys.stdout.isatty()
        if follow_:
            _follow(client, new["id"])


def _pin_image(config: dict, tags: dict) -> str:
    """Make a rerun use the very image its run ran in: ``image:`` becomes the recorded image id (the
    ``build:`` that made it is then not needed). Returns the pinned id, "" when nothing was pinned
    (no image, per-role images, or an image file, whose path is its identity)."""
    image_id = str(tags.get("runyard.image.id") or "")
    if not image_id.startswith("sha256:") or (config.get("distributed") or {}).get("roles", {}) and any(
            isinstance(r, dict) and r.get("image") for r in config["distributed"]["roles"].values()):
        return ""
    config["image"] = image_id
    config.pop("build", None)
    return image_id


@app.command("diff")
def diff(
    run_a: int = typer.Argument(..., help="First run."),
    run_b: int = typer.Argument(..., help="Second run."),
    json_: bool = typer.Option(False, "--json", help="Print the differences as JSON."),
) -> None:
    """Show how two runs differ: params, config and code.

    Example:

        $ runyard diff 41 42
    """
    from runyard.snapshot import diff_snapshots, file_diff

    with get_client() as client:
        a, b = client.get_run(run_a), client.get_run(run_b)
        params = {k: [a["params"].get(k), b["params"].get(k)] for k in sorted(set(a["params"]) | set(b["params"]))
                  if a["params"].get(k) != b["params"].get(k)}
        cfg_a = client.get_experiment(a["experiment_id"])["config"] if a.get("experiment_id") else {}
        cfg_b = client.get_experiment(b["experiment_id"])["config"] if b.get("experiment_id") else {}
        config = {k: [cfg_a.get(k), cfg_b.get(k)] for k in sorted(set(cfg_a) | set(cfg_b))
                  if k != "params" and cfg_a.get(k) != cfg_b.get(k)}
        tags_a, tags_b = a.get("tags") or {}, b.get("tags") or {}
        image = {k: [tags_a.get(k), tags_b.get(k)] for k in sorted(set(tags_a) | set(tags_b))
                 if k.startswith("runyard.image") and tags_a.get(k) != tags_b.get(k)}
        code: list[dict[str, str]] = []
        texts: dict[str, str] = {}
        sa, sb = a.get("snapshot_id"), b.get("snapshot_id")
        if sa and sb and sa != sb:
            for change in diff_snapshots(client, sa, sb):
                code.append({"path": change.path, "change": change.change})
                if change.change == "modified":
                    texts[change.path] = file_diff(client, sa, sb, change.path)
    if json_:
        print_json({"params": params, "config": config, "image": image, "code": code, "snapshots": [sa, sb]})
        return
    con = console()
    if not (params or config or code or image):
        con.print(f"Runs {run_a} and {run_b} have the same params, config, image and code.", markup=False)
        return
    for title, items in (("params", params), ("config", config), ("image", image)):
        if items:
            con.print(f"[bold]{title}[/]")
            for k, (va, vb) in items.items():
                con.print(f"  {k}: {va!r} → {vb!r}", markup=False)
    if code:
        con.print(f"[bold]code[/] (snapshot {sa[:12]} → {sb[:12]})")
        for c in code:
            con.print(f"  {c['change']:9} {c['path']}", markup=False)
        for text in texts.values():
            con.print(text, markup=False, highlight=False)
