"""``runyard sync``: send what SDK processes could not (metrics, final statuses, runs started offline)."""

from __future__ import annotations

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import console, print_json

__all__: list[str] = []


@app.command("sync")
def sync(
    json_: bool = typer.Option(False, "--json", help="Print what was sent per run as JSON."),
) -> None:
    """Send the runs' data left in RUNYARD_HOME/spool/ to the server: metric points, images and tables, final
    statuses, and runs started while the server was away (created now; the SDK printed their local-... ids).

    An SDK process whose server did not answer keeps what it could not send there and says so
    when it ends. Safe to run any time and more than once: a batch sent twice is stored once,
    and runs whose process still runs are left to it.

    Examples:

        $ runyard sync

        $ runyard sync --json
    """
    from runyard import config
    from runyard.sdk._sync import pending_runs
    from runyard.sdk._sync import sync as sync_spool

    home = config.home()
    if not pending_runs(home):
        if json_:
            print_json([])
        else:
            console().print(f"Nothing to send: {home / 'spool'} holds no run data.", markup=False)
        return
    with get_client() as client:
        results = sync_spool(client, home)
    if json_:
        print_json([r.as_dict() for r in results])
        return
    con = console()
    for r in results:
        name = f"run {r.run_id}" if r.run_id is not None else f"run {r.local_id or r.directory}"
        if r.local_id and r.run_id is not None:
            name = f"run {r.local_id} → {r.run_id}" + (" (created)" if r.created else "")
        if r.skipped:
            con.print(f"{name}: skipped, {r.skipped}.", markup=False)
            continue
        parts = [f"{r.points} metric points in {r.batches} batches"]
        if r.media:
            parts.append(f"{r.media} images and tables")
        if r.status:
            parts.append(f"status {r.status}")
        con.print(f"{name}: sent {', '.join(parts)}.", markup=False)
        for d in r.dropped:
            con.print(f"  refused by the server, dropped: {d}", markup=False)
