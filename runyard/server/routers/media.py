"""A run's images, tables and note: the lists the UI's media tabs show, a table's first rows, the note.

The image and table lists come from the store's index (``run_media``), written with each artifact
under ``media/`` (:mod:`runyard.media`); the files themselves are served by the artifacts router.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

import runyard.names as names
from runyard import media
from runyard.artifacts import ArtifactStorage, clean_path
from runyard.errors import NotFound
from runyard.records.fields import SafeStr
from runyard.server._auth import principal, run_reader, run_token_route, run_writer
from runyard.server._deps import get_store
from runyard.store import ImageItem, RunNote, Store, TableItem

NOTE_MAX = media.NOTE_MAX

router = APIRouter(prefix="/runs", tags=["media"])


class ImageList(BaseModel):
    items: list[ImageItem]


class TableList(BaseModel):
    items: list[TableItem]


class TableContent(BaseModel):
    path: str
    columns: list[str]
    rows: list[list[str | int | float | bool | None]] = Field(description="at most `limit` rows of cells: strings, "
                                                                          "numbers or null")
    total: int = Field(description="the file's data rows (the header row not counted)")
    truncated: bool = Field(description="true when the file has more rows than were sent")


class NoteBody(BaseModel):
    text: SafeStr = Field(max_length=NOTE_MAX, description=f"Markdown, at most {NOTE_MAX:,} characters")


@router.get("/{run_id}/images", response_model=ImageList, dependencies=[Depends(run_reader)])
@run_token_route
def list_images(run_id: int, key: str | None = Query(None, max_length=names.KEY_MAX, description="only this key's images"),
                store: Store = Depends(get_store)) -> ImageList:
    """The run's logged images, by key then step: each one's artifact path, size and caption."""
    if key is not None:
        names.check_text(key, "key")
    return ImageList(items=store.list_run_images(run_id, key))


@router.get("/{run_id}/tables", response_model=TableList, dependencies=[Depends(run_reader)])
@run_token_route
def list_tables(run_id: int, store: Store = Depends(get_store)) -> TableList:
    """The run's logged tables, by key then step: each one's artifact path, format, rows and columns."""
    return TableList(items=store.list_run_tables(run_id))


@router.get("/{run_id}/tables/content", response_model=TableContent, dependencies=[Depends(run_reader)])
@run_token_route
def table_content(run_id: int, request: Request,
                  path: str = Query(..., max_length=4096, description="a .csv, .tsv or .parquet artifact of the run"),
                  limit: int = Query(1000, ge=0, le=media.MAX_TABLE_LIMIT, description="most rows to send"),
                  store: Store = Depends(get_store)) -> TableContent:
    """The first ``limit`` rows of a CSV, TSV or Parquet artifact (the file is never read whole into memory)."""
    clean = clean_path(path)
    if store.find_artifact(run_id, clean) is None:
        store.get_run(run_id)
        raise NotFound(f"Run {run_id} has no artifact {clean!r}.", f"List them with `runyard info {run_id}`.")
    storage: ArtifactStorage = request.app.state.artifacts
    # A listed CSV table's rows were counted as it was uploaded: the rest of the file need not be read.
    table = media.read_table(lambda: storage.open_run_file(run_id, clean), clean, limit, store.find_media_rows(run_id, clean))
    return TableContent(path=clean, **table)


@router.get("/{run_id}/note", response_model=RunNote, dependencies=[Depends(run_reader)])
@run_token_route
def get_note(run_id: int, store: Store = Depends(get_store)) -> RunNote:
    """The run's note (Markdown); empty text when none was written."""
    return store.get_note(run_id)


@router.put("/{run_id}/note", response_model=RunNote, dependencies=[Depends(run_writer)])
@run_token_route
def set_note(run_id: int, body: NoteBody, request: Request, store: Store = Depends(get_store)) -> RunNote:
    """Replace the run's note (editors of the project, and the run's own token)."""
    return store.set_note(run_id, body.text, principal(request).name)
