"""``runyard datasets``: push a directory (or files in place) as a new version when it changed; ls, show, diff, pull,
delete."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import ago, console, err_console, fmt_size, print_json, safe
from runyard.errors import InvalidInput
from runyard.names import DatasetRef, parse_dataset_ref

__all__: list[str] = []

datasets_app = typer.Typer(name="datasets", no_args_is_help=True,
                           help="Versioned datasets: push a directory or files in place, list, show, diff, pull, delete.")
app.add_typer(datasets_app)

_PROJECT_HELP = "The project (default: RUNYARD_PROJECT, or PROJECT/ in the dataset's reference)."


def _project(ref: DatasetRef, project: str | None) -> str:
    chosen = ref.project or project or os.environ.get("RUNYARD_PROJECT")
    if ref.project and project and ref.project != project:
        raise InvalidInput(f"The reference names project {ref.project!r} but --project says {project!r}.",
                           "Give the project once.")
    if not chosen:
        raise InvalidInput(f"Which project is dataset {ref.name!r} in? None was given.",
                           f"Pass --project P, set RUNYARD_PROJECT, or write P/{ref.name}.")
    return chosen


def _ref(text: str, project: str | None) -> tuple[str, DatasetRef]:
    ref = parse_dataset_ref(text)
    return _project(ref, project), ref


def _tags(items: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise InvalidInput(f"--tag takes KEY=VALUE, but got {item!r}.", "Write e.g. --tag source=scanner.")
        key, value = item.split("=", 1)
        tags[key] = value
    return tags


@contextmanager
def _progress(quiet: bool) -> Iterator[Any]:
    """A Rich progress bar per phase (hashing, uploading) on a terminal; None otherwise."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=err_console(), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(safe(phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield progress


def _changes_lines(changes: dict[str, Any], limit: int = 20) -> list[str]:
    lines = []
    for key, sign in (("added", "+"), ("removed", "-")):
        for item in changes[key][:limit]:
            lines.append(f"  {sign} {item[0]}  ({fmt_size(int(item[1]))})")
        if len(changes[key]) > limit:
            lines.append(f"  {sign} ... {len(changes[key]) - limit} more")
    for item in changes["changed"][:limit]:
        lines.append(f"  ~ {item[0]}  ({fmt_size(int(item[1]))} -> {fmt_size(int(item[2]))})")
    if len(changes["changed"]) > limit:
        lines.append(f"  ~ ... {len(changes['changed']) - limit} more")
    return lines


def _summary(changes: dict[str, Any]) -> str:
    return (f"{len(changes['added'])} added, {len(changes['removed'])} removed, {len(changes['changed'])} changed, "
            f"{changes['unchanged']} unchanged")


@datasets_app.command("push")
def datasets_push(
    directory: Path | None = typer.Argument(None, help="The directory whose files are stored (all of them: no ignore "
                                            "rules or size limits apply).", show_default=False),
    name: str = typer.Option(..., "--name", "-n", help="The dataset: NAME or PROJECT/NAME."),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    message: str = typer.Option("", "--message", "-m", help="What this version is."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="A tag KEY=VALUE of the version; repeatable."),
    reference: list[str] = typer.Option([], "--reference", "-r",
                                        help="Record files in place instead of uploading them: a path (file or "
                                        "directory, e.g. on a shared file system) or an s3://bucket/prefix; repeatable."),
    description: str | None = typer.Option(None, "--description", "-d", help="Set the dataset's description."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what changed since the latest version."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Push a new version of a dataset when its content changed (only the blobs the server lacks are uploaded).

    Files are hashed in parallel; files unchanged since the last push of the same directory (size and mtime) are
    not read again, nor referenced files unchanged since the latest version.

    Examples:

        $ runyard datasets push model --name weights -p demo --message "first cut" --tag source=run1

        $ runyard datasets push --reference out --name weights -p demo
    """
    if "/" in name and ":" not in name and "@" not in name:
        ref = parse_dataset_ref(name)
    else:
        ref = DatasetRef(None, name, None)
    from runyard.names import check_dataset_name

    check_dataset_name(ref.name)
    proj = _project(ref, project)
    from runyard.snapshot import push_dataset

    tags = _tags(tag)
    with get_client() as client, _progress(quiet or json_) as progress:
        result = push_dataset(client, proj, ref.name, directory, reference, message=message, tags=tags,
                              description=description, progress=progress, dry_run=dry_run)
    if json_:
        print_json({"created": result.created, "dry_run": result.dry_run, "unchanged": result.unchanged,
                    "version": _brief(result.version) if result.version else None, "changes": result.changes,
                    "n_uploaded": result.n_uploaded, "bytes_uploaded": result.bytes_uploaded,
                    "n_files": result.local.n_files, "size": result.local.size, "n_hashed": result.local.n_hashed})
        return
    out = console()
    for w in result.local.warnings:
        err_console().print(f"warning: {w}", markup=False)
    if result.unchanged and result.version is not None:
        out.print(f"unchanged: version {result.version['version']} of {proj}/{ref.name} "
                  f"({result.local.n_files} files, {fmt_size(result.local.size)}); nothing uploaded.", markup=False)
        return
    if result.dry_run:
        head = (f"{proj}/{ref.name} has no versions yet; a push would make version 1"
                if result.version is None else
                f"changed since version {result.version['version']} of {proj}/{ref.name}")
        out.print(f"{head}: {_summary(result.changes)}.", markup=False)
        for line in _changes_lines(result.changes):
            out.print(line, markup=False)
        return
    assert result.version is not None
    out.print(f"Pushed {proj}/{ref.name}:{result.version['version']}: {result.local.n_files} files, "
              f"{fmt_size(result.local.size)}; uploaded {result.n_uploaded} blob(s), {fmt_size(result.bytes_uploaded)} "
              f"({_summary(result.changes)}).", markup=False)


@datasets_app.command("status")
def datasets_status(
    ref: str = typer.Argument(..., help="The dataset: NAME or PROJECT/NAME (compared with its latest version)."),
    directory: Path | None = typer.Argument(None, help="The directory to compare (default: only references).",
                                            show_default=False),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    reference: list[str] = typer.Option([], "--reference", "-r", help="Referenced paths or s3:// URLs to compare; "
                                        "default: those of the latest version."),
    json_: bool = typer.Option(False, "--json", help="Print the changes as JSON."),
) -> None:
    """Report what changed in a directory or in referenced files since the dataset's latest version (uploads nothing).

    Without a directory or --reference, the latest version's references are checked in place: a file whose size or
    mtime changed is hashed again.

    Examples:

        $ runyard datasets status weights -p demo

        $ runyard datasets status weights model -p demo --json
    """
    proj, r = _ref(ref, project)
    from runyard.snapshot import push_dataset
    from runyard.snapshot._datasets import find_latest_version

    with get_client() as client:
        refs = list(reference)
        if directory is None and not refs:
            latest = find_latest_version(client, proj, r.name)
            if latest is None:
                raise InvalidInput(f"Dataset {proj}/{r.name} has no versions to compare with.",
                                   f"Push one: runyard datasets push DIR --name {r.name} -p {proj}")
            refs = _reference_roots(latest["refs"])
            if not refs:
                raise InvalidInput(f"Version {latest['version']} of {proj}/{r.name} references no files in place.",
                                   f"Give the directory to compare: runyard datasets status {r.name} DIR -p {proj}")
        with _progress(json_) as progress:
            result = push_dataset(client, proj, r.name, directory, refs, progress=progress, dry_run=True)
    changed = not result.unchanged
    if json_:
        print_json({"changed": changed, "version": result.version["version"] if result.version else None,
                    "changes": result.changes})
        return
    if not changed and result.version is not None:
        console().print(f"unchanged: version {result.version['version']} of {proj}/{r.name}.", markup=False)
        return
    base = f"version {result.version['version']}" if result.version else "nothing (no versions yet)"
    console().print(f"changed since {base}: {_summary(result.changes)}.", markup=False)
    for line in _changes_lines(result.changes):
        console().print(line, markup=False)


def _reference_roots(refs: list[list[Any]]) -> list[str]:
    """The references to re-check: each referenced file itself (so files added beside them are not picked up)."""
    return [str(r[0]) for r in refs]


@datasets_app.command("ls")
def datasets_ls(
    project: str | None = typer.Option(None, "--project", "-p", help="The project (default: RUNYARD_PROJECT)."),
    q: str | None = typer.Option(None, "--search", "-s", help="Only names containing this."),
    json_: bool = typer.Option(False, "--json", help="Print the datasets as a JSON list."),
) -> None:
    """List a project's datasets: latest version, files and size of that version, last change.

    Examples:

        $ runyard datasets ls -p demo

        $ runyard datasets ls -p demo --json
    """
    proj = project or os.environ.get("RUNYARD_PROJECT")
    if not proj:
        raise InvalidInput("Which project? None was given.", "Pass --project P or set RUNYARD_PROJECT.")
    from rich.markup import escape
    from rich.table import Table

    with get_client() as client:
        items = client.list_datasets(proj, q)
    if json_:
        print_json(items)
        return
    if not items:
        console().print(f"No datasets in {proj} yet. Push one with `runyard datasets push DIR --name NAME -p {proj}`.",
                        markup=False)
        return
    table = Table(box=None, header_style="bold")
    for col, justify in (("NAME", "left"), ("LATEST", "right"), ("VERSIONS", "right"), ("FILES", "right"),
                         ("SIZE", "right"), ("UPDATED", "left"), ("DESCRIPTION", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for d in items:
        table.add_row(escape(safe(d["name"])), str(d["latest_version"] or "-"), str(d["n_versions"]), str(d["n_files"]),
                      fmt_size(d["size"]), ago(d["updated_at"]), escape(safe(d["description"] or "")))
    console().print(table)


def _brief(v: dict[str, Any]) -> dict[str, Any]:
    return {k: v[k] for k in ("dataset", "project", "version", "content_id", "snapshot_id", "n_files", "size", "message",
                              "tags", "created_by", "created_at") if k in v}


@datasets_app.command("show")
def datasets_show(
    ref: str = typer.Argument(..., help="NAME (its versions), or NAME:V / NAME:latest (that version's files)."),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    files: int = typer.Option(20, "--files", help="Files listed (the largest first); 0 for none."),
    json_: bool = typer.Option(False, "--json", help="Print the dataset or version as JSON (with every file)."),
) -> None:
    """Show a dataset's versions, or one version: files, sizes, references, tags and the models trained on it.

    Examples:

        $ runyard datasets show weights -p demo

        $ runyard datasets show weights:1 -p demo

        $ runyard datasets show weights:latest -p demo --json
    """
    proj, r = _ref(ref, project)
    explicit = ":" in ref or "@" in ref
    from rich.markup import escape
    from rich.table import Table

    out = console()
    with get_client() as client:
        if not explicit:
            d = client.get_dataset(proj, r.name)
            if json_:
                print_json(d)
                return
            out.print(f"[bold]{escape(safe(proj))}/{escape(safe(d['name']))}[/]  {escape(safe(d['description'] or ''))}")
            table = Table(box=None, header_style="bold")
            for col, justify in (("VERSION", "right"), ("FILES", "right"), ("SIZE", "right"), ("CREATED", "left"),
                                 ("BY", "left"), ("MESSAGE", "left"), ("TAGS", "left")):
                table.add_column(col, justify=justify)  # type: ignore[arg-type]
            for v in d["versions"]:
                table.add_row(str(v["version"]), str(v["n_files"]), fmt_size(v["size"]), ago(v["created_at"]),
                              escape(safe(v["created_by"])), escape(safe(v["message"])),
                              escape(safe(", ".join(f"{k}={x}" for k, x in v["tags"].items()))))
            out.print(table)
            return
        v = client.get_dataset_version(proj, r.name, r.version)
    if json_:
        print_json(v)
        return
    stored = sum(int(f[2]) for f in v["files"])
    referenced = sum(int(x[2]) for x in v["refs"])
    out.print(f"[bold]{escape(safe(proj))}/{escape(safe(v['dataset']))}:{v['version']}[/]  "
              f"{v['n_files']} files, {fmt_size(v['size'])}  created {ago(v['created_at'])} by "
              f"{escape(safe(v['created_by'] or '-'))}")
    if v["message"]:
        out.print(f"  message: {escape(safe(v['message']))}")
    if v["tags"]:
        out.print(f"  tags: {escape(safe(', '.join(f'{k}={x}' for k, x in v['tags'].items())))}")
    out.print(f"  stored: {len(v['files'])} files, {fmt_size(stored)}"
              + (f" (snapshot {v['snapshot_id'][:12]})" if v["snapshot_id"] else ""))
    out.print(f"  referenced in place: {len(v['refs'])} files, {fmt_size(referenced)}")
    out.print(f"  content id: {v['content_id']}")
    used = v.get("used_by_models") or []
    out.print("  used by models: " + (", ".join(f"models:/{u['project']}/{u['model']}/{u['version']}" for u in used)
                                      if used else "none"), markup=False)
    if files > 0 and (v["files"] or v["refs"]):
        rows = [(str(f[0]), int(f[2]), "stored") for f in v["files"]] + [(str(x[0]), int(x[2]), "ref") for x in v["refs"]]
        rows.sort(key=lambda row: (-row[1], row[0]))
        table = Table(box=None, header_style="bold")
        for col, justify in (("PATH", "left"), ("SIZE", "right"), ("KIND", "left")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for path, size, kind in rows[:files]:
            table.add_row(escape(safe(path)), fmt_size(size), kind)
        out.print(table)
        if len(rows) > files:
            out.print(f"  ... and {len(rows) - files} more (--files N, or --json for all)", markup=False)


@datasets_app.command("diff")
def datasets_diff(
    name: str = typer.Argument(..., help="The dataset: NAME or PROJECT/NAME."),
    a: str = typer.Argument(..., help="The older version (a number or latest)."),
    b: str = typer.Argument("latest", help="The newer version (a number or latest)."),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    json_: bool = typer.Option(False, "--json", help="Print the changes as JSON."),
) -> None:
    """What changed between two versions: files added, removed and changed (stored files by path, references by uri).

    Examples:

        $ runyard datasets diff weights 1 2 -p demo

        $ runyard datasets diff weights 1 latest -p demo --json
    """
    proj, r = _ref(name, project)
    with get_client() as client:
        changes = client.diff_datasets(proj, r.name, a, b)
    if json_:
        print_json(changes)
        return
    console().print(f"{proj}/{r.name} {a} -> {b}: {_summary(changes)}.", markup=False)
    for line in _changes_lines(changes, limit=200):
        console().print(safe(line), markup=False)


@datasets_app.command("pull")
def datasets_pull(
    ref: str = typer.Argument(..., help="The version: NAME:V, NAME:latest or PROJECT/NAME:V."),
    dest: Path = typer.Argument(..., help="The directory to write into (created if needed)."),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    copy: bool = typer.Option(False, "--copy", help="Private copies instead of hard links into the blob cache."),
    json_: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write a version's files into a directory through the local blob cache (only missing blobs are downloaded).

    Referenced local files become symlinks to their place; referenced s3:// objects are downloaded into the cache
    and checked against the recorded sha256.

    Examples:

        $ runyard datasets pull weights:1 pulled -p demo
    """
    proj, r = _ref(ref, project)
    from runyard.snapshot import pull_dataset

    with get_client() as client:
        got = pull_dataset(client, proj, r.name, r.version, dest, link=not copy)
    if json_:
        print_json({"version": got.version["version"], "dest": str(got.dest), "n_files": got.n_files,
                    "n_downloaded": got.n_downloaded, "bytes_downloaded": got.bytes_downloaded,
                    "n_linked": got.n_linked, "n_fetched": got.n_fetched})
        return
    console().print(f"Pulled {proj}/{r.name}:{got.version['version']} into {got.dest}: {got.n_files} stored files "
                    f"({got.n_downloaded} downloaded, {fmt_size(got.bytes_downloaded)}), {got.n_linked} linked in place, "
                    f"{got.n_fetched} fetched from object storage.", markup=False)


@datasets_app.command("delete")
def datasets_delete(
    ref: str = typer.Argument(..., help="The version: NAME:V or PROJECT/NAME:V."),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    force: bool = typer.Option(False, "--force", help="Delete it although runs read it (never when a registered model "
                               "was trained on it)."),
) -> None:
    """Delete one version (project owners). Refused while a registered model depends on it, and while runs read it
    unless --force. Its blobs stay while other versions or snapshots use them.

    Examples:

        $ runyard datasets delete weights:2 -p demo
    """
    proj, r = _ref(ref, project)
    if r.version is None:
        raise InvalidInput(f"Which version of {r.name!r}? Deleting takes a number.", f"Write {r.name}:N.")
    with get_client() as client:
        client.delete_dataset_version(proj, r.name, r.version, force=force)
    console().print(f"Deleted {proj}/{r.name}:{r.version}.", markup=False)
