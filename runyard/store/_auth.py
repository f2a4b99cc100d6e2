"""Users, tokens, project members and the audit log: the store side of access control.

Secrets never rest in the database: passwords are hashed with argon2 (slow, salted),
tokens with sha256 (they are 256-bit random, so a fast hash is enough and lets a
request find its token by hash in one indexed lookup). A secret is returned once,
by the call that creates it.

Thread safety: like :class:`~runyard.store.Store`, one ``AuthStore`` is shared by all
request threads; each method opens its own transaction.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from runyard.errors import Conflict, InvalidInput, NotFound, RateLimited
from runyard.store import _models as m
from runyard.store._engine import read_scope, statement, write_scope

__all__ = [
    "ROLES",
    "AccessInfo",
    "AuditEvent",
    "AuthStore",
    "Member",
    "TokenInfo",
    "TokenOwner",
    "User",
    "hash_secret",
]

ROLES = ("viewer", "editor", "owner")
OWNER_DISABLED = "owner disabled"
TokenKind = Literal["personal", "run", "session"]
_PREFIX = {"personal": "ryp_", "run": "ryr_", "session": "rys_"}
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MIN_PASSWORD_LEN = 8
_LAST_USED_EVERY_S = 60.0  # write last_used_at at most this often per token (no write per request)

_hasher = PasswordHasher()


class _HashGate:
    """At most ``RUNYARD_LOGIN_CONCURRENCY`` (default 2) argon2 computations at a time.

    Each costs ~64 MiB and a core for ~0.1-0.3 s: unbounded, a burst of sign-ins (good or
    bad) starves every other request of CPU and memory. A caller waits up to
    ``RUNYARD_LOGIN_WAIT_S`` (default 5) for a slot, then gets 429 with Retry-After.
    ``peak`` (the most computations seen at once) is kept for tests and diagnostics.
    """

    def __init__(self) -> None:
        self.slots = max(1, int(os.environ.get("RUNYARD_LOGIN_CONCURRENCY", "2")))
        self.wait_s = float(os.environ.get("RUNYARD_LOGIN_WAIT_S", "5"))
        self._sem = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if not self._sem.acquire(timeout=self.wait_s):
            raise RateLimited("The server is busy checking other sign-ins.", "Try again in a few seconds.",
                              retry_after_s=max(1.0, self.wait_s))
        try:
            with self._lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            yield
        finally:
            with self._lock:
                self.active -= 1
            self._sem.release()


hash_gate = _HashGate()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a wrong username costs as long as a wrong
    password. Made on first use: an argon2 hash costs ~0.3 s, which the server's start-up should not pay."""
    return _hasher.hash(secrets.token_urlsafe(16))


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class User(_Record):
    id: int
    username: str
    email: str = ""
    is_admin: bool = False
    disabled: bool = False
    created_at: float


class TokenInfo(_Record):
    """A token without its secret."""

    id: int
    kind: str
    name: str = ""
    user: str | None = None
    run_id: int | None = None
    created_at: float
    expires_at: float | None = None
    last_used_at: float | None = None
    revoked_at: float | None = None


class TokenOwner(_Record):
    """What a valid secret stands for (the answer of :meth:`AuthStore.resolve_token`)."""

    token_id: int
    kind: str
    user: User | None
    run_id: int | None


class Member(_Record):
    username: str
    role: str
    created_at: float


class AccessInfo(_Record):
    """Who may see a project: its id, owner and visibility."""

    project_id: int
    project: str
    owner_id: int | None
    visibility: str


class AuditEvent(_Record):
    id: int
    ts: float
    actor: str
    action: str
    target: str = ""
    address: str = ""
    success: bool = True
    detail: dict[str, Any] = {}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> float:
    return time.time()


def check_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise InvalidInput(
            f"Invalid username {username!r}: use 1-64 lowercase letters, digits, '.', '-' or '_', starting with a letter or digit.",
            "Pick a name like 'alice' or 'j.doe'.",
        )
    return username


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LEN:
        raise InvalidInput(f"Passwords need at least {MIN_PASSWORD_LEN} characters.", "Choose a longer password.")
    if len(password) > 1024:
        raise InvalidInput("Passwords may hold at most 1024 characters.", "Choose a shorter password.")
    return password


def _hash(password: str) -> str:
    with hash_gate.slot():
        return _hasher.hash(password)


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _user(row: Any) -> User:
    return User(id=row.id, username=row.username, email=row.email, is_admin=row.is_admin, disabled=row.disabled,
                created_at=row.created_at)


class AuthStore:
    """Users, tokens, members and audit events over the server's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._login_gc: list[float] = []  # when expired sign-in counters were last deleted

    # --------------------------------------------------------------------- users
    def count_users(self) -> int:
        with read_scope(self.engine) as conn:
            return conn.execute(select(func.count()).select_from(m.SqlUser)).scalar_one()

    def create_user(self, username: str, password: str, *, email: str = "", is_admin: bool = False) -> User:
        """Create a user. Raises InvalidInput for a bad name or short password, Conflict if the name is taken."""
        check_username(username)
        check_password(password)
        try:
            with write_scope(self.engine) as conn:
                conn.execute(insert(m.SqlUser).values(
                    username=username, email=email, password_hash=_hash(password), is_admin=is_admin, disabled=False,
                    created_at=_now()))
        except IntegrityError as e:
            raise Conflict(f"User {username!r} already exists.", "Pick another username.") from e
        return self.get_user(username)

    def find_user(self, username: str) -> User | None:
        with read_scope(self.engine) as conn:
            row = conn.execute(select(m.SqlUser).where(m.SqlUser.username == username)).first()
        return _user(row) if row else None

    def get_user(self, username: str) -> User:
        found = self.find_user(username)
        if found is None:
            raise NotFound(f"No user named {username!r}.", "List users with `runyard admin users`.")
        return found

    def list_users(self) -> list[User]:
        with read_scope(self.engine) as conn:
            return [_user(r) for r in conn.execute(select(m.SqlUser).order_by(m.SqlUser.username))]

    def update_user(self, username: str, *, email: str | None = None, is_admin: bool | None = None,
                    disabled: bool | None = None) -> User:
        values: dict[str, Any] = {}
        if email is not None:
            values["email"] = email
        if is_admin is not None:
            values["is_admin"] = is_admin
        if disabled is not None:
            values["disabled"] = disabled
        if values:
            with write_scope(self.engine) as conn:
                uid = conn.execute(select(m.SqlUser.id).where(m.SqlUser.username == username)).scalar()
                if uid is None:
                    raise NotFound(f"No user named {username!r}.", "List users with `runyard admin users`.")
                conn.execute(update(m.SqlUser).where(m.SqlUser.id == uid).values(**values))
                if disabled:
                    self._end_user_in(conn, uid)
        return self.get_user(username)

    def _end_user_in(self, conn: Any, uid: int) -> list[int]:
        """A user is disabled: in the caller's transaction, end all their tokens (personal, sessions,
        and the run tokens of the runs they submitted) and cancel their queued runs ("owner
        disabled"). Returns the ids of the runs canceled."""
        now = _now()
        t, r, e = m.SqlToken, m.SqlRun, m.SqlExperiment
        conn.execute(update(t).where(t.user_id == uid, t.revoked_at.is_(None)).values(revoked_at=now))
        theirs = select(r.id).join(e, e.id == r.experiment_id).where(e.created_by == uid)
        conn.execute(update(t).where(t.kind == "run", t.revoked_at.is_(None), t.run_id.in_(theirs)).values(revoked_at=now))
        attempts = dict(conn.execute(
            select(r.id, r.attempt).join(e, e.id == r.experiment_id).where(e.created_by == uid, r.status == "queued")
            .with_for_update(of=r)).all())
        queued = list(attempts)
        if queued:
            conn.execute(update(r).where(r.id.in_(queued), r.status == "queued").values(
                status="canceled", status_message=OWNER_DISABLED, ended_at=now))
            conn.execute(insert(m.SqlRunEvent), [{"run_id": rid, "status": "canceled", "attempt": attempts[rid],
                                                  "message": OWNER_DISABLED, "ts": now} for rid in queued])
        return queued

    def set_password(self, username: str, password: str) -> None:
        """Replace a password; the user's web sessions end (tokens stay valid)."""
        check_password(password)
        with write_scope(self.engine) as conn:
            uid = conn.execute(select(m.SqlUser.id).where(m.SqlUser.username == username)).scalar()
            if uid is None:
                raise NotFound(f"No user named {username!r}.", "List users with `runyard admin users`.")
            conn.execute(update(m.SqlUser).where(m.SqlUser.id == uid).values(password_hash=_hash(password)))
            conn.execute(update(m.SqlToken).where(m.SqlToken.user_id == uid, m.SqlToken.kind == "session",
                                                  m.SqlToken.revoked_at.is_(None)).values(revoked_at=_now()))

    def verify_password(self, username: str, password: str) -> User | None:
        """The user if the password is right and the account enabled, else None (same time either way)."""
        with read_scope(self.engine) as conn:
            row = conn.execute(select(m.SqlUser).where(m.SqlUser.username == username)).first()
        stored = row.password_hash if row and row.password_hash else _dummy_hash()
        with hash_gate.slot():
            try:
                ok = _hasher.verify(stored, password)
            except (VerificationError, InvalidHashError):
                ok = False
        if not ok or row is None or row.disabled:
            return None
        if _hasher.check_needs_rehash(stored):
            with write_scope(self.engine) as conn:
                conn.execute(update(m.SqlUser).where(m.SqlUser.id == row.id).values(password_hash=_hash(password)))
        return _user(row)

    # -------------------------------------------------------------------- tokens
    def create_token(self, kind: TokenKind, *, user_id: int | None = None, run_id: int | None = None, name: str = "",
                     expires_at: float | None = None) -> tuple[TokenInfo, str]:
        """Mint a token; returns its record and the secret (shown once, never stored)."""
        secret = _PREFIX[kind] + secrets.token_urlsafe(32)
        with write_scope(self.engine) as conn:
            tid = conn.execute(insert(m.SqlToken).values(
                kind=kind, user_id=user_id, run_id=run_id, name=name[:128], secret_hash=hash_secret(secret), created_at=_now(),
                expires_at=expires_at).returning(m.SqlToken.id)).scalar_one()
        return self.get_token(tid), secret

    def get_token(self, token_id: int) -> TokenInfo:
        found = self._tokens(m.SqlToken.id == token_id)
        if not found:
            raise NotFound(f"No token with id {token_id}.", "List your tokens with `runyard tokens list`.")
        return found[0]

    def list_tokens(self, user_id: int, kind: TokenKind = "personal") -> list[TokenInfo]:
        return self._tokens(and_(m.SqlToken.user_id == user_id, m.SqlToken.kind == kind))

    def _tokens(self, cond: Any) -> list[TokenInfo]:
        t, u = m.SqlToken, m.SqlUser
        with read_scope(self.engine) as conn:
            rows = conn.execute(select(t.id, t.kind, t.name, u.username, t.run_id, t.created_at, t.expires_at, t.last_used_at,
                                       t.revoked_at).outerjoin(u, u.id == t.user_id).where(cond).order_by(t.id)).all()
        return [TokenInfo(id=r[0], kind=r[1], name=r[2], user=r[3], run_id=r[4], created_at=r[5], expires_at=r[6],
                          last_used_at=r[7], revoked_at=r[8]) for r in rows]

    def resolve_token(self, secret: str, *, now: float | None = None) -> TokenOwner | None:
        """What a presented secret stands for; None when unknown, revoked, expired or its user is disabled."""
        now = _now() if now is None else now
        t, u = m.SqlToken, m.SqlUser
        with read_scope(self.engine) as conn:  # every request that carries a token: statements built once
            tok = conn.execute(statement("token_by_hash", lambda: select(t).where(t.secret_hash == bindparam("h"))),
                               {"h": hash_secret(secret)}).first()
            usr = None
            if tok is not None and tok.user_id is not None:
                usr = conn.execute(statement("user_by_id", lambda: select(u).where(u.id == bindparam("uid"))),
                                   {"uid": tok.user_id}).first()
        if tok is None:
            return None
        if tok.revoked_at is not None or (tok.expires_at is not None and tok.expires_at <= now):
            return None
        if usr is not None and usr.disabled:
            return None
        if tok.user_id is not None and usr is None:
            return None
        # When a token was last used is kept for people's tokens (`runyard tokens list`), not for
        # runs' tokens: a write for every run's first report would be paid on the dispatch path.
        if tok.kind != "run" and (tok.last_used_at is None or now - tok.last_used_at > _LAST_USED_EVERY_S):
            with write_scope(self.engine) as conn:
                conn.execute(update(t).where(t.id == tok.id).values(last_used_at=now))
        return TokenOwner(token_id=tok.id, kind=tok.kind, user=_user(usr) if usr is not None else None, run_id=tok.run_id)

    def revoke_token(self, token_id: int, *, user_id: int | None = None) -> TokenInfo:
        """Revoke a token at once. With ``user_id``, only that user's own token (else NotFound)."""
        cond = m.SqlToken.id == token_id
        if user_id is not None:
            cond = and_(cond, m.SqlToken.user_id == user_id)
        with write_scope(self.engine) as conn:
            res = conn.execute(update(m.SqlToken).where(cond, m.SqlToken.revoked_at.is_(None)).values(revoked_at=_now()))
            if res.rowcount == 0 and conn.execute(select(m.SqlToken.id).where(cond)).scalar() is None:
                raise NotFound(f"No token with id {token_id}.", "List your tokens with `runyard tokens list`.")
        return self.get_token(token_id)

    def revoke_secret(self, secret: str) -> None:
        with write_scope(self.engine) as conn:
            conn.execute(update(m.SqlToken).where(m.SqlToken.secret_hash == hash_secret(secret),
                                                  m.SqlToken.revoked_at.is_(None)).values(revoked_at=_now()))

    def mint_run_token(self, run_id: int, attempt: int) -> str:
        """The token of one attempt of a run, in one transaction; returns the secret.

        Tokens of the run's other attempts end; earlier tokens of this same attempt stay
        valid: a dispatch repeated after a server crash reaches a job that may already hold
        one (the local backend's submit is idempotent per attempt and keeps the first launch).
        """
        with write_scope(self.engine) as conn:
            return mint_run_token_in(conn, run_id, attempt)

    def revoke_run_tokens(self, run_id: int) -> int:
        """End every token of a run at once (an admin's or the project owner's revocation).

        A later attempt of the run (a restart) gets a new token when it is dispatched.
        Returns how many tokens were still valid.
        """
        now = _now()
        t = m.SqlToken
        with write_scope(self.engine) as conn:
            res = conn.execute(update(t).where(t.run_id == run_id, t.kind == "run", t.revoked_at.is_(None),
                                               or_(t.expires_at.is_(None), t.expires_at > now)).values(revoked_at=now))
            conn.execute(update(t).where(t.run_id == run_id, t.kind == "run", t.revoked_at.is_(None)).values(revoked_at=now))
        return res.rowcount or 0

    def token_refusal(self, secret: str, *, now: float | None = None) -> str | None:
        """Why a run's token is refused, for the 401's message (None: not a run's token, or unknown).

        Only called for refused tokens, so the hot path pays nothing for it.
        """
        now = _now() if now is None else now
        t, r = m.SqlToken, m.SqlRun
        with read_scope(self.engine) as conn:
            row = conn.execute(select(t.kind, t.run_id, t.revoked_at, t.expires_at, r.ended_at)
                               .outerjoin(r, r.id == t.run_id).where(t.secret_hash == hash_secret(secret))).first()
        if row is None or row[0] != "run":
            return None
        kind, run_id, revoked_at, expires_at, ended_at = row
        if revoked_at is not None:
            return f"The token of run {run_id} was revoked at {_iso(revoked_at)}."
        if expires_at is not None and expires_at <= now:
            if ended_at is not None:
                return (f"Run {run_id} ended at {_iso(ended_at)} and its token expired at {_iso(expires_at)} "
                        f"(tokens of ended runs stay valid for a short grace, RUNYARD_RUN_TOKEN_GRACE_S).")
            return f"The token of run {run_id} expired at {_iso(expires_at)}."
        return None

    # ------------------------------------------------------------- sign-in limit
    def count_login_attempt(self, keys: list[tuple[str, int]], window_s: float, *,
                            now: float | None = None) -> tuple[bool, float]:
        """Count one sign-in attempt under each ``(key, limit)``, atomically, before the password is checked.

        One upsert per key (``count = count + 1``, or 1 in a new window) in one transaction:
        concurrent attempts, from any number of server processes sharing the database, each
        see a distinct count, so no more than ``limit`` of them pass in a window. Returns
        ``(allowed, retry_after_s)``; a refused attempt is not counted.
        """
        now = _now() if now is None else now
        la = m.SqlLoginAttempt.__table__
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
        fresh = la.c.window_start <= now - window_s
        with write_scope(self.engine) as conn:
            counted = []
            for key, limit in keys:
                stmt = upsert(la).values(key=key[:200], window_start=now, count=1)
                stmt = stmt.on_conflict_do_update(index_elements=[la.c.key], set_={
                    "count": case((fresh, 1), else_=la.c.count + 1),
                    "window_start": case((fresh, now), else_=la.c.window_start),
                }).returning(la.c.count, la.c.window_start)
                count, start = conn.execute(stmt).one()
                counted.append((key[:200], count, limit, start))
            over = [(start + window_s - now) for _, count, limit, start in counted if count > limit]
            if over:
                for key, *_ in counted:  # a refused attempt checks nothing: it does not count
                    conn.execute(update(la).where(la.c.key == key).values(count=la.c.count - 1))
                return False, max(1.0, max(over))
            if len(self._login_gc) == 0 or now - self._login_gc[0] > window_s:
                conn.execute(delete(la).where(la.c.window_start <= now - window_s))
                self._login_gc[:] = [now]
        return True, 0.0

    def login_succeeded(self, keys: list[str], *, reset_first: bool = True) -> None:
        """A right password: the attempt it used is given back under each key (the first, the user's
        pair, is reset). ``reset_first=False``: an attempt that checked nothing is only given back."""
        la = m.SqlLoginAttempt.__table__
        with write_scope(self.engine) as conn:
            for i, key in enumerate(keys):
                if i == 0 and reset_first:
                    conn.execute(delete(la).where(la.c.key == key[:200]))
                else:
                    conn.execute(update(la).where(la.c.key == key[:200], la.c.count > 0).values(count=la.c.count - 1))

    # ------------------------------------------------------------- access facts
    def project_access(self, name: str) -> AccessInfo | None:
        p = m.SqlProject
        with read_scope(self.engine) as conn:
            row = conn.execute(select(p.id, p.name, p.owner_id, p.visibility).where(p.name == name)).first()
        return AccessInfo(project_id=row[0], project=row[1], owner_id=row[2], visibility=row[3]) if row else None

    def run_access(self, run_id: int) -> AccessInfo | None:
        p, r = m.SqlProject, m.SqlRun
        with read_scope(self.engine) as conn:
            row = conn.execute(select(p.id, p.name, p.owner_id, p.visibility).join(r, r.project_id == p.id).where(r.id == run_id)).first()
        return AccessInfo(project_id=row[0], project=row[1], owner_id=row[2], visibility=row[3]) if row else None

    def experiment_access(self, experiment_id: int) -> AccessInfo | None:
        p, e = m.SqlProject, m.SqlExperiment
        with read_scope(self.engine) as conn:
            row = conn.execute(select(p.id, p.name, p.owner_id, p.visibility).join(e, e.project_id == p.id)
                               .where(e.id == experiment_id)).first()
        return AccessInfo(project_id=row[0], project=row[1], owner_id=row[2], visibility=row[3]) if row else None

    def run_snapshot(self, run_id: int) -> str | None:
        """The snapshot a run's experiment was submitted with (None for ad-hoc runs)."""
        e, r = m.SqlExperiment, m.SqlRun
        with read_scope(self.engine) as conn:
            row = conn.execute(select(r.snapshot_id, e.snapshot_id).outerjoin(e, r.experiment_id == e.id).where(r.id == run_id)).first()
        return None if row is None else (row[0] or row[1])

    def snapshot_has_blob(self, snapshot_id: str, digest: str) -> bool:
        with read_scope(self.engine) as conn:
            manifest = conn.execute(select(m.SqlSnapshot.manifest).where(m.SqlSnapshot.id == snapshot_id)).scalar()
        if manifest is None:
            return False
        return any(len(f) > 1 and f[1] == digest for f in json.loads(manifest))

    def role_of(self, project_id: int, user_id: int) -> str | None:
        with read_scope(self.engine) as conn:
            return conn.execute(select(m.SqlProjectMember.role).where(
                m.SqlProjectMember.project_id == project_id, m.SqlProjectMember.user_id == user_id)).scalar()

    def visible_project_ids(self, user_id: int) -> list[int]:
        """Projects a non-admin user may read: owned, shared with them, or public."""
        p, pm = m.SqlProject, m.SqlProjectMember
        member = select(pm.project_id).where(pm.user_id == user_id)
        with read_scope(self.engine) as conn:
            return list(conn.execute(select(p.id).where(or_(p.owner_id == user_id, p.visibility == "public", p.id.in_(member))))
                        .scalars())

    def set_owner(self, project: str, user_id: int) -> None:
        with write_scope(self.engine) as conn:
            conn.execute(update(m.SqlProject).where(m.SqlProject.name == project).values(owner_id=user_id))

    # ------------------------------------------------------------------ members
    def set_member(self, project_id: int, user_id: int, role: str) -> None:
        if role not in ROLES:
            raise InvalidInput(f"Unknown role {role!r}.", f"Use one of: {', '.join(ROLES)}.")
        with write_scope(self.engine) as conn:
            res = conn.execute(update(m.SqlProjectMember).where(
                m.SqlProjectMember.project_id == project_id, m.SqlProjectMember.user_id == user_id).values(role=role))
            if res.rowcount == 0:
                conn.execute(insert(m.SqlProjectMember).values(project_id=project_id, user_id=user_id, role=role, created_at=_now()))

    def remove_member(self, project_id: int, user_id: int) -> bool:
        with write_scope(self.engine) as conn:
            res = conn.execute(delete(m.SqlProjectMember).where(
                m.SqlProjectMember.project_id == project_id, m.SqlProjectMember.user_id == user_id))
        return res.rowcount > 0

    def list_members(self, project_id: int) -> list[Member]:
        pm, u = m.SqlProjectMember, m.SqlUser
        with read_scope(self.engine) as conn:
            rows = conn.execute(select(u.username, pm.role, pm.created_at).join(u, u.id == pm.user_id)
                                .where(pm.project_id == project_id).order_by(u.username)).all()
        return [Member(username=r[0], role=r[1], created_at=r[2]) for r in rows]

    # -------------------------------------------------------------------- audit
    def audit(self, actor: str, action: str, *, target: str = "", address: str = "", success: bool = True,
              detail: dict[str, Any] | None = None) -> None:
        with write_scope(self.engine) as conn:
            conn.execute(insert(m.SqlAuditEvent).values(ts=_now(), actor=actor[:128], action=action, target=target[:256],
                                                        address=address[:64], success=success, detail=json.dumps(detail or {})))

    def list_audit(self, *, limit: int = 100, action: str | None = None, actor: str | None = None,
                   since: float | None = None) -> list[AuditEvent]:
        a = m.SqlAuditEvent
        conds: list[Any] = []
        if action:
            conds.append(a.action == action)
        if actor:
            conds.append(a.actor == actor)
        if since is not None:
            conds.append(a.ts >= since)
        stmt = select(a).order_by(a.id.desc()).limit(limit)
        if conds:
            stmt = stmt.where(*conds)
        with read_scope(self.engine) as conn:
            rows = list(conn.execute(stmt))
        return [AuditEvent(id=r.id, ts=r.ts, actor=r.actor, action=r.action, target=r.target, address=r.address, success=r.success,
                           detail=json.loads(r.detail or "{}")) for r in rows]



def mint_run_token_in(conn, run_id: int, attempt: int) -> str:  # noqa: ANN001
    """``AuthStore.mint_run_token`` inside the caller's write transaction (the scheduler's claim of a run)."""
    secret = _PREFIX["run"] + secrets.token_urlsafe(32)
    name = f"run {run_id} attempt {attempt}"
    now = _now()
    t = m.SqlToken.__table__
    conn.execute(statement("revoke_other_attempts", lambda: (
        update(t).where(t.c.run_id == bindparam("_run_id"), t.c.kind == "run", t.c.revoked_at.is_(None),
                        t.c.name != bindparam("_name")).values(revoked_at=bindparam("_now")))),
        {"_run_id": run_id, "_name": name, "_now": now})
    conn.execute(statement("token_insert", lambda: insert(t)),
                 {"kind": "run", "run_id": run_id, "name": name, "secret_hash": hash_secret(secret),
                  "created_at": now, "last_used_at": now})
    return secret
_INSERT_TOKEN: Any = None
