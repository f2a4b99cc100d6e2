"""``runyard server …`` (run, start, status, stop) and ``runyard db …`` (upgrade, current)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from runyard.cli._app import app
from runyard.cli._output import console, err_console, fmt_duration, print_json
from runyard.errors import RunyardError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__: list[str] = []

T = TypeVar("T")

server_app = typer.Typer(name="server", invoke_without_command=True)
db_app = typer.Typer(name="db", no_args_is_help=True, help="Database schema: apply migrations, show the revision.")
app.add_typer(server_app)
app.add_typer(db_app)


@server_app.callback()
def server(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to listen on."),
    log_level: str = typer.Option("warning", "--log-level", help="Uvicorn log level: debug, info, warning, error."),
) -> None:
    """Run the server in the foreground, or manage the local one the CLI starts on demand.

    Without a subcommand it serves until Ctrl-C. It uses RUNYARD_DATABASE_URL (default: SQLite in RUNYARD_HOME) and applies
    pending migrations at start.

    Examples:

        $ runyard server --port 8765

        $ RUNYARD_DATABASE_URL=postgresql://runyard@db/runyard runyard server --host 127.0.0.1
    """
    if ctx.invoked_subcommand is not None:
        return
    _check_port_free(host, port)
    from runyard.server._serve import serve

    err_console().print(f"Serving Runyard on http://{host}:{port} (Ctrl-C stops it).", markup=False)
    serve(host, port, log_level=log_level)


def _check_port_free(host: str, port: int) -> None:
    """Fail with the fix before loading the server when the address is taken (uvicorn only logs it)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise RunyardError(f"Cannot listen on {host!r}: the host name does not resolve ({e.strerror}).",
                           "Use an address of this machine, e.g. --host 127.0.0.1.") from e
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT sockets don't count
        try:
            s.bind(addr)
        except OSError as e:
            raise RunyardError(
                f"Cannot listen on {host}:{port}: {e.strerror or e}.",
                f"Is a server already running there? Try `curl http://{host}:{port}/api/v1/health`, "
                "or choose another port with --port.",
            ) from e


@server_app.command("start")
def server_start(
    json_: bool = typer.Option(False, "--json", help="Print the server record as JSON."),
) -> None:
    """Start the local server in the background (or find the running one) and print its URL.

    A supervisor process restarts the server if it dies (on the same port, with backoff);
    `runyard server status` says how often it did, `runyard server stop` stops both.

    Examples:

        $ runyard server start
    """
    from runyard._local import start_server

    info = start_server(supervise=True)
    if json_:
        print_json(info)
        return
    if not info["started"]:
        err_console().print(f"The local Runyard server is already running (pid {info['pid']}).", markup=False)
    console().print(info["url"], markup=False)


@server_app.command("status")
def server_status(
    json_: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show whether the local server runs, where, since when and on which database.

    Examples:

        $ runyard server status

        $ runyard server status --json
    """
    import os

    from runyard._local import server_status as status

    info = status()
    remote = os.environ.get("RUNYARD_SERVER")
    if json_:
        print_json({"running": info is not None, **(info or {}), "runyard_server": remote})
        return
    con = console()
    if info is None:
        con.print("No local Runyard server is running; the next command that needs one starts it "
                  "(or run `runyard server start`).", markup=False)
    elif info["restarting"]:
        con.print(f"The local Runyard server (last at {info['url']}) is down; its supervisor (pid "
                  f"{info['supervisor_pid']}) is restarting it. Its log: RUNYARD_HOME/server.log.", markup=False)
    else:
        up = fmt_duration(time.time() - (info["restarted_at"] or info["started_at"]))
        if info["healthy"]:
            db = info["health"].get("database", "?")
            con.print(f"The local Runyard server is running at {info['url']} (pid {info['pid']}, up {up}, "
                      f"database {db}).", markup=False)
        else:
            con.print(f"The local Runyard server (pid {info['pid']}, {info['url']}) is running but does not answer "
                      f"/api/v1/health; the next command replaces it. Its log: RUNYARD_HOME/server.log.", markup=False)
    if info is not None:
        if not info["supervised"]:
            con.print("It is not supervised (nothing restarts it if it dies); `runyard server start` adds a supervisor.",
                      markup=False)
        elif info["restarts"]:
            ago = fmt_duration(time.time() - info["restarted_at"])
            con.print(f"Its supervisor (pid {info['supervisor_pid']}) restarted it {info['restarts']} "
                      f"time{'s' if info['restarts'] != 1 else ''}, last {ago} ago.", markup=False)
        else:
            con.print(f"Its supervisor (pid {info['supervisor_pid']}) restarts it if it dies; it has not had to.",
                      markup=False)
    if remote:
        con.print(f"Note: RUNYARD_SERVER is set, so commands use {remote} instead.", markup=False)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local server and its supervisor (SIGTERM, then SIGKILL after 10 s).

    Examples:

        $ runyard server stop
    """
    from runyard._local import server_status as status
    from runyard._local import stop_server

    info = status()
    if stop_server():
        pid = f" (pid {info['pid']})" if info else ""
        console().print(f"Stopped the local Runyard server{pid}.", markup=False)
    else:
        console().print("No local Runyard server is running.", markup=False)


# ------------------------------------------------------------------------- db
def _engine() -> Engine:
    from runyard import config
    from runyard.store import make_engine

    return make_engine(config.database_url())


def _db_call(fn: Callable[[], T], url: str) -> T:
    """Run ``fn()``; database driver errors become a RunyardError naming the (masked) URL."""
    from sqlalchemy.exc import SQLAlchemyError

    from runyard.config import mask_url

    try:
        return fn()
    except RunyardError:
        raise
    except SQLAlchemyError as e:
        raise RunyardError(
            f"The database {mask_url(url)} failed: {type(e).__name__}: {str(e).splitlines()[0]}",
            "Check RUNYARD_DATABASE_URL and that the database is up.",
        ) from e


@db_app.command("upgrade")
def db_upgrade(json_: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """Apply pending migrations to RUNYARD_DATABASE_URL (default: SQLite in RUNYARD_HOME).

    The server applies them at start too; run this by hand before upgrading a team server.

    Examples:

        $ runyard db upgrade
    """
    from runyard import config
    from runyard.store import current_revision, upgrade

    url = config.database_url()
    engine = _engine()
    try:
        before = _db_call(lambda: current_revision(engine), url)
        rev = _db_call(lambda: upgrade(engine), url)
    finally:
        engine.dispose()
    if json_:
        print_json({"database": config.mask_url(url), "previous": before, "revision": rev})
        return
    if before == rev:
        console().print(f"The database {config.mask_url(url)} is already at the newest revision {rev}.", markup=False)
    else:
        console().print(f"Upgraded the database {config.mask_url(url)} from {before or 'empty'} to revision {rev}.",
                        markup=False)


@db_app.command("current")
def db_current(json_: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """Show the database's schema revision and the newest one this Runyard knows.

    Examples:

        $ runyard db current
    """
    from runyard import config
    from runyard.store import current_revision, head_revision

    url = config.database_url()
    engine = _engine()
    try:
        rev = _db_call(lambda: current_revision(engine), url)
    finally:
        engine.dispose()
    head = head_revision()
    if json_:
        print_json({"database": config.mask_url(url), "revision": rev, "head": head, "up_to_date": rev == head})
        return
    con = console()
    if rev == head:
        con.print(f"The database {config.mask_url(url)} is at revision {rev} (the newest).", markup=False)
    else:
        con.print(f"The database {config.mask_url(url)} is at revision {rev or 'none (empty)'}; the newest is {head}. "
                  "Run `runyard db upgrade`.", markup=False)

