"""``runyard backends`` (list, add, remove, test): the server's ``backends.yml``.

These commands edit ``$RUNYARD_HOME/backends.yml`` on the machine they run on,
which is the server's configuration when they run where the server runs (the
server reloads the file when it changes). ``test`` builds the backend here and
runs its checks: connectivity, credentials, the engine's commands and the Python
on the far side.
"""

from __future__ import annotations

import os
from typing import Any

import typer

from runyard.cli._app import app
from runyard.cli._output import console, print_json
from runyard.errors import InvalidInput

__all__: list[str] = []

backends_app = typer.Typer(name="backends", invoke_without_command=True)
app.add_typer(backends_app)


def _path() -> Any:
    from runyard.backends.config import backends_path

    return backends_path()


def _list(json_: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from runyard.backends.config import describe_policy, load_backends

    entries = load_backends(_path())
    # The file does not say whether the server requires sign-in: RUNYARD_AUTH=required does, else both cases are told.
    sign_in = True if os.environ.get("RUNYARD_AUTH") == "required" else None
    if json_:
        print_json([{**e.to_dict(), "policy": describe_policy(e, sign_in)} for e in entries.values()])
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "TYPE", "WHO MAY USE IT", "OPTIONS"):
        table.add_column(col)
    for e in entries.values():
        opts = ", ".join(f"{k}={v}" for k, v in e.options.items())
        table.add_row(escape(e.name), escape(e.type), escape(describe_policy(e, sign_in)), escape(opts))
    console().print(table)


@backends_app.callback()
def backends(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="Print the backends as a JSON list."),
) -> None:
    """The server's compute backends (RUNYARD_HOME/backends.yml): list them, add, remove or test one.

    Examples:

        $ runyard backends

        $ runyard backends test local
    """
    if ctx.invoked_subcommand is None:
        _list(json_)


@backends_app.command("list")
def backends_list(json_: bool = typer.Option(False, "--json", help="Print the backends as a JSON list.")) -> None:
    """List the configured backends (local always exists) and who may use each (their allow:).

    Examples:

        $ runyard backends list --json
    """
    _list(json_)


def _parse_sets(items: list[str]) -> dict[str, Any]:
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set takes KEY=VALUE, but got {item!r}.", "Write e.g. --set partition=debug.")
        try:
            # YAML 1.2 scalars as in runyard.yml: 5 is a number, false a boolean, [a, b] a list.
            from runyard.configfile import parse_scalar

            value = parse_scalar(text)
        except yaml.YAMLError:
            value = text
        options[key.strip()] = text if value is None and text else value
    return options


@backends_app.command("add")
def backends_add(
    name: str = typer.Argument(..., help="The backend's name, used by `backend: NAME` in runyard.yml."),
    type_: str = typer.Option(..., "--type", "-t", help="local, ssh, slurm, kubernetes or ray."),
    set_: list[str] = typer.Option([], "--set", "-s", help="An option as KEY=VALUE (YAML value); repeat for more."),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing entry of that name."),
) -> None:
    """Add a backend to RUNYARD_HOME/backends.yml, validated like the whole file.

    Examples:

        $ runyard backends add slurm-dev --type slurm --set partition=debug

        $ runyard backends add hpc --type slurm --set login_host=login01 --set work_dir=/scratch/me/runyard --set reach_server=false
    """
    from runyard.backends.config import add_backend

    path = _path()
    entry = add_backend(path, name, type_, _parse_sets(set_), replace=replace)
    console().print(f"{'Replaced' if replace else 'Added'} backend {entry.name} (type {entry.type}) in {path}. "
                    f"Check it with `runyard backends test {entry.name}`.", markup=False)


@backends_app.command("remove")
def backends_remove(name: str = typer.Argument(..., help="The backend to remove.")) -> None:
    """Remove a backend from RUNYARD_HOME/backends.yml (runs already on it keep running).

    Examples:

        $ runyard backends remove slurm-dev
    """
    from runyard.backends.config import remove_backend

    path = _path()
    remove_backend(path, name)
    console().print(f"Removed backend {name} from {path}.", markup=False)


@backends_app.command("test")
def backends_test(
    name: str = typer.Argument(..., help="The backend to check."),
    json_: bool = typer.Option(False, "--json", help="Print the checks as a JSON list."),
) -> None:
    """Check a backend: connectivity, credentials, the engine's commands and the Python on the far side.

    Exits 1 when a check fails; each failed check says what is missing and how to fix it.

    Examples:

        $ runyard backends test local
    """
    import dataclasses

    from runyard.backends.config import load_backends
    from runyard.backends.registry import get_backend
    from runyard.errors import NotFound

    entries = load_backends(_path())
    entry = entries.get(name)
    if entry is None:
        raise NotFound(f"No backend named {name!r}. Configured backends: {', '.join(sorted(entries))}.",
                       f"Add it with `runyard backends add {name} --type TYPE`.")
    backend = get_backend(entry.type, entry.backend_options())
    try:
        results = backend.check()
    finally:
        backend.close()
    if json_:
        print_json([dataclasses.asdict(r) for r in results])
    else:
        from rich.markup import escape

        con = console()
        if not results:
            con.print(f"The {entry.type} backend has no checks.", markup=False)
        for r in results:
            mark = "[green]ok[/]  " if r.ok else "[bold red]FAIL[/]"
            con.print(f"{mark} {escape(r.name)}: {escape(r.detail)}", soft_wrap=True)
            if not r.ok and r.hint:
                con.print(f"      fix: {escape(r.hint)}", soft_wrap=True)
    failed = [r.name for r in results if not r.ok]
    if failed:
        if not json_:
            console().print(f"Backend {name}: {len(failed)} check(s) failed: {', '.join(failed)}.", markup=False)
        raise typer.Exit(1)
    if not json_:
        console().print(f"Backend {name}: all {len(results)} checks passed.", markup=False)
