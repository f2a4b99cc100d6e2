"""Accounts from the command line: ``runyard login/logout/whoami/passwd``, ``runyard tokens …``,
``runyard admin …`` (users and the audit log) and ``runyard projects share/unshare/members/visibility``.

Passwords are read from a hidden prompt, or from the first line of stdin with
``--password-stdin``; never from an argument (it would sit in the shell history and ``ps``).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import typer

from runyard.cli._app import app, get_client
from runyard.cli._output import ago, console, fmt_time, print_json, safe
from runyard.cli._projects import projects_app
from runyard.errors import InvalidInput

__all__: list[str] = []

tokens_app = typer.Typer(name="tokens", no_args_is_help=True, help="Personal API tokens: create, list, revoke.")
admin_app = typer.Typer(name="admin", no_args_is_help=True, help="Server administration: users and the audit log (admins).")
app.add_typer(tokens_app)
app.add_typer(admin_app)

_PASSWORD_STDIN = typer.Option(False, "--password-stdin", help="Read the password from the first line of stdin.")


def _read_password(from_stdin: bool, prompt: str = "Password", *, confirm: bool = False) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInput("--password-stdin got an empty line.",
                               "Pipe the password in: `echo \"$PW\" | runyard ... --password-stdin`.")
        return line
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


# ---------------------------------------------------------------- sign-in
@app.command("login")
def login(
    url: str = typer.Argument(..., help="The server, e.g. https://runyard.example.org"),
    username: str | None = typer.Option(None, "--username", "-u", help="Your username (prompted if missing)."),
    password_stdin: bool = _PASSWORD_STDIN,
    token: str | None = typer.Option(None, "--token", help="Save this existing API token instead of signing in with a password."),
) -> None:
    """Sign in to a server and save a personal token for it in $RUNYARD_HOME/credentials (mode 0600).

    The CLI and SDK then use that server and token; RUNYARD_TOKEN overrides the token.

    Examples (a server with users; `--password-stdin` reads the password from a pipe):

        $ runyard login https://runyard.example.org -u alice
    """
    from runyard._local import save_credentials
    from runyard.client import Client

    url = url.rstrip("/")
    if "://" not in url:
        raise InvalidInput(f"The server URL {url!r} has no scheme.", f"Write it in full, e.g. https://{url}.")
    if token is None:
        user = username or typer.prompt("Username")
        password = _read_password(password_stdin)
        with Client(url) as client:
            client.login(user, password)
            created = client.create_token(f"cli on {socket.gethostname()}")
            client.logout()
        token = created["token"]
    with Client(url, token) as client:
        me = client.me()
    if me.get("kind") != "user":
        raise InvalidInput(f"The token does not belong to a user (it is a {me.get('kind')} token).", "Use a personal token.")
    path = save_credentials(url, token)
    console().print(f"Logged in to {url} as {me['user']['username']}; the token is saved in {path}.", markup=False)


@app.command("logout")
def logout() -> None:
    """Revoke the saved token on its server and forget it.

    Examples:

        $ runyard logout
    """
    from runyard._local import forget_credentials, saved_credentials
    from runyard.client import Client
    from runyard.errors import RunyardError

    creds = saved_credentials()
    if creds is None or creds[1] is None:
        console().print("Not logged in to any server.", markup=False)
        return
    url, token = creds
    try:
        with Client(url, token) as client:
            token_id = client.me().get("token_id")
            if token_id is not None:
                client.revoke_token(token_id)
    except RunyardError as e:  # a token already revoked or a server gone: still forget it here
        console().print(f"Could not revoke the token on {url} ({e.message}); forgetting it here anyway.", markup=False)
    forget_credentials()
    console().print(f"Logged out of {url}.", markup=False)


@app.command("whoami")
def whoami(json_: bool = typer.Option(False, "--json", help="Print the answer of GET /api/v1/me.")) -> None:
    """Show who the CLI acts as on its server (or that the server is in single-user local mode).

    Examples:

        $ runyard whoami
    """
    with get_client() as client:
        me = client.me()
    if json_:
        print_json(me)
        return
    if me["mode"] == "local" and me["kind"] == "local":
        console().print(f"{client.base_url}: single-user local mode (no sign-in).", markup=False)
    elif me.get("user"):
        role = " (admin)" if me["is_admin"] else ""
        console().print(f"{me['user']['username']}{role} on {client.base_url}", markup=False)
    else:
        console().print(f"{me['kind']} on {client.base_url}", markup=False)


@app.command("passwd")
def passwd(password_stdin: bool = typer.Option(False, "--password-stdin",
                                               help="Read the old then the new password from two lines of stdin.")) -> None:
    """Change your password (your web sessions end; tokens stay valid).

    Examples:

        $ runyard passwd
    """
    with get_client() as client:
        me = client.me()
        if not me.get("user"):
            raise InvalidInput("There is no signed-in user to change the password of.", "Run `runyard login URL` first.")
        old = _read_password(password_stdin, "Current password")
        new = _read_password(password_stdin, "New password", confirm=True)
        client.set_password(me["user"]["username"], new, old_password=old)
    console().print("Password changed.", markup=False)


# ----------------------------------------------------------------- tokens
@tokens_app.command("create")
def tokens_create(
    name: str = typer.Option("", "--name", "-n", help="What the token is for, e.g. ci."),
    expires_in_days: float | None = typer.Option(None, "--expires-in-days", min=0.001, help="Expiry; none: never."),
    json_: bool = typer.Option(False, "--json", help="Print the token and its record as JSON."),
) -> None:
    """Create a personal API token. The secret is printed once: store it now.

    Examples (on a server with users):

        $ runyard tokens create --name ci --expires-in-days 90
    """
    with get_client() as client:
        created = client.create_token(name, expires_in_days)
    if json_:
        print_json(created)
        return
    info = created["info"]
    console().print(f"Token {info['id']} ({info['name'] or 'unnamed'}) created; it is shown only now:", markup=False)
    typer.echo(safe(created["token"]))


@tokens_app.command("list")
def tokens_list(json_: bool = typer.Option(False, "--json", help="Print the tokens as a JSON list.")) -> None:
    """List your personal tokens (never their secrets).

    Examples:

        $ runyard tokens list --json
    """
    from rich.markup import escape
    from rich.table import Table

    with get_client() as client:
        items = client.list_tokens()
    if json_:
        print_json(items)
        return
    table = Table(box=None, header_style="bold")
    for col in ("ID", "NAME", "CREATED", "EXPIRES", "LAST USED", "STATE"):
        table.add_column(col)
    for t in items:
        state = "revoked" if t.get("revoked_at") else "active"
        table.add_row(str(t["id"]), escape(t.get("name") or ""), ago(t["created_at"]),
                      fmt_time(t["expires_at"]) if t.get("expires_at") else "never", ago(t.get("last_used_at")), state)
    console().print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int = typer.Argument(..., help="The token's id (see `runyard tokens list`).")) -> None:
    """Revoke a token; it stops working at once.

    Examples:

        $ runyard tokens revoke 3
    """
    with get_client() as client:
        client.revoke_token(token_id)
    console().print(f"Token {token_id} revoked.", markup=False)


@tokens_app.command("revoke-run")
def tokens_revoke_run(run_id: int = typer.Argument(..., help="The run whose token ends.")) -> None:
    """End a run's token at once (admins and owners of the run's project): the run can report no more.

    A run's token also ends by itself RUNYARD_RUN_TOKEN_GRACE_S after the run ends; a
    restarted run gets a new one.

    Examples:

        $ runyard tokens revoke-run 42
    """
    with get_client() as client:
        out = client.revoke_run_token(run_id)
    state = "revoked" if out["revoked"] else "had no valid token; nothing changed"
    console().print(f"Run {run_id}'s token {state}." if out["revoked"] else f"Run {run_id} {state}.", markup=False)


# ------------------------------------------------------------------ admin
@admin_app.command("create-user")
def admin_create_user(
    username: str = typer.Argument(..., help="1-64 lowercase letters, digits, '.', '-' or '_'."),
    email: str = typer.Option("", "--email", help="The user's email."),
    admin: bool = typer.Option(False, "--admin", help="Make the user an admin."),
    password_stdin: bool = _PASSWORD_STDIN,
    json_: bool = typer.Option(False, "--json", help="Print the created user as JSON."),
) -> None:
    """Create a user (admins; on a server in local mode, this ends local mode).

    Examples (it prompts for the password; `--password-stdin` reads it from a pipe):

        $ runyard admin create-user alice --email alice@example.org
    """
    password = _read_password(password_stdin, f"Password for {username}", confirm=True)
    with get_client() as client:
        user = client.create_user(username, password, email=email, is_admin=admin)
    if json_:
        print_json(user)
        return
    console().print(f"Created {'admin' if admin else 'user'} {user['username']}.", markup=False)


@admin_app.command("users")
def admin_users(json_: bool = typer.Option(False, "--json", help="Print the users as a JSON list.")) -> None:
    """List users.

    Examples:

        $ runyard admin users
    """
    from rich.markup import escape
    from rich.table import Table

    with get_client() as client:
        items = client.list_users()
    if json_:
        print_json(items)
        return
    table = Table(box=None, header_style="bold")
    for col in ("USERNAME", "EMAIL", "ADMIN", "STATE", "CREATED"):
        table.add_column(col)
    for u in items:
        table.add_row(escape(u["username"]), escape(u.get("email") or ""), "yes" if u["is_admin"] else "",
                      "disabled" if u["disabled"] else "active", ago(u["created_at"]))
    console().print(table)


def _update(username: str, done: str, **fields: Any) -> None:
    with get_client() as client:
        client.update_user(username, **fields)
    console().print(f"{username} {done}.", markup=False)


@admin_app.command("disable")
def admin_disable(username: str = typer.Argument(...)) -> None:
    """Disable a user: sign-in and their tokens stop working at once.

    Examples:

        $ runyard admin disable bob
    """
    _update(username, "disabled", disabled=True)


@admin_app.command("enable")
def admin_enable(username: str = typer.Argument(...)) -> None:
    """Enable a disabled user again.

    Examples:

        $ runyard admin enable bob
    """
    _update(username, "enabled", disabled=False)


@admin_app.command("promote")
def admin_promote(username: str = typer.Argument(...)) -> None:
    """Make a user an admin.

    Examples:

        $ runyard admin promote bob
    """
    _update(username, "is an admin now", is_admin=True)


@admin_app.command("demote")
def admin_demote(username: str = typer.Argument(...)) -> None:
    """Take a user's admin rights away (the last enabled admin cannot be demoted).

    Examples:

        $ runyard admin demote bob
    """
    _update(username, "is no longer an admin", is_admin=False)


@admin_app.command("set-password")
def admin_set_password(username: str = typer.Argument(...), password_stdin: bool = _PASSWORD_STDIN) -> None:
    """Reset a user's password (their web sessions end).

    Examples:

        $ runyard admin set-password bob
    """
    with get_client() as client:
        me = client.me()
        if me.get("user") and me["user"]["username"] == username:
            # The server asks for the old password then, which this command never sends.
            raise InvalidInput("`runyard admin set-password` resets other users' passwords, not your own.",
                               "Change your own with `runyard passwd` (it asks for the current one).")
        password = _read_password(password_stdin, f"New password for {username}", confirm=True)
        client.set_password(username, password)
    console().print(f"Password of {username} reset.", markup=False)


@admin_app.command("audit")
def admin_audit(
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=10000, help="How many events, newest first."),
    action: str | None = typer.Option(None, "--action", help="Only this action, e.g. login, token.create, project.share."),
    actor: str | None = typer.Option(None, "--actor", help="Only events by this user."),
    json_: bool = typer.Option(False, "--json", help="Print the events as a JSON list."),
) -> None:
    """Show the audit log: sign-ins, token changes, sharing and admin actions.

    Examples:

        $ runyard admin audit --action login --json
    """
    from rich.markup import escape
    from rich.table import Table

    with get_client() as client:
        items = client.audit(limit=limit, action=action, actor=actor)
    if json_:
        print_json(items)
        return
    table = Table(box=None, header_style="bold")
    for col in ("TIME", "ACTOR", "ACTION", "TARGET", "ADDRESS", "OK", "DETAIL"):
        table.add_column(col)
    for e in items:
        detail = ", ".join(f"{k}={v}" for k, v in (e.get("detail") or {}).items())
        table.add_row(fmt_time(e["ts"]), escape(e["actor"]), escape(e["action"]), escape(e.get("target") or ""),
                      escape(e.get("address") or ""), "yes" if e["success"] else "NO", escape(detail))
    console().print(table)


# ---------------------------------------------------------------- sharing
@projects_app.command("share")
def projects_share(
    project: str = typer.Argument(...),
    username: str = typer.Argument(...),
    role: str = typer.Option("viewer", "--role", "-r", help="viewer (read), editor (read and write) or owner (also share)."),
) -> None:
    """Share a project with a user (owners and admins).

    Examples (on a server with users):

        $ runyard projects share digits bob --role editor
    """
    if role not in ("viewer", "editor", "owner"):
        raise InvalidInput(f"Unknown role {role!r}.", "Use viewer, editor or owner.")
    with get_client() as client:
        client.share_project(project, username, role)
    console().print(f"Shared {project} with {username} as {role}.", markup=False)


@projects_app.command("unshare")
def projects_unshare(project: str = typer.Argument(...), username: str = typer.Argument(...)) -> None:
    """Stop sharing a project with a user.

    Examples:

        $ runyard projects unshare digits bob
    """
    with get_client() as client:
        client.unshare_project(project, username)
    console().print(f"{username} is no longer a member of {project}.", markup=False)


@projects_app.command("members")
def projects_members(project: str = typer.Argument(...),
                     json_: bool = typer.Option(False, "--json", help="Print owner, visibility and members as JSON.")) -> None:
    """Show a project's owner, visibility and members.

    Examples:

        $ runyard projects members demo
    """
    with get_client() as client:
        answer = client.list_members(project)
    if json_:
        print_json(answer)
        return
    lines = [f"{project}: {answer['visibility']}, owner {answer['owner'] or '(none)'}"]
    lines += [f"  {m['username']}  {m['role']}" for m in answer["items"]] or ["  no members"]
    console().print("\n".join(lines), markup=False)


@projects_app.command("visibility")
def projects_visibility(project: str = typer.Argument(...),
                        visibility: str = typer.Argument(..., help="private (members only) or public (every user may read).")) -> None:
    """Make a project private or public (owners and admins).

    Examples:

        $ runyard projects visibility demo public
    """
    if visibility not in ("private", "public"):
        raise InvalidInput(f"Unknown visibility {visibility!r}.", "Use private or public.")
    with get_client() as client:
        client.update_project(project, visibility=visibility)
    console().print(f"{project} is {visibility} now.", markup=False)
