"""A run's image and table lists (the ``run_media`` index) and its note."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select

import runyard.names as names
from runyard.errors import InvalidInput
from runyard.media import NOTE_MAX, MediaInfo
from runyard.store import _models as m
from runyard.store._common import StorePart, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._records import ImageItem, RunNote, TableItem

__all__ = ["NOTE_MAX", "MediaPart"]


def media_row(run_id: int, path: str, info: MediaInfo, now: float) -> dict[str, object]:
    """The ``run_media`` row of an artifact :mod:`runyard.media` recognised."""
    return {"run_id": run_id, "path": path, "kind": info.kind, "key": info.key, "step": info.step,
            "caption": info.caption, "width": info.width, "height": info.height, "format": info.format,
            "n_rows": info.n_rows, "columns": json.dumps(list(info.columns)), "created_at": now}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MediaPart(StorePart):
    """The ``Store``'s image, table and note methods (media rows are written by ``record_artifact``)."""

    def list_run_images(self, run_id: int, key: str | None = None) -> list[ImageItem]:
        """The run's images, by key then step (then path); one query on ``ix_run_media_kind_key``."""
        t = m.SqlMedia
        stmt = select(t.key, t.step, t.path, t.caption, t.width, t.height, t.created_at).where(
            t.run_id == run_id, t.kind == "image")
        if key is not None:
            stmt = stmt.where(t.key == key)
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(stmt.order_by(t.key, t.step, t.path)).all()
        return [ImageItem(key=r[0], step=r[1], path=r[2], caption=r[3], width=r[4], height=r[5], time=r[6]) for r in rows]

    def list_run_tables(self, run_id: int) -> list[TableItem]:
        """The run's tables, by key then step (a table without a step first)."""
        t = m.SqlMedia
        stmt = select(t.key, t.step, t.path, t.format, t.n_rows, t.columns).where(t.run_id == run_id, t.kind == "table")
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(stmt.order_by(t.key, t.step.is_not(None), t.step, t.path)).all()
        return [TableItem(key=r[0], step=r[1], path=r[2], format=r[3], rows=r[4], columns=json.loads(r[5])) for r in rows]

    def find_media_rows(self, run_id: int, path: str) -> int | None:
        """The indexed row count of the table at ``path``, or None (not indexed, or unknown)."""
        t = m.SqlMedia
        with read_scope(self.engine) as conn:
            n = conn.execute(select(t.n_rows).where(t.run_id == run_id, t.path == path, t.kind == "table")).scalar()
        return None if n is None or n < 0 else int(n)

    def get_note(self, run_id: int) -> RunNote:
        """The run's note; empty text and no author when none was written.

        Raises:
            NotFound: no run ``run_id``.
        """
        n = m.SqlRunNote
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            r = conn.execute(select(n.text, n.updated_at, n.updated_by).where(n.run_id == run_id)).first()
        if r is None:
            return RunNote(text="")
        return RunNote(text=r[0], updated_at=_iso(r[1]), updated_by=r[2] or None)

    def set_note(self, run_id: int, text: str, updated_by: str) -> RunNote:
        """Replace the run's note.

        Raises:
            InvalidInput: longer than ``NOTE_MAX`` characters, or a NUL or an unpaired surrogate.
            NotFound: no run ``run_id``.
        """
        if len(text) > NOTE_MAX:
            raise InvalidInput(f"A run's note holds at most {NOTE_MAX:,} characters, but got {len(text):,}.",
                               "Shorten it, or store long text as an artifact and link it from the note.")
        names.check_text(text, "The note")
        now = _now()
        n = m.SqlRunNote
        with write_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            conn.execute(delete(n).where(n.run_id == run_id))
            conn.execute(insert(n).values(run_id=run_id, text=text, updated_at=now, updated_by=updated_by[:128]))
        return RunNote(text=text, updated_at=_iso(now), updated_by=updated_by[:128] or None)
