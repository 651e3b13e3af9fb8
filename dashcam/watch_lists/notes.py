"""Notes and tags per plate text (table ``plate_notes``): add, list, remove.

Validation (plate text, lengths, who) is :mod:`.common`'s.
"""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from dashcam.db import PLATE_NOTES, _jsonable
from dashcam.watch_lists.common import (
    MAX_NOTES,
    MAX_TAG,
    WatchListError,
    _begin,
    _db_error,
    _now,
    _plate_text,
    _text,
    _who,
)


def add_plate_note(engine: sa.Engine, plate: str, text: str, *, kind: str = "note", by: str | None = None) -> dict:
    """Add a note (``kind="note"``, <= 2000 characters) or a tag (``kind="tag"``, <= 50, one word
    of letters, digits, ``-`` ``_``; a tag already on the plate is not added twice) to a plate
    text; return the row as a JSON-ready dict."""
    p = _plate_text(plate)
    if kind == "tag":
        t = _text(text, "tag", MAX_TAG, required=True).lower()
        if not re.fullmatch(r"[\w-]+", t):
            raise WatchListError(f"tag {t[:20]!r}: use letters, digits, - and _ only")
    elif kind == "note":
        t = _text(text, "note", MAX_NOTES, required=True, one_line=False)
    else:
        raise WatchListError(f"kind must be note or tag, got {kind!r}")
    row = {"plate": p, "kind": kind, "text": t, "by": _who(by), "created_at": _now()}
    n = PLATE_NOTES
    try:
        with _begin(engine) as conn, conn.begin():
            if kind == "tag":
                got = (
                    conn.execute(sa.select(n).where(n.c.plate == p, n.c.kind == "tag", n.c.text == t))
                    .mappings()
                    .first()
                )
                if got is not None:
                    return _jsonable(got)
            row["id"] = conn.execute(sa.insert(n).values(**row).returning(n.c.id)).scalar_one()
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"adding a {kind} to plate {p}", exc) from exc
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def list_plate_notes(engine: sa.Engine, plate: str) -> list[dict]:
    """Notes and tags of a plate text, oldest first (JSON-ready dicts)."""
    p = _plate_text(plate)
    n = PLATE_NOTES
    try:
        with engine.connect() as conn:
            return [_jsonable(m) for m in conn.execute(sa.select(n).where(n.c.plate == p).order_by(n.c.id)).mappings()]
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"reading the notes of plate {p}", exc) from exc


def remove_plate_note(engine: sa.Engine, note_id: int, *, plate: str | None = None) -> bool:
    """Delete note or tag ``note_id`` (only if it is on ``plate``, when given); False when there
    was no such note."""
    n = PLATE_NOTES
    cond = [n.c.id == int(note_id)] + ([n.c.plate == _plate_text(plate)] if plate is not None else [])
    try:
        with _begin(engine) as conn, conn.begin():
            return conn.execute(sa.delete(n).where(*cond)).rowcount > 0
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"removing note {note_id}", exc) from exc
