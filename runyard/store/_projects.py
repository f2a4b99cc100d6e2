"""Projects: create, find, list, update and tag them (the ``Store``'s project methods)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

import runyard.names as names
from runyard.errors import Conflict, InvalidInput, NotFound
from runyard.store import _models as m
from runyard.store._common import StorePart, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._records import Project
from runyard.store._tags import MAX_PROJECT_TAGS, TagFilter, check_project_tags, check_tag_key


class ProjectsPart(StorePart):
    """The ``Store``'s project methods."""

    def ensure_project(self, name: str, *, description: str = "", owner_id: int | None = None) -> Project:
        """Return project ``name``, creating it if it does not exist."""
        found = self.find_project(name)
        if found is not None:
            return found
        try:
            return self.create_project(name, description=description, owner_id=owner_id)
        except Conflict:
            return self.get_project(name)

    def create_project(self, name: str, *, description: str = "", owner_id: int | None = None, visibility: str = "private",
                       tags: Mapping[str, str] | None = None) -> Project:
        names.check_project_name(name)
        if visibility not in ("private", "public"):
            raise InvalidInput(f"visibility must be private or public, but got {visibility!r}.", "Use private or public.")
        tags = check_project_tags(tags or {})
        if len(tags) > MAX_PROJECT_TAGS:
            raise InvalidInput(f"A project has at most {MAX_PROJECT_TAGS} tags, but got {len(tags)}.", "Keep the ones that matter.")
        now = _now()
        try:
            with write_scope(self.engine) as conn:
                res = conn.execute(
                    insert(m.SqlProject).values(
                        name=name, description=description, owner_id=owner_id, visibility=visibility, created_at=now, updated_at=now
                    )
                )
                if tags:
                    pid = res.inserted_primary_key[0]
                    conn.execute(insert(m.SqlProjectTag), [{"project_id": pid, "key": k, "value": v} for k, v in tags.items()])
        except IntegrityError as e:
            raise Conflict(f"Project {name!r} already exists.", "Pick another name or use the existing project.") from e
        return self.get_project(name)

    def find_project(self, name: str) -> Project | None:
        with read_scope(self.engine) as conn:
            rows = self._project_rows(conn, m.SqlProject.name == name)
        return rows[0] if rows else None

    def find_project_by_id(self, project_id: int) -> Project | None:
        with read_scope(self.engine) as conn:
            rows = self._project_rows(conn, m.SqlProject.id == project_id)
        return rows[0] if rows else None

    def project_names(self, project_ids: Sequence[int]) -> dict[int, str]:
        """id → name of these projects (missing ones are left out), in one query."""
        if not project_ids:
            return {}
        p = m.SqlProject
        with read_scope(self.engine) as conn:
            return dict(conn.execute(select(p.id, p.name).where(p.id.in_(list(project_ids)))).all())

    def project_ids(self, names_: Sequence[str]) -> dict[str, int]:
        """name → id of these projects (missing ones are left out), in one query."""
        if not names_:
            return {}
        p = m.SqlProject
        with read_scope(self.engine) as conn:
            return dict(conn.execute(select(p.name, p.id).where(p.name.in_(list(names_)))).all())

    def rename_project(self, name: str, new_name: str) -> Project:
        """Give project ``name`` the name ``new_name`` (its runs, experiments and members follow: they hold its id)."""
        names.check_project_name(new_name)
        try:
            with write_scope(self.engine) as conn:
                res = conn.execute(update(m.SqlProject).where(m.SqlProject.name == name).values(name=new_name, updated_at=_now()))
                if res.rowcount == 0:
                    raise NotFound(f"No project named {name!r}.", "List projects with `runyard projects`.")
        except IntegrityError as e:
            raise Conflict(f"Project {new_name!r} already exists.", "Pick another name.") from e
        return self.get_project(new_name)

    def get_project(self, name: str) -> Project:
        found = self.find_project(name)
        if found is None:
            raise NotFound(f"No project named {name!r}.", "List projects with `runyard projects`.")
        return found

    def list_projects(self, q: str | None = None, *, tags: Sequence[TagFilter] = ()) -> list[Project]:
        """Projects by name; ``q`` keeps names containing it, ``tags`` those with every tag (parse_tag_filter)."""
        p, t = m.SqlProject, m.SqlProjectTag
        conds = [p.name.contains(q)] if q else []
        for f in tags:
            has = [t.key == f.key] + ([t.value == f.value] if f.value is not None else [])
            conds.append(p.id.in_(select(t.project_id).where(*has)))
        with read_scope(self.engine) as conn:
            return self._project_rows(conn, and_(*conds) if conds else literal(True))

    def update_project(self, name: str, *, description: str | None = None, visibility: str | None = None) -> Project:
        values: dict[str, Any] = {"updated_at": _now()}
        if description is not None:
            values["description"] = names.check_text(description, "The description")
        if visibility is not None:
            if visibility not in ("private", "public"):
                raise InvalidInput(f"visibility must be private or public, but got {visibility!r}.", "Use private or public.")
            values["visibility"] = visibility
        with write_scope(self.engine) as conn:
            res = conn.execute(update(m.SqlProject).where(m.SqlProject.name == name).values(**values))
            if res.rowcount == 0:
                raise NotFound(f"No project named {name!r}.", "List projects with `runyard projects`.")
        return self.get_project(name)

    def set_project_tags(self, name: str, tags: Mapping[str, str], *, remove: Sequence[str] = ()) -> Project:
        """Set (add or overwrite) ``tags`` and delete the ``remove`` keys of project ``name``, in one transaction.

        Rules for keys and values: store/_tags.py. Raises InvalidInput on a bad key or value, on a
        key both set and removed, and past MAX_PROJECT_TAGS tags; NotFound for an unknown project
        or a removed key the project lacks (then nothing changes). Idempotent for ``tags``.
        """
        check_project_tags(tags)
        for key in remove:
            check_tag_key(key)
        both = sorted(set(tags) & set(remove))
        if both:
            raise InvalidInput(f"Project tag {both[0]!r} is both set and removed.", "Set it or remove it, not both.")
        p, t = m.SqlProject, m.SqlProjectTag
        with write_scope(self.engine) as conn:
            # The row lock serialises concurrent tag writes on PostgreSQL (delete + insert of one key would race).
            pid = conn.execute(select(p.id).where(p.name == name).with_for_update()).scalar()
            if pid is None:
                raise NotFound(f"No project named {name!r}.", "List projects with `runyard projects`.")
            existing = dict(conn.execute(select(t.key, t.value).where(t.project_id == pid)).all())
            missing = [k for k in remove if k not in existing]
            if missing:
                raise NotFound(f"Project {name!r} has no tag {missing[0]!r}.",
                               f"Its tags are: {', '.join(sorted(existing))}." if existing else "It has no tags.")
            n = len((existing.keys() | tags.keys()) - set(remove))
            if n > MAX_PROJECT_TAGS:
                raise InvalidInput(f"A project has at most {MAX_PROJECT_TAGS} tags, and {name!r} would have {n}.",
                                   "Remove tags it no longer needs (`runyard projects tag PROJECT --remove KEY`).")
            changed = {k: v for k, v in tags.items() if existing.get(k) != v}
            if remove or changed:
                conn.execute(delete(t).where(t.project_id == pid, t.key.in_([*remove, *changed])))
                if changed:
                    conn.execute(insert(t), [{"project_id": pid, "key": k, "value": v} for k, v in changed.items()])
                conn.execute(update(p).where(p.id == pid).values(updated_at=_now()))
            return self._project_rows(conn, p.id == pid)[0]

    def _project_rows(self, conn, cond) -> list[Project]:  # noqa: ANN001
        p = m.SqlProject
        n_exp = select(func.count()).where(m.SqlExperiment.project_id == p.id).scalar_subquery()
        n_runs = select(func.count()).where(m.SqlRun.project_id == p.id).scalar_subquery()
        last = select(func.max(m.SqlRun.created_at)).where(m.SqlRun.project_id == p.id).scalar_subquery()
        owner = select(m.SqlUser.username).where(m.SqlUser.id == p.owner_id).scalar_subquery()
        rows = conn.execute(
            select(p.id, p.name, p.description, p.visibility, owner, p.created_at, p.updated_at, n_exp, n_runs, last)
            .where(cond)
            .order_by(p.name)
        ).all()
        t = m.SqlProjectTag
        tags: dict[int, dict[str, str]] = {r[0]: {} for r in rows}
        if rows:
            for pid, key, value in conn.execute(
                select(t.project_id, t.key, t.value).where(t.project_id.in_(select(p.id).where(cond))).order_by(t.key)
            ):
                tags[pid][key] = value
        return [
            Project(
                id=r[0], name=r[1], description=r[2], visibility=r[3], owner=r[4], created_at=r[5], updated_at=r[6],
                n_experiments=r[7], n_runs=r[8], last_activity_at=max(x for x in (r[9], r[6]) if x is not None),
                tags=tags[r[0]],
            )
            for r in rows
        ]

    def _project_id(self, conn, name: str) -> int:  # noqa: ANN001
        pid = conn.execute(select(m.SqlProject.id).where(m.SqlProject.name == name)).scalar()
        if pid is None:
            raise NotFound(f"No project named {name!r}.", "List projects with `runyard projects`.")
        return pid
