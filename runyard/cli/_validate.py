"""``runyard validate DIR``: check runyard.yml, its params and the snapshot, submitting nothing; and the
plan ``runyard run --dry-run`` prints (the runs it would create).

Both work offline: no server is asked. What a server alone can tell (whether its backend
is configured, whether the runs fit its nodes) is checked when the experiment is submitted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from runyard.cli._app import app, print_error
from runyard.cli._output import console, err_console, print_json
from runyard.errors import RunyardError

__all__ = ["plan_runs", "print_plan", "print_snapshot_warnings", "snapshot_report"]

# How many of a search's runs a plan lists (the count is always the whole).
PLAN_LIMIT = 1000
# Sizing an ignored directory stops after this many entries (its size is then "at least").
_SIZE_WALK_MAX = 20_000


def plan_runs(config: dict[str, Any], limit: int = PLAN_LIMIT) -> dict[str, Any]:
    """The runs an experiment of ``config`` (already validated) would start.

    Returns:
        ``{"algorithm", "count", "runs": [params…], "learns"}``: ``count`` is every run the
        search makes (grid: the product cut to max_runs; random, tpe, cmaes: max_runs);
        ``runs`` lists the first ``limit`` of them (searches that learn from results list
        only their first ``parallel`` proposals, made before any result).
    """
    from runyard.search import make_search
    from runyard.spec import validate_config

    spec = validate_config(config)
    s = spec.search
    search = make_search(s.algorithm, spec.space(), s.max_runs, s.seed if s.seed is not None else 0, s.mode)
    learns = bool(getattr(search, "learns", True))
    count = int(getattr(search, "n_runs", None) or s.max_runs or 0)
    first = min(limit, count, s.parallel) if learns else min(limit, count)
    return {"algorithm": s.algorithm, "count": count, "learns": learns, "runs": search.propose([], first)}


def print_plan(plan: dict[str, Any]) -> None:
    """A table of the params of each run, and the count."""
    from rich.table import Table

    runs = plan["runs"]
    names: list[str] = []
    for params in runs:
        names += [k for k in params if k not in names]
    table = Table("#", *names, box=None, pad_edge=False)
    for i, params in enumerate(runs, 1):
        table.add_row(str(i), *(_fmt(params.get(n)) for n in names))
    out = console()
    if names:
        out.print(table)
    more = plan["count"] - len(runs)
    tail = ""
    if plan["learns"] and more > 0:
        tail = f" (the first {len(runs)} shown; {plan['algorithm']} proposes the rest from their results)"
    elif more > 0:
        tail = f" (the first {len(runs)} shown)"
    out.print(f"{plan['count']} run{'s' if plan['count'] != 1 else ''} ({plan['algorithm']} search){tail}.", markup=False)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _size_of(path: Path) -> tuple[int, bool]:
    """Bytes under ``path`` (not following links), and whether the count is complete."""
    try:
        st = path.lstat()
    except OSError:
        return 0, True
    if not path.is_dir() or path.is_symlink():
        return st.st_size, True
    total, seen = 0, 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames:
            seen += 1
            if seen > _SIZE_WALK_MAX:
                return total, False
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return total, True


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def snapshot_report(directory: Path, ignore: list[str]) -> dict[str, Any]:
    """What a snapshot of ``directory`` would hold and leave out, uploading nothing.

    Raises:
        InvalidInput: what ``runyard.snapshot.scan`` raises (over a limit, unreadable…).
    """
    from runyard.snapshot import scan

    result = scan(directory, ignore)
    ignored = []
    for rel in result.ignored:
        size, complete = _size_of(result.root / rel.rstrip("/"))
        ignored.append({"path": rel, "bytes": size, "complete": complete})
    return {"id": result.id, "files": result.n_files, "bytes": result.size, "skipped": list(result.warnings),
            "ignored": ignored}


def print_snapshot_warnings(warnings: Any) -> None:
    """The entries a snapshot left out because it cannot store them, on stderr."""
    warnings = list(warnings)
    if not warnings:
        return
    err = err_console()
    err.print(f"Warning: {len(warnings)} entr{'ies' if len(warnings) != 1 else 'y'} left out of the code snapshot:",
              markup=False)
    for w in warnings:
        err.print(f"  {w}", markup=False)


@app.command("validate")
def validate(
    directory: Path = typer.Argument(Path("."), help="The project directory holding runyard.yml."),
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Fix a param: KEY=VALUE (repeatable).")] = None,
    json_: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """Check DIR's runyard.yml, its params and its code snapshot; start nothing, upload nothing.

    Exits 1 when something is wrong: the spec, a -p override, the search space, or the
    snapshot (over its limits, a file name it cannot store). Prints how many runs the
    search makes and what the snapshot leaves out (ignored entries with their sizes, and
    entries it cannot store: broken links, symlink loops, FIFOs, devices).

    Example:

        $ runyard validate examples/digits-sweep -p lr=0.01
    """
    from runyard.cli._experiments import _parse_overrides, _with_overrides
    from runyard.spec import load_spec

    report: dict[str, Any] = {"ok": True, "errors": [], "spec": None, "runs": None, "snapshot": None}

    def failed(section: str, e: RunyardError) -> None:
        report["ok"] = False
        report["errors"].append({"section": section, "message": e.message, "hint": e.hint})

    spec = None
    try:
        spec = load_spec(directory)
        report["spec"] = {"project": spec.project, "name": spec.name or spec.project, "backend": spec.backend,
                          "command": spec.command}
    except RunyardError as e:
        failed("runyard.yml", e)
    if spec is not None:
        try:
            config = _with_overrides(spec.to_config(), _parse_overrides(param))
            report["runs"] = plan_runs(config)
        except RunyardError as e:
            failed("params", e)
    try:
        report["snapshot"] = snapshot_report(directory, spec.ignore if spec is not None else [])
    except RunyardError as e:
        failed("snapshot", e)
    if json_:
        print_json(report)
        raise typer.Exit(0 if report["ok"] else 1)
    out = console()
    if report["spec"]:
        s = report["spec"]
        backend = ", ".join(s["backend"]) if isinstance(s["backend"], list) else s["backend"]
        out.print(f"runyard.yml: ok (project {s['project']}, experiment {s['name']}, backend {backend}).", markup=False)
    if report["runs"]:
        print_plan(report["runs"])
    snap = report["snapshot"]
    if snap:
        out.print(f"snapshot: {snap['files']} files, {_human(snap['bytes'])}.", markup=False)
        if snap["ignored"]:
            out.print("left out by the ignore rules:", markup=False)
            for entry in sorted(snap["ignored"], key=lambda e: -e["bytes"]):
                size = _human(entry["bytes"]) if entry["complete"] else f"over {_human(entry['bytes'])}"
                out.print(f"  {entry['path']}  {size}", markup=False)
        if snap["skipped"]:
            out.print("left out, cannot be stored:", markup=False)
            for w in snap["skipped"]:
                out.print(f"  {w}", markup=False)
    for err in report["errors"]:
        print_error(f"{err['section']}: {err['message']}", err["hint"])
    if not report["ok"]:
        raise typer.Exit(1)
    out.print("Valid: nothing was submitted.", markup=False)
