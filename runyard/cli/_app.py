"""The root Typer app, its global options and the one place CLI errors are printed.

Command groups live in their own modules (``_projects``, ``_runs``, ``_server``…)
and register themselves on :data:`app` when ``runyard.cli`` imports them.

Every :class:`~runyard.errors.RunyardError` a command raises is printed as
``Error: <message>`` and ``Hint: <hint>`` on stderr without a traceback, exit code
1; usage errors exit with 2; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from runyard.errors import RunyardError

if TYPE_CHECKING:
    from runyard.client import Client

__all__ = ["RunyardGroup", "app", "get_client", "print_error"]


def print_error(message: str, hint: str | None = None) -> None:
    """``Error: message`` and ``Hint: hint`` on stderr, red on a terminal."""
    from rich.markup import escape

    from runyard.cli._output import err_console

    con = err_console()
    con.print(f"[bold red]Error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        con.print(f"[bold]Hint:[/] {escape(hint)}", soft_wrap=True)


def _debug(ctx: typer.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("RUNYARD_DEBUG", "") not in ("", "0")


class RunyardGroup(TyperGroup):
    """The root command: turns exceptions into ``Error:``/``Hint:`` lines and exit codes."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt, BrokenPipeError):
            # Usage errors (TyperException) belong to Typer: exit code 2 and its usage text.
            # A closed pipe (`runyard ls | head`) is Typer's too: it exits quietly.
            raise
        except RunyardError as e:
            if _debug(ctx):
                traceback.print_exc(file=sys.stderr)
            print_error(e.message, e.hint)
            raise typer.Exit(1) from e
        except Exception as e:
            if _debug(ctx):
                traceback.print_exc(file=sys.stderr)
                print_error(f"{type(e).__name__}: {e}")
            else:
                print_error(f"Unexpected {type(e).__name__}: {e}",
                            "This is a bug in Runyard. Rerun with `runyard --debug ...` and report the traceback.")
            raise typer.Exit(1) from e


app = typer.Typer(
    name="runyard",
    cls=RunyardGroup,
    help="Runyard: self-hosted machine-learning experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from runyard import __version__

        typer.echo(f"runyard {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors (also RUNYARD_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Runyard: self-hosted machine-learning experiments.

    The CLI talks to the server named by RUNYARD_SERVER, or to the one you logged
    in to, or else to a local server it starts on demand (see `runyard server status`).
    """


def get_client() -> Client:
    """The client for the configured server (starting the embedded one if needed)."""
    from runyard.client import Client

    return Client.from_env()
