"""``runyard projects`` (list, create, tag) and ``runyard experiments`` (list)."""

from __future__ import annotations

from typing import Any

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import ago, console, counts_text, print_json, status_text
from runyard.errors import InvalidInput
from runyard.names import PROJECT_NAME_RULE

__all__: list[str] = []


def _tag_pairs(items: list[str], option: str) -> dict[str, str]:
    """``["problem=classification", "gpu="]`` → tags; the server checks keys and values."""
    tags: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise InvalidInput(
                f"{option} takes KEY=VALUE, but got {item!r}.",
                f"Write e.g. problem=classification, or {item or 'benchmark'}= for a tag without a value"
                + (" (remove a tag with --remove KEY)." if option == "A tag" else "."),
            )
        key, value = item.split("=", 1)
        tags[key] = value
    return tags


def tags_text(tags: dict[str, Any]) -> str:
    """``problem=classification, benchmark``: a plain label shows its key alone."""
    return ", ".join(f"{k}={v}" if v != "" else k for k, v in tags.items())

projects_app = typer.Typer(name="projects", invoke_without_command=True)
app.add_typer(projects_app)


@projects_app.callback()
def projects(
    ctx: typer.Context,
    tag: list[str] = typer.Option([], "--tag", "-t", help="Only projects with this tag: KEY, or KEY=VALUE for that value; "
                                  "repeat to require several."),
    json_: bool = typer.Option(False, "--json", help="Print the projects as a JSON list."),
) -> None:
    """List projects (name, runs, experiments, last activity, tags, description), create or tag one.

    Examples:

        $ runyard projects

        $ runyard projects --tag problem=classification

        $ runyard projects --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.markup import escape
    from rich.table import Table

    with get_client() as client:
        items = client.list_projects(tags=tag)
    if json_:
        print_json(items)
        return
    if not items:
        if tag:
            console().print(f"No projects with tag {' and '.join(tag)}. See every project's tags with `runyard projects`.",
                            markup=False)
        else:
            console().print("No projects yet. Create one with `runyard projects create NAME`.", markup=False)
        return
    table = Table(box=None, header_style="bold")
    for col, justify in (("NAME", "left"), ("RUNS", "right"), ("EXPERIMENTS", "right"),
                         ("LAST ACTIVITY", "left"), ("TAGS", "left"), ("DESCRIPTION", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in items:
        table.add_row(escape(p["name"]), str(p.get("n_runs", 0)), str(p.get("n_experiments", 0)),
                      ago(p.get("last_activity_at") or p.get("updated_at")), escape(tags_text(p.get("tags") or {})),
                      escape(p.get("description") or ""))
    console().print(table)


@projects_app.command("create")
def projects_create(
    name: str = typer.Argument(..., help=f"{PROJECT_NAME_RULE}."),
    description: str = typer.Option("", "--description", "-d", help="What the project is about."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="A tag KEY=VALUE (KEY= for a plain label); repeatable."),
    json_: bool = typer.Option(False, "--json", help="Print the created project as JSON."),
) -> None:
    """Create a project.

    Examples:

        $ runyard projects create digits --description "Digit classifiers"

        $ runyard projects create houses --tag problem=regression --tag benchmark=
    """
    tags = _tag_pairs(tag, "--tag")
    with get_client() as client:
        project = client.create_project(name, description=description, tags=tags)
    if json_:
        print_json(project)
        return
    console().print(f"Created project {project['name']}.", markup=False)


@projects_app.command("tag")
def projects_tag(
    project: str = typer.Argument(..., help="The project's name."),
    tags: list[str] = typer.Argument(None, help="Tags to add or change: KEY=VALUE, or KEY= for a plain label.",
                                     show_default=False),
    remove: list[str] = typer.Option([], "--remove", "-r", help="Delete the tag KEY; repeatable."),
    json_: bool = typer.Option(False, "--json", help="Print the project as JSON."),
) -> None:
    """Add, change or remove a project's tags (editors and owners), all in one change.

    Tags are how the projects list is filtered: `runyard projects --tag problem=classification`.
    Keys are 1-64 letters, digits, '_', '-' or '.'; values are one line of up to 256 characters.

    Examples:

        $ runyard projects tag demo problem=classification team=vision benchmark=

        $ runyard projects tag demo --remove team --json
    """
    new = _tag_pairs(list(tags or []), "A tag")
    if not new and not remove:
        raise InvalidInput("Nothing to change: give tags as KEY=VALUE, or --remove KEY.",
                           f"For example: runyard projects tag {project} problem=classification")
    with get_client() as client:
        result = client.set_project_tags(project, new, remove=remove)
    if json_:
        print_json(result)
        return
    shown = tags_text(result.get("tags") or {})
    console().print(f"Project {result['name']} tags: {shown}." if shown else f"Project {result['name']} has no tags.",
                    markup=False)


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
