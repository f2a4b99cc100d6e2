"""``runyard images``: the container images runs ran in, what was built, and where."""

from __future__ import annotations

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import ago, console, print_json, safe

__all__: list[str] = []


@app.command("images")
def images(
    project: str | None = typer.Option(None, "--project", "-P", help="Only the images of this project's runs."),
    limit: int = typer.Option(200, "--limit", min=1, max=1000, help="Show at most this many images."),
    json_: bool = typer.Option(False, "--json", help="Print the images as a JSON list."),
) -> None:
    """List the container images runs ran in: built (from build:) or pulled, on which hosts, by how many runs.

    Example:

        $ runyard images
    """
    from rich.table import Table

    with get_client() as client:
        items = client.list_images(project=project, limit=limit)
    if json_:
        print_json(items)
        return
    if not items:
        console().print("No run has run in a container image yet" + (f" in project {project}." if project else "."),
                        markup=False)
        return
    table = Table(box=None, header_style="bold")
    for col in ("IMAGE", "ID", "RUNTIME", "BUILT ON", "RUNS", "LAST USED"):
        table.add_column(col)
    for i in items:
        built = ", ".join(i["built_on"])
        if built and i.get("build_s"):
            built += f" ({i['build_s']:.0f}s, run {i['built_by_run']})"
        table.add_row(safe(i["image"]), safe((i.get("id") or "")[:19]), safe(i.get("runtime") or ""),
                      safe(built or ("pulled or given" if not i.get("build_key") else "")), str(i["runs"]),
                      f"{ago(i['last_used'])} (run {i['last_run']})")
    console().print(table)
