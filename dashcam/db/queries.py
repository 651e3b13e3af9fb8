"""Results-database reads: :func:`query_events`, :func:`get_video`, :func:`get_route` as
JSON-ready dicts (``_jsonable``: datetimes as ISO 8601 strings), and
:func:`plate_pattern_to_like` (shell-style plate pattern -> SQL LIKE), which dashcam.search uses.

Part of :mod:`dashcam.db` (import the names from there): reads the tables of
:mod:`dashcam.db.schema`, raises :class:`dashcam.db.engine.DatabaseError`. The plate search
(alternatives, fuzzy matching) is :mod:`dashcam.search`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashcam.db.engine import DatabaseError, _reason, _safe_url
from dashcam.db.schema import ROUTES, VEHICLES, VIDEOS

# --------------------------------------------------------------------------------------------
# Reads


def _jsonable(row: Mapping[Any, Any]) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def plate_pattern_to_like(pattern: str) -> str:
    r"""Translate a shell-style plate pattern (``*``, ``?``) into a SQL LIKE pattern (escape ``\``)."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def query_events(engine: Engine, video_id: str | None = None, plate: str | None = None) -> list[dict]:
    """Vehicle events as JSON-ready dicts (all ``vehicles`` columns), ordered by ``ts``.

    ``plate`` is a case-insensitive shell-style pattern matched against the whole
    ``final_plate``: ``AB*`` (starts with AB), ``*12?`` , ``AB123C`` (exact).
    """
    stmt = sa.select(VEHICLES).order_by(VEHICLES.c.ts, VEHICLES.c.video_id, VEHICLES.c.track_id)
    if video_id is not None:
        stmt = stmt.where(VEHICLES.c.video_id == video_id)
    if plate is not None:
        like = plate_pattern_to_like(plate.strip().upper())
        stmt = stmt.where(sa.func.upper(VEHICLES.c.final_plate).like(like, escape="\\"))
    try:
        with engine.connect() as conn:
            return [_jsonable(r) for r in conn.execute(stmt).mappings()]
    except SQLAlchemyError as exc:
        raise DatabaseError(f"querying events from {_safe_url(engine.url)} failed: {_reason(exc)}") from exc


def _get_one(engine: Engine, stmt, what: str) -> dict | None:
    """First row of ``stmt`` as a JSON-ready dict, or ``None``; :class:`DatabaseError` naming
    ``what`` on a database failure."""
    try:
        with engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
    except SQLAlchemyError as exc:
        raise DatabaseError(f"reading {what} from {_safe_url(engine.url)} failed: {_reason(exc)}") from exc
    return None if row is None else _jsonable(row)


def get_route(engine: Engine, video_id: str) -> dict | None:
    """The ``routes`` row of ``video_id`` as a JSON-ready dict, or ``None``."""
    return _get_one(engine, sa.select(ROUTES).where(ROUTES.c.video_id == video_id), f"the route of {video_id}")


def get_video(engine: Engine, video_id: str) -> dict | None:
    """The ``videos`` row of ``video_id`` as a JSON-ready dict, or ``None``."""
    return _get_one(engine, sa.select(VIDEOS).where(VIDEOS.c.id == video_id), f"video {video_id}")
