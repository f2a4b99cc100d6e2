"""``runyard models``: the model registry (list, show, register from a run, move aliases, archive, download).

Names resolve in a project: ``--project``/``-p``, else ``RUNYARD_PROJECT``; a qualified name
(``PROJECT/NAME``, ``models:/PROJECT/NAME/3``) names its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import ago, console, err_console, fmt_size, fmt_time, print_json
from runyard.errors import InvalidInput
from runyard.names import MODEL_NAME_RULE, ModelRef, parse_model_uri

if TYPE_CHECKING:
    from runyard.client import Client

__all__: list[str] = []

FLAVORS = ("sklearn", "xgboost", "pytorch", "onnx", "files")

models_app = typer.Typer(name="models", no_args_is_help=True,
                         help="The model registry: named models with numbered versions and aliases.")
app.add_typer(models_app)

_PROJECT_HELP = "The model's project (default: RUNYARD_PROJECT)."


def _project(option: str | None, ref: ModelRef | None = None) -> str:
    """The project a command works in: the reference's own, --project, else RUNYARD_PROJECT."""
    project = (ref.project if ref is not None else None) or option or os.environ.get("RUNYARD_PROJECT")
    if not project:
        raise InvalidInput("No project given for the model.",
                           "Pass --project NAME (or -p NAME), set RUNYARD_PROJECT, or qualify the name as PROJECT/NAME.")
    return project


def _ref(text: str) -> ModelRef:
    """``NAME``, ``NAME/3``, ``NAME@alias``, ``PROJECT/NAME...`` or a full ``models:/`` URI."""
    return parse_model_uri(text if text.startswith("models:/") else f"models:/{text}")


def _version_row(v: dict[str, Any]) -> list[str]:
    from rich.markup import escape

    status = "[dim]archived[/]" if v["status"] == "archived" else "ready"
    run = str(v["run_id"]) if v.get("run_id") is not None else "-"
    return [str(v["version"]), status, escape(", ".join(v.get("aliases") or [])), escape(v["flavor"]), run,
            str(v["n_files"]), fmt_size(v["size"]), escape(v.get("created_by") or ""), ago(v["created_at"]),
            escape(v.get("description") or "")]


# Registered in the order their examples run (tests/cli/test_cli_examples.py runs them one after the other).
@models_app.command("register")
def models_register(
    run: int = typer.Argument(..., help="The run whose artifacts make the version."),
    paths: list[str] = typer.Argument(..., help="Artifact paths or directories of the run; the version's files are "
                                      "relative to their common directory."),
    name: str = typer.Option(..., "--name", "-n", help=f"The model's name: {MODEL_NAME_RULE}. Created if missing."),
    flavor: str | None = typer.Option(None, "--flavor", help=f"How the model loads: {', '.join(FLAVORS)} (default: "
                                      "the flavor runyard.log_model recorded in the files, else files)."),
    description: str = typer.Option("", "--description", "-d", help="What this version is."),
    project: str | None = typer.Option(None, "--project", "-p", help="The model's project (default: RUNYARD_PROJECT, "
                                       "else the run's)."),
    json_: bool = typer.Option(False, "--json", help="Print the new version as JSON."),
) -> None:
    """Register a new version of a model from a run's artifacts (the model is created if missing).

    Files stored by ``runyard.log_model`` (a directory with ``runyard-model.json``) keep their flavor,
    signature and requirements. The server copies the files into its content-addressed store, so the version keeps them even
    if the run's artifacts change later. A version is never overwritten: each registration gets the
    next number.

    Examples:

        $ runyard models register 1 model --name digits -p demo --description "First model"

        $ runyard models register 1 model/weights.bin report.txt --name digits -p demo --flavor files
    """
    if flavor is not None and flavor not in FLAVORS:
        raise InvalidInput(f"Unknown flavor {flavor!r}.", f"Use one of: {', '.join(FLAVORS)}.")
    with get_client() as client:
        where = project or os.environ.get("RUNYARD_PROJECT") or client.get_run(run)["project"]
        meta: dict[str, Any] = {"flavor": flavor or "files"}
        if flavor is None:  # files stored by runyard.log_model say how they load (runyard-model.json)
            from runyard.sdk._models import _meta_of_artifacts

            meta = _meta_of_artifacts(client, run, paths) or meta
        v = client.create_model_version(where, name, run_id=run, paths=paths, description=description, **meta)
    if json_:
        print_json(v)
        return
    console().print(f"Registered {v['model']} version {v['version']} ({v['n_files']} file{'s' if v['n_files'] != 1 else ''}, "
                    f"{fmt_size(v['size'])}) from run {run}: models:/{v['project']}/{v['model']}/{v['version']}",
                    markup=False)


@models_app.command("alias")
def models_alias(
    name: str = typer.Argument(..., help="The model (NAME or PROJECT/NAME)."),
    alias: str = typer.Argument(..., help="The alias, e.g. production or staging."),
    version: int | None = typer.Argument(None, help="The version it names from now on."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias instead."),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    json_: bool = typer.Option(False, "--json", help="Print the change as JSON."),
) -> None:
    """Point an alias at a version, or remove it (owners of the project); every move is recorded.

    Examples:

        $ runyard models alias digits production 1 -p demo

        $ runyard models alias digits staging 2 -p demo

        $ runyard models alias digits staging --delete -p demo
    """
    ref = _ref(name)
    if ref.version is not None or ref.alias is not None:
        raise InvalidInput(f"{name!r} names a version; `models alias` takes the model's name.",
                           f"Write `runyard models alias {ref.name} {alias} VERSION`.")
    if delete == (version is not None):
        raise InvalidInput("Give either the VERSION the alias should name, or --delete.",
                           f"E.g. `runyard models alias {ref.name} {alias} 3`, or `... {alias} --delete`.")
    where = _project(project, ref)
    with get_client() as client:
        if version is None:
            change = client.delete_model_alias(where, ref.name, alias)
        else:
            change = client.set_model_alias(where, ref.name, alias, version)
    if json_:
        print_json(change)
        return
    if change["version"] is None:
        console().print(f"Removed alias {alias} of {ref.name} (it named version {change['from_version']}).", markup=False)
    elif change["from_version"] is None:
        console().print(f"{ref.name}@{alias} now names version {change['version']}.", markup=False)
    elif change["from_version"] == change["version"]:
        console().print(f"{ref.name}@{alias} names version {change['version']} already.", markup=False)
    else:
        console().print(f"{ref.name}@{alias} moved from version {change['from_version']} to {change['version']}.",
                        markup=False)


@models_app.command("ls")
def models_ls(
    project: str | None = typer.Option(None, "--project", "-p", help="The project (default: RUNYARD_PROJECT)."),
    json_: bool = typer.Option(False, "--json", help="Print the models as a JSON list."),
) -> None:
    """List a project's models: versions, the latest one, aliases, last change.

    Examples:

        $ runyard models ls -p demo

        $ runyard models ls --project demo --json
    """
    from rich.markup import escape
    from rich.table import Table

    where = _project(project)
    with get_client() as client:
        items = client.list_models(where)
    if json_:
        print_json(items)
        return
    if not items:
        console().print(f"Project {where} has no models yet. Register one with "
                        f"`runyard models register RUN PATH --name NAME -p {where}`.", markup=False)
        return
    table = Table(box=None, header_style="bold")
    for col, justify in (("NAME", "left"), ("VERSIONS", "right"), ("LATEST", "right"), ("ALIASES", "left"),
                         ("UPDATED", "left"), ("DESCRIPTION", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for m in items:
        aliases = ", ".join(f"{a}→{v}" for a, v in (m.get("aliases") or {}).items())
        latest = m.get("latest_version")
        table.add_row(escape(m["name"]), str(m["n_versions"]), "-" if latest is None else str(latest), escape(aliases),
                      ago(m["updated_at"]), escape(m.get("description") or ""))
    console().print(table)


@models_app.command("show")
def models_show(
    name: str = typer.Argument(..., help="NAME (the model), NAME/3 or NAME@alias (one version); PROJECT/NAME... too."),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    json_: bool = typer.Option(False, "--json", help="Print the model (or version) as JSON."),
) -> None:
    """Show a model (versions, aliases, who moved them when) or one version (its files, signature, requirements).

    Examples:

        $ runyard models show digits -p demo

        $ runyard models show digits@production -p demo

        $ runyard models show demo/digits/2 --json
    """
    ref = _ref(name)
    where = _project(project, ref)
    with get_client() as client:
        if ref.is_latest and not name.endswith("/latest"):  # the model itself, not its latest version
            model = client.get_model(where, ref.name)
            if json_:
                print_json(model)
                return
            _print_model(model)
            return
        version = client.resolve_model(ref.uri(where))
    if json_:
        print_json(version)
        return
    _print_version(version)


def _print_model(model: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = console()
    con.print(f"[bold]{escape(model['project'])}/{escape(model['name'])}[/]"
              + (f" — {escape(model['description'])}" if model.get("description") else ""))
    if model.get("tags"):
        con.print("tags: " + escape(", ".join(f"{k}={v}" for k, v in model["tags"].items())))
    if not model["versions"]:
        con.print("No versions yet.", markup=False)
    else:
        table = Table(box=None, header_style="bold", title="versions", title_justify="left")
        for col in ("VERSION", "STATUS", "ALIASES", "FLAVOR", "RUN", "FILES", "SIZE", "BY", "CREATED", "DESCRIPTION"):
            table.add_column(col, justify="right" if col in ("VERSION", "FILES", "SIZE", "RUN") else "left")
        for v in model["versions"]:
            table.add_row(*_version_row(v))
        con.print(table)
    if model["alias_history"]:
        table = Table(box=None, header_style="bold", title="alias history", title_justify="left")
        for col in ("WHEN", "ALIAS", "FROM", "TO", "BY"):
            table.add_column(col)
        for e in model["alias_history"]:
            table.add_row(fmt_time(e["at"]), escape(e["alias"]), "-" if e["from_version"] is None else str(e["from_version"]),
                          "removed" if e["to_version"] is None else str(e["to_version"]), escape(e["actor"]))
        con.print(table)


def _print_version(v: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = console()
    con.print(f"[bold]models:/{escape(v['project'])}/{escape(v['model'])}/{v['version']}[/] ({v['status']})")
    for label, value in (("aliases", ", ".join(v.get("aliases") or []) or "-"), ("flavor", v["flavor"]),
                         ("source", v.get("source") or "-"), ("created", f"{fmt_time(v['created_at'])} by {v['created_by']}"),
                         ("description", v.get("description") or "-"),
                         ("requirements", ", ".join(v.get("requirements") or []) or "-"),
                         ("tags", ", ".join(f"{k}={x}" for k, x in (v.get("tags") or {}).items()) or "-")):
        con.print(f"{label}: {escape(str(value))}")
    if v.get("signature"):
        import json

        con.print(f"signature: {escape(json.dumps(v['signature']))}")
    table = Table(box=None, header_style="bold", title=f"{v['n_files']} files, {fmt_size(v['size'])}", title_justify="left")
    table.add_column("PATH")
    table.add_column("SIZE", justify="right")
    table.add_column("SHA256")
    for path, digest, size, _ in v["files"]:
        table.add_row(escape(path), fmt_size(size), digest[:12])
    con.print(table)


def _version_command(name: str, version: int, project: str | None, json_: bool, *, unarchive: bool) -> None:
    ref = _ref(name)
    where = _project(project, ref)
    with get_client() as client:
        v = client.archive_model_version(where, ref.name, version, unarchive=unarchive)
    if json_:
        print_json(v)
        return
    console().print(f"{ref.name} version {v['version']} is {v['status']}.", markup=False)


@models_app.command("archive")
def models_archive(
    name: str = typer.Argument(..., help="The model (NAME or PROJECT/NAME)."),
    version: int = typer.Argument(..., help="The version to archive."),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    json_: bool = typer.Option(False, "--json", help="Print the version as JSON."),
) -> None:
    """Archive a version: it keeps its number and files, but `latest` skips it and no alias may name it.

    Examples:

        $ runyard models archive digits 2 -p demo
    """
    _version_command(name, version, project, json_, unarchive=False)


@models_app.command("unarchive")
def models_unarchive(
    name: str = typer.Argument(..., help="The model (NAME or PROJECT/NAME)."),
    version: int = typer.Argument(..., help="The archived version to bring back."),
    project: str | None = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    json_: bool = typer.Option(False, "--json", help="Print the version as JSON."),
) -> None:
    """Bring an archived version back.

    Examples:

        $ runyard models unarchive digits 2 -p demo --json
    """
    _version_command(name, version, project, json_, unarchive=True)


@models_app.command("download")
def models_download(
    uri: str = typer.Argument(..., help="models:/NAME/3, models:/NAME@production, models:/PROJECT/NAME/latest..."),
    dest: Path = typer.Argument(..., help="The directory to write the version's files into (empty or new)."),
    project: str | None = typer.Option(None, "--project", "-p", help="The project of an unqualified URI "
                                       "(default: RUNYARD_PROJECT)."),
    force: bool = typer.Option(False, "--force", help="Write into a directory that is not empty (files of the "
                                                      "version replace those of the same path)."),
) -> None:
    """Download a model version's files into a directory, through the local blob cache.

    Examples:

        $ runyard models download models:/demo/digits@production digits-model

        $ runyard models download models:/digits/2 digits-v2 -p demo --force
    """
    ref = parse_model_uri(uri)
    where = _project(project, ref)
    if dest.exists() and not dest.is_dir():
        raise InvalidInput(f"{dest} is a file, not a directory.", "Name a new or empty directory.")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise InvalidInput(f"{dest} is not empty.", "Name a new or empty directory, or pass --force to write into it.")
    with get_client() as client:
        version = client.resolve_model(ref.uri(where))
        done = _materialize(client, version, dest)
    console().print(f"Downloaded models:/{version['project']}/{version['model']}/{version['version']} "
                    f"({done.n_files} file{'s' if done.n_files != 1 else ''}, {fmt_size(version['size'])}) to {dest}.",
                    markup=False)


class _Counted:
    """A client whose blob downloads advance a progress bar (what ``materialize`` calls of it)."""

    def __init__(self, client: Client, advance: Any) -> None:
        self._client = client
        self._advance = advance

    def get_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        return self._client.get_snapshot(snapshot_id)

    def download_blob(self, digest: str, dest: Path) -> int:
        n = self._client.download_blob(digest, dest)
        self._advance(n)
        return n


def _materialize(client: Client, version: dict[str, Any], dest: Path) -> Any:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from runyard.snapshot import materialize

    err = err_console()
    total = sum({f[1]: f[2] for f in version["files"]}.values())
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as progress:
        bar = progress.add_task(f"{version['model']} v{version['version']}", total=total)
        counted = _Counted(client, lambda n: progress.advance(bar, n))
        # Private copies (no hard links into the cache): the files are the user's to edit.
        done = materialize(counted, version["snapshot_id"], dest, link=False)  # type: ignore[arg-type]
        progress.update(bar, completed=total)
    return done
