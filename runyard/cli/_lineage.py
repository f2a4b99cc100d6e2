"""``runyard lineage URI``: the chain from a model version, a run or a dataset version back to data, code and params."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import console, fmt_size, print_json, safe, status_text

__all__: list[str] = []

_EDGE_WORDS = {"trained_from": "trained by", "read": "read", "code": "code", "image": "image",
               "registered_as": "registered as", "part_of": "in"}


@app.command("lineage")
def lineage(
    uri: str = typer.Argument(..., help="models:/[PROJECT/]NAME/V, models:/[PROJECT/]NAME@ALIAS, runs:/ID or "
                              "datasets:/[PROJECT/]NAME:V"),
    project: str | None = typer.Option(None, "--project", "-p", envvar="RUNYARD_PROJECT",
                                       help="The project of an unqualified model or dataset name."),
    json_: bool = typer.Option(False, "--json", help="Print the graph as JSON: {root, nodes, edges}."),
) -> None:
    """Show where a model version, run or dataset version came from: the run, its params, the dataset
    versions it read, its code snapshot (with the git commit) and image; for a dataset version, the runs
    that read it and the models trained from them. What you cannot read shows as "not visible to you".

    Example:

        $ runyard lineage runs:/1

        $ runyard lineage runs:/1 --json
    """
    with get_client() as client:
        graph = client.lineage(uri, project=project)
    if json_:
        print_json(graph)
        return
    console().print(render_tree(graph))


def render_tree(graph: dict[str, Any]) -> Any:  # noqa: ANN401
    """The graph as a Rich tree from its root (each node once, reached by the first edge that leads to it)."""
    from rich.tree import Tree

    nodes = {n["id"]: n for n in graph["nodes"]}
    around: dict[str, list[tuple[str, str, dict[str, Any], bool]]] = {}
    for e in graph["edges"]:
        around.setdefault(e["source"], []).append((e["target"], e["kind"], e.get("data") or {}, True))
        around.setdefault(e["target"], []).append((e["source"], e["kind"], e.get("data") or {}, False))
    root = nodes[graph["root"]]
    tree = Tree(_label(root))
    shown = {root["id"]}
    todo = deque([(root["id"], tree)])
    while todo:
        here, branch = todo.popleft()
        if nodes[here]["data"].get("redacted"):
            continue
        if nodes[here]["kind"] == "run":
            params = nodes[here]["data"].get("params") or {}
            if params:
                branch.add("params: " + safe(", ".join(f"{k}={json.dumps(v)}" for k, v in params.items())))
        for there, kind, data, forward in sorted(around.get(here, []), key=lambda t: (_ORDER.get(t[1], 9), t[0])):
            if there in shown or there not in nodes:
                continue
            shown.add(there)
            word = _EDGE_WORDS.get(kind, kind) if forward else _REVERSE.get(kind, kind)
            name = f" as {data['name']}" if data.get("name") else ""
            head, tail = (f"{word}{name}", "") if forward else (word, f" (read{name})" if name else "")
            todo.append((there, branch.add(f"[dim]{safe(head)}:[/dim] " + _label(nodes[there]) + safe(tail))))
    if graph.get("truncated"):
        tree.add("[dim]… more runs read it than are listed[/dim]")
    return tree


_ORDER = {"trained_from": 0, "read": 1, "code": 2, "image": 3, "part_of": 4, "registered_as": 5}
_REVERSE = {"read": "read by", "trained_from": "model", "registered_as": "from run", "code": "code of",
            "image": "image of", "part_of": "run"}


def _label(node: dict[str, Any]) -> str:
    d = node["data"]
    if d.get("redacted"):
        return f"[dim]{safe(node['kind'].replace('_', ' '))}: not visible to you[/dim]"
    kind = node["kind"]
    if kind == "model_version":
        aliases = f" @{', @'.join(d['aliases'])}" if d.get("aliases") else ""
        return f"[bold]model {safe(node['label'])}[/bold]{safe(aliases)} ({safe(d.get('flavor') or '')}, {safe(d.get('status') or '')})"
    if kind == "run":
        exp = f" · experiment {safe(str(d['experiment']))}" if d.get("experiment") else ""
        return f"[bold]run {d['id']}[/bold] {safe(d.get('name') or '')} {status_text(d.get('status') or '')}{exp}"
    if kind == "dataset_version":
        refs = f", {d['n_refs']} referenced" if d.get("n_refs") else ""
        return (f"[bold]dataset {safe(node['label'])}[/bold] · {d.get('n_files', 0)} files{refs}, "
                f"{fmt_size(int(d.get('size') or 0))} · content {safe(str(d.get('content_id') or '')[:12])}")
    if kind == "snapshot":
        git = ""
        if d.get("git_commit"):
            git = f" · git {d['git_commit'][:12]}" + (f" ({safe(d['git_branch'])}" if d.get("git_branch") else " (")
            git += ", dirty)" if d.get("git_dirty") else ")"
            git = git.replace(" ()", "")
        files = f" · {d['n_files']} files" if d.get("n_files") is not None else ""
        return f"[bold]snapshot {safe(str(d.get('id', ''))[:12])}[/bold]{safe(git)}{files}"
    if kind == "image":
        ident = f" ({safe(str(d['id'])[:19])})" if d.get("id") else ""
        return f"[bold]image {safe(node['label'])}[/bold]{ident}"
    return f"[bold]{safe(node['label'])}[/bold]"
