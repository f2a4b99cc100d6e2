"""Who is asking, and may they: authentication, CSRF, sign-in rate limits and access checks.

Every request under ``/api/v1`` passes :func:`authenticate` (a dependency of the API
router), which sets ``request.state.principal``:

- ``Authorization: Bearer TOKEN``: a personal token (the user) or a run token (that run only);
- the ``runyard_session`` cookie set by ``POST /auth/login``: the user; writes must send
  the ``X-CSRF-Token`` header, whose value the login answer and the readable
  ``runyard_csrf`` cookie carry (double submit, derived from the session secret);
- nothing: the *local* principal while the server is in single-user local mode
  (``auth_mode="auto"`` and no users yet), else anonymous, refused with 401 on every
  route but :data:`PUBLIC_ENDPOINTS`.

Run tokens pass only routes marked with :func:`run_token_route`; the route's own check
(:func:`require_run`, :func:`require_snapshot`, :func:`require_blob`) then keeps them to
their run. Users pass routes by their project role: the checks below are the only place
the rules live (docs/operating.md lists them).

A resource the principal may not read answers 404 like a missing one, so private
project names do not leak; one they may read but not change answers 403.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from runyard.errors import Conflict, Forbidden, NotFound, RateLimited, RunyardError, Unauthorized
from runyard.store import AccessInfo, AuthStore, User

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "PUBLIC_ENDPOINTS",
    "ROLE_RANK",
    "SESSION_COOKIE",
    "AUTH_MODES",
    "Auth",
    "LoginLimiter",
    "Principal",
    "authenticate",
    "check_mode",
    "client_address",
    "csrf_for",
    "is_loopback",
    "principal",
    "project_name_taken",
    "public_route",
    "require_admin",
    "require_backends",
    "require_blob",
    "require_experiment",
    "require_project",
    "require_project_write",
    "require_run",
    "require_snapshot",
    "require_user",
    "run_reader",
    "run_token_route",
    "run_writer",
    "session_principal",
    "token_principal",
    "visible_project_ids",
]

SESSION_COOKIE = "runyard_session"
CSRF_COOKIE = "runyard_csrf"
CSRF_HEADER = "X-CSRF-Token"
ROLE_RANK = {"viewer": 1, "editor": 2, "owner": 3}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

PUBLIC_ENDPOINTS: set[Callable[..., Any]] = set()
_RUN_TOKEN_ENDPOINTS: set[Callable[..., Any]] = set()


def public_route(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an endpoint as open to anonymous callers (health, sign-in, sign-out)."""
    PUBLIC_ENDPOINTS.add(fn)
    return fn


def run_token_route(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an endpoint as usable with a run token (its check must still confine it to the run)."""
    _RUN_TOKEN_ENDPOINTS.add(fn)
    return fn


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server unreachable from other machines."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def csrf_for(session_secret: str) -> str:
    """The CSRF token of a session: derived from its secret, so only its holder can know it."""
    return hmac.new(session_secret.encode(), b"runyard-csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    kind: Literal["local", "user", "run", "anonymous"]
    user: User | None = None
    run_id: int | None = None
    token_id: int | None = None
    via: Literal["none", "token", "cookie"] = "none"

    @property
    def is_admin(self) -> bool:
        return self.kind == "local" or (self.kind == "user" and self.user is not None and self.user.is_admin)

    @property
    def name(self) -> str:
        """How the audit log names the caller."""
        if self.kind == "user" and self.user is not None:
            return self.user.username
        if self.kind == "run":
            return f"run:{self.run_id}"
        return self.kind


class LoginLimiter:
    """Sign-in attempts per (username, address) and per address in a fixed window, in the database.

    Each attempt is counted *before* its password is checked, with one atomic increment
    (:meth:`AuthStore.count_login_attempt`): of 12 concurrent guesses with a limit of 5, 5
    are checked and 7 answered 429, also across several server processes sharing the
    database. A right password gives its attempt back (and clears the user's count), so
    only failures use up the limit. The address is the one uvicorn reports for the
    connection (see the proxy settings for X-Forwarded-For).
    """

    def __init__(self, store: AuthStore, max_failures: int = 5, window_s: float = 300.0) -> None:
        self.store = store
        self.max_failures = max_failures
        self.max_per_address = max_failures * 4
        self.window_s = window_s

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"{username}\n{address}", f"\n{address}"

    def attempt(self, username: str, address: str) -> None:
        """Count an attempt; raise RateLimited (nothing counted) when this user at this address, or
        this address, used up its attempts in the window."""
        pair, addr = self._keys(username, address)
        allowed, wait = self.store.count_login_attempt([(pair, self.max_failures), (addr, self.max_per_address)],
                                                       self.window_s)
        if not allowed:
            raise RateLimited(
                f"Too many failed sign-ins from {address}; sign-in is paused for {wait:.0f} s.",
                "Wait, then try again with the right password; an admin can reset it with `runyard admin set-password`.",
                retry_after_s=wait,
            )

    def succeeded(self, username: str, address: str) -> None:
        self.store.login_succeeded(list(self._keys(username, address)))

    def give_back(self, username: str, address: str) -> None:
        """An attempt that checked no password (the server was too busy to): it does not count."""
        self.store.login_succeeded(list(self._keys(username, address)), reset_first=False)


class Auth:
    """The server's access-control state: the store, the mode and the sign-in limiter.

    Args:
        store: users, tokens, members and audit.
        mode: ``"auto"``: single-user local mode while no user exists (servers on
            127.0.0.1), sign-in required from the first user on; ``"required"``: always;
            ``"off"``: never (loopback servers only: ``serve`` refuses it elsewhere).
    """

    def __init__(self, store: AuthStore, mode: str = "auto", *, limiter: LoginLimiter | None = None) -> None:
        check_mode(mode)
        self.store = store
        self.mode = mode
        self.limiter = limiter or LoginLimiter(store, int(os.environ.get("RUNYARD_LOGIN_MAX_FAILURES", "5")),
                                               float(os.environ.get("RUNYARD_LOGIN_WINDOW_S", "300")))
        self._has_users = False  # users are disabled, never deleted: once true it stays true
        self._counted_at = -1.0

    def local_mode(self) -> bool:
        """Whether requests without credentials act as the local user (mode "auto" and no user yet).

        While there is no user, the users are counted at most every ``_COUNT_USERS_EVERY_S``
        (every request would otherwise pay a query); a user created through this server ends
        local mode at once (``note_user_created``), one created by another process sharing the
        database within that time.
        """
        if self.mode == "off":
            return True
        if self.mode == "required" or self._has_users:
            return False
        now = time.monotonic()
        if now - self._counted_at >= _COUNT_USERS_EVERY_S:
            self._has_users = self.store.count_users() > 0
            self._counted_at = now
        return not self._has_users

    def note_user_created(self) -> None:
        self._has_users = True


AUTH_MODES = ("auto", "required", "off")
_COUNT_USERS_EVERY_S = 0.5


def check_mode(mode: str) -> str:
    if mode not in AUTH_MODES:
        raise RunyardError(f"Unknown auth mode {mode!r} (RUNYARD_AUTH).", f"Use one of: {', '.join(AUTH_MODES)}.")
    return mode


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _auth(request: Request) -> Auth:
    return request.app.state.auth


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("The Authorization header must be 'Bearer TOKEN'.", "Send the token from `runyard tokens create`.")
    return value.strip()


def token_principal(auth: Auth, secret: str) -> Principal:
    """The principal of an API token (personal or run token); Unauthorized for an unknown, revoked or expired one."""
    owner = auth.store.resolve_token(secret)
    if owner is None or owner.kind == "session":
        why = auth.store.token_refusal(secret) if owner is None and secret.startswith("ryr_") else None
        if why is not None:
            raise Unauthorized(why, "A run's token works only while its run is active: a restarted run "
                                    "(POST /api/v1/runs/RUN/restart) gets a new one; else use a personal token.")
        raise Unauthorized("The API token is unknown, expired or revoked.",
                           "Create a new one with `runyard tokens create`, or sign in again with `runyard login URL`.")
    if owner.kind == "run":
        return Principal("run", run_id=owner.run_id, token_id=owner.token_id, via="token")
    return Principal("user", user=owner.user, token_id=owner.token_id, via="token")


def _resolve(request: Request, auth: Auth) -> Principal | None:
    """The principal named by the request's credentials; None without credentials; 401 for bad ones."""
    secret = _bearer(request)
    if secret is not None:
        return token_principal(auth, secret)
    return session_principal(request, auth)


def session_principal(request: Request, auth: Auth) -> Principal | None:
    """The signed-in user of the session cookie (CSRF checked for writes); None without the cookie."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        owner = auth.store.resolve_token(session)
        if owner is None or owner.kind != "session" or owner.user is None:
            raise Unauthorized("Your session ended (signed out, expired or revoked).", "Sign in again.")
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), csrf_for(session).encode()):
                raise Forbidden(f"A write with a session cookie needs the {CSRF_HEADER} header from the sign-in answer.",
                                f"Send the value of the {CSRF_COOKIE} cookie as the {CSRF_HEADER} header.")
        return Principal("user", user=owner.user, token_id=owner.token_id, via="cookie")
    return None


async def authenticate(request: Request) -> Principal:
    """The API router's dependency: identify the caller and refuse anonymous or out-of-scope ones.

    Async, so a request without credentials costs no thread hand-off; credentials are
    resolved (a database read) in the thread pool.
    """
    auth = _auth(request)
    endpoint = request.scope.get("endpoint")
    public = endpoint in PUBLIC_ENDPOINTS
    try:
        if "authorization" in request.headers or SESSION_COOKIE in request.cookies:
            found = await run_in_threadpool(_resolve, request, auth)
        else:
            found = None
    except Unauthorized:
        if not public:
            raise
        found = None
    if found is None:
        found = Principal("local") if auth.local_mode() else Principal("anonymous")
    request.state.principal = found
    if public:
        return found
    if found.kind == "anonymous":
        raise Unauthorized("This server requires sign-in.",
                           "Run `runyard login URL` (CLI and SDK), or send 'Authorization: Bearer TOKEN'.")
    if found.kind == "run" and endpoint not in _RUN_TOKEN_ENDPOINTS:
        raise Forbidden(f"A run's token may only report to its own run (run {found.run_id}).",
                        "Use a personal token (`runyard tokens create`) for anything else.")
    return found


def principal(request: Request) -> Principal:
    """The caller, as set by :func:`authenticate` (local when auth is not installed, e.g. bare test apps)."""
    return getattr(request.state, "principal", None) or Principal("local")


# ------------------------------------------------------------------ checks
def require_user(request: Request) -> Principal:
    """A person (a user, or the local one) — not a run token, not anonymous."""
    p = principal(request)
    if p.kind not in ("user", "local"):
        raise Forbidden("This needs a user's credentials, not a run's token.", "Use a personal token (`runyard tokens create`).")
    return p


def require_admin(request: Request) -> Principal:
    p = require_user(request)
    if not p.is_admin:
        raise Forbidden(f"Only admins may do this, and {p.name} is not one.", "Ask an admin (`runyard admin users` lists them).")
    return p


def project_role(request: Request, info: AccessInfo) -> str | None:
    """The principal's effective role in a project (None: may not see it)."""
    p = principal(request)
    if p.is_admin:
        return "owner"
    if p.kind != "user" or p.user is None:
        return None
    if info.owner_id == p.user.id:
        return "owner"
    role = _auth(request).store.role_of(info.project_id, p.user.id)
    if role is None and info.visibility == "public":
        return "viewer"
    return role


def _check_role(request: Request, info: AccessInfo, need: str, hidden: NotFound) -> AccessInfo:
    role = project_role(request, info)
    if role is None:
        raise hidden
    if ROLE_RANK[role] < ROLE_RANK[need]:
        who = principal(request).name
        article = "an" if role[0] in "aeiou" else "a"
        raise Forbidden(f"{who} is {article} {role} of project {info.project!r}; this needs {need}.",
                        f"Ask an owner of the project: `runyard projects share {info.project} {who} --role {need}`.")
    return info


def require_project(request: Request, name: str, need: str = "viewer") -> AccessInfo:
    """The project if the principal has at least role ``need`` (NotFound if they may not see it)."""
    p = principal(request)
    missing = NotFound(f"No project named {name!r}.", "List projects with `runyard projects`.")
    if p.kind == "run":
        raise Forbidden(f"A run's token cannot use project {name!r}.", "Use a personal token for project operations.")
    info = _auth(request).store.project_access(name)
    if info is None:
        raise missing
    return _check_role(request, info, need, missing)


def require_project_write(request: Request, name: str) -> int | None:
    """Before creating something in project ``name``: editor rights, or the right to create the project.

    Returns the owner id a new project gets (the caller; None for the local principal).
    """
    p = require_user(request)
    # An admin (the local user too) is an owner of every project: nothing to read.
    if not p.is_admin:
        info = _auth(request).store.project_access(name)
        if info is not None:
            if project_role(request, info) is None:
                raise project_name_taken(name)  # as for a project they can see: its name is taken
            _check_role(request, info, "editor", NotFound(f"No project named {name!r}.", "List projects with `runyard projects`."))
    return p.user.id if p.user is not None else None


def project_name_taken(name: str) -> Conflict:
    """The one refusal to create a project whose name exists, whether the caller may see it or not
    (a different answer for a private project would confirm that it exists)."""
    return Conflict(f"A project named {name!r} cannot be created: the name is taken or reserved.",
                    "Pick another name; if you should have access to that project, ask its owner to share it.")


def require_experiment(request: Request, experiment_id: int, need: str = "viewer") -> AccessInfo:
    missing = NotFound(f"No experiment with id {experiment_id}.", "List experiments with `runyard experiments`.")
    if principal(request).kind == "run":
        raise Forbidden("A run's token cannot read experiments.", "Use a personal token.")
    info = _auth(request).store.experiment_access(experiment_id)
    if info is None:
        raise missing
    return _check_role(request, info, need, missing)


def require_run(request: Request, run_id: int, need: str = "viewer") -> AccessInfo | None:
    """A run the principal may read (viewer) or write (editor); a run token only its own run."""
    p = principal(request)
    if p.kind == "run":
        if p.run_id != run_id:
            raise Forbidden(f"This token belongs to run {p.run_id}; it cannot use run {run_id}.",
                            "Each run's token reaches only its own run.")
        return None
    missing = NotFound(f"No run with id {run_id}.", "List runs with `runyard ls`.")
    info = _auth(request).store.run_access(run_id)
    if info is None:
        if p.is_admin:
            return None  # the route answers its own 404
        raise missing
    return _check_role(request, info, need, missing)


async def run_reader(run_id: int, request: Request) -> None:
    """Route dependency: the caller may read run ``run_id`` (viewer, or the run's own token)."""
    await _require_run_async(request, run_id, "viewer")


async def run_writer(run_id: int, request: Request) -> None:
    """Route dependency: the caller may write to run ``run_id`` (editor, or the run's own token)."""
    await _require_run_async(request, run_id, "editor")


async def _require_run_async(request: Request, run_id: int, need: str) -> None:
    """``require_run`` without a thread hand-off where no database read is needed: a run's own
    token (a runner's reports) and the local user (admin). Others read the project's access."""
    kind = principal(request).kind
    if kind == "run":
        require_run(request, run_id, need)  # its own run only: no database read
    elif kind != "local":  # the local user may use every run (a missing one gets the route's 404)
        await run_in_threadpool(require_run, request, run_id, need)


def require_snapshot(request: Request, snapshot_id: str) -> None:
    """Snapshots are content-addressed (unguessable ids): any user may read one; a run only its own
    and those of the dataset versions recorded for it."""
    p = principal(request)
    if p.kind == "run" and (p.run_id is None or (_auth(request).store.run_snapshot(p.run_id) != snapshot_id
                                                 and snapshot_id not in _run_dataset_snapshots(request, p.run_id))):
        raise Forbidden(f"Run {p.run_id}'s token may read only its own snapshot and its datasets'.",
                        "Each run's token reaches only its own run; record a dataset it reads with runyard.use_dataset.")


def require_blob(request: Request, digest: str) -> None:
    """Blobs are content-addressed: any user may read one; a run only the files of its own snapshot and of the
    dataset versions recorded for it (``datasets:`` in runyard.yml, ``runyard.use_dataset``)."""
    p = principal(request)
    if p.kind != "run":
        return
    store = _auth(request).store
    snap = store.run_snapshot(p.run_id) if p.run_id is not None else None
    if snap is not None and store.snapshot_has_blob(snap, digest):
        return
    # --- lineage: the blobs of the dataset versions the run reads ---
    main = request.app.state.store
    if p.run_id is not None and any(digest in main.snapshot_digests(s) for s in _run_dataset_snapshots(request, p.run_id)):
        return
    raise Forbidden(f"Run {p.run_id}'s token may read only the files of its own snapshot and of its datasets.",
                    "Each run's token reaches only its own run; record a dataset it reads with runyard.use_dataset.")


def _run_dataset_snapshots(request: Request, run_id: int) -> list[str]:
    """The snapshots of the dataset versions recorded for run ``run_id`` (``run_datasets``)."""
    return request.app.state.store.run_dataset_snapshot_ids(run_id)


def sign_in_on(request: Request) -> bool:
    """Whether the server requires sign-in (not single-user local mode)."""
    auth = getattr(request.app.state, "auth", None)
    return auth is not None and not auth.local_mode()


def require_backends(request: Request, project: str, backends: Sequence[str], entries: Mapping[str, Any]) -> None:
    """Before runs of ``project`` go to ``backends``: every one of them admits the principal (``allow:``
    in backends.yml, see :func:`runyard.backends.config.policy_refusal`). A name that is not configured
    is left to the scheduler's own check.

    Raises:
        Forbidden: naming the backend, who may use it and who may change that.
    """
    from runyard.backends.config import Submitter, policy_refusal

    p = principal(request)
    if p.is_admin:
        return
    sign_in = sign_in_on(request)
    role: str | None = "editor"  # a run's token writes to its own run: its project's editor
    if p.kind == "user":
        info = _auth(request).store.project_access(project)
        # A new project (or, when only asked, one the caller may not see): the caller would own it.
        role = (project_role(request, info) if info is not None else None) or "owner"
    who = Submitter(p.user.username if p.user is not None else None, False, project, role)
    for name in backends:
        entry = entries.get(name)
        if entry is None:
            continue
        refused = policy_refusal(entry, who, sign_in=sign_in)
        if refused is not None:
            raise Forbidden(*refused)


def visible_project_ids(request: Request) -> list[int] | None:
    """Projects the principal may list (None: all of them)."""
    p = principal(request)
    if p.is_admin:
        return None
    if p.kind != "user" or p.user is None:
        return []
    return _auth(request).store.visible_project_ids(p.user.id)


def audit(request: Request, action: str, *, target: str = "", success: bool = True, actor: str | None = None,
          **detail: Any) -> None:
    """Record an audit event for this request (never pass secrets in ``detail``)."""
    _auth(request).store.audit(actor or principal(request).name, action, target=target, address=client_address(request),
                               success=success, detail=detail)
