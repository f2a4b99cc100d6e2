"""``runyard projects`` (list, create) and ``runyard experiments`` (list)."""

from __future__ import annotations

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import ago, console, counts_text, print_json, status_text

__all__: list[str] = []

projects_app = typer.Typer(name="projects", invoke_without_command=True)
app.add_typer(projects_app)


@projects_app.callback()
def projects(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="Print the projects as a JSON list."),
) -> None:
    """List projects (name, runs, experiments, last activity, description), or create one.

    Examples:

        $ runyard projects

        $ runyard projects --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.markup import escape
    from rich.table import Table

    with get_client() as client:
        items = client.list_projects()
    if json_:
        print_json(items)
        return
    if not items:
        console().print("No projects yet. Create one with `runyard projects create NAME`.", markup=False)
        return
    table = Table(box=None, header_style="bold")
    for col, justify in (("NAME", "left"), ("RUNS", "right"), ("EXPERIMENTS", "right"),
                         ("LAST ACTIVITY", "left"), ("DESCRIPTION", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in items:
        table.add_row(escape(p["name"]), str(p.get("n_runs", 0)), str(p.get("n_experiments", 0)),
                      ago(p.get("last_activity_at") or p.get("updated_at")), escape(p.get("description") or ""))
    console().print(table)


@projects_app.command("create")
def projects_create(
    name: str = typer.Argument(..., help="1-64 lowercase letters, digits, '-' or '_'."),
    description: str = typer.Option("", "--description", "-d", help="What the project is about."),
    json_: bool = typer.Option(False, "--json", help="Print the created project as JSON."),
) -> None:
    """Create a project.

    Examples:

        $ runyard projects create digits --description "Digit classifiers"
    """
    with get_client() as client:
        project = client.create_project(name, description=description)
    if json_:
        print_json(project)
        return
    console().print(f"Created project {project['name']}.", markup=False)


@app.command("experiments")
def experiments(
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project's experiments."),
    json_: bool = typer.Option(False, "--json", help="Print the experiments as a JSON list."),
) -> None:
    """List experiments: id, project, name, status, runs per status, created.

    Examples:

        $ runyard experiments

        $ runyard experiments --project demo --json
    """
    from rich.markup import escape
    from rich.table import Table

    with get_client() as client:
        items = client.list_experiments(project)
        if not items and project:
            client.get_project(project)  # an unknown project is an error, not an empty list
    if json_:
        print_json(items)
        return
    if not items:
        where = f" in project {project}" if project else ""
        console().print(f"No experiments{where} yet. Submit one with `runyard run DIR`.", markup=False)
        return
    table = Table(box=None, header_style="bold")
    for col, justify in (("ID", "right"), ("PROJECT", "left"), ("NAME", "left"), ("STATUS", "left"),
                         ("RUNS", "left"), ("CREATED", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for e in items:
        table.add_row(str(e["id"]), escape(e["project"]), escape(e["name"]), status_text(e["status"]),
                      counts_text(e.get("counts") or {}), ago(e.get("created_at")))
    console().print(table)
