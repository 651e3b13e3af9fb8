"""Results database: tables ``videos`` and ``vehicles``, migrations and idempotent persistence.

One code path for SQLite (local runs, the default ``sqlite:///<data_dir>/dashcam.db``) and
PostgreSQL (deployments, ``postgresql+psycopg://user:pass@host/db``).

* The schema is owned by Alembic (``dashcam/migrations``); :func:`make_engine` runs
  ``upgrade head`` by default, so callers never create tables themselves.
* :func:`save_video` writes one video and all its events in ONE transaction: upsert the
  ``videos`` row, delete the video's old ``vehicles`` rows, insert the new ones. Vehicle ids are
  ``f"{video_id}:{track_id}"``, so re-ingesting the same video yields the same rows, never
  duplicates. Any database failure raises :class:`DatabaseError`.
* Reads (:func:`query_events`, :func:`get_video`) return plain JSON-ready dicts (datetimes as ISO
  8601 strings with ``+00:00``; bboxes as ``[x1, y1, x2, y2]`` lists).

Datetimes are stored in UTC. PostgreSQL keeps them as ``timestamptz``; SQLite has no timezone
type, so they are stored as naive UTC and made timezone-aware again on the way out (see
:class:`UTCDateTime`).

Modules (this package re-exports their public names and the private helpers ``_safe_url``,
``_reason`` and ``_jsonable`` that other modules use, so ``from dashcam.db import ...`` stays the
interface):

* :mod:`dashcam.db.schema` - :class:`UTCDateTime`, :data:`metadata` (the one MetaData of the
  results tables, which Alembic's ``env.py`` targets), the SQLModel tables and their ``sa.Table``
  handles, :func:`vehicle_id`.
* :mod:`dashcam.db.engine` - :class:`DatabaseError`, :func:`make_engine` (timeouts, SQLite set-up),
  :func:`check_database`, :func:`sqlite_path`, :func:`alembic_config`, :func:`migrate`.
* :mod:`dashcam.db.persist` - :func:`save_video` and the insert helpers.
* :mod:`dashcam.db.queries` - :func:`query_events`, :func:`get_video`, :func:`get_route`.
"""

from __future__ import annotations

from dashcam.db.engine import (
    MIGRATIONS_DIR,
    PG_CONNECT_TIMEOUT_S,
    PG_KEEPALIVES,
    PG_LOCK_TIMEOUT_MS,
    PG_STATEMENT_TIMEOUT_MS,
    SQLITE_BUSY_TIMEOUT_S,
    DatabaseError,
    alembic_config,
    check_database,
    make_engine,
    migrate,
    sqlite_path,
)

# private helpers that dashcam.search, dashcam.watch_lists and dashcam.cli import from here
from dashcam.db.engine import _reason as _reason
from dashcam.db.engine import _safe_url as _safe_url
from dashcam.db.persist import confusion_key, dialect_insert, insert_missing, save_video, search_rows
from dashcam.db.queries import _jsonable as _jsonable
from dashcam.db.queries import get_route, get_video, plate_pattern_to_like, query_events
from dashcam.db.schema import (
    CORRECTIONS,
    NAMING_CONVENTION,
    PLATE_KEY_VARIANTS,
    PLATE_NOTES,
    PLATE_READINGS,
    PLATE_TEXTS,
    ROUTES,
    VEHICLES,
    VIDEOS,
    WATCH_ENTRIES,
    WATCH_HITS,
    WATCHLISTS,
    Correction,
    DashcamTable,
    PlateKeyVariant,
    PlateNote,
    PlateReading,
    PlateText,
    Route,
    UTCDateTime,
    Vehicle,
    Video,
    WatchEntry,
    WatchHit,
    Watchlist,
    metadata,
    vehicle_id,
)

__all__ = [
    "CORRECTIONS",
    "MIGRATIONS_DIR",
    "NAMING_CONVENTION",
    "PG_CONNECT_TIMEOUT_S",
    "PG_KEEPALIVES",
    "PG_LOCK_TIMEOUT_MS",
    "PG_STATEMENT_TIMEOUT_MS",
    "PLATE_KEY_VARIANTS",
    "PLATE_NOTES",
    "PLATE_READINGS",
    "PLATE_TEXTS",
    "ROUTES",
    "SQLITE_BUSY_TIMEOUT_S",
    "VEHICLES",
    "VIDEOS",
    "WATCHLISTS",
    "WATCH_ENTRIES",
    "WATCH_HITS",
    "Correction",
    "DashcamTable",
    "DatabaseError",
    "PlateKeyVariant",
    "PlateNote",
    "PlateReading",
    "PlateText",
    "Route",
    "UTCDateTime",
    "Vehicle",
    "Video",
    "WatchEntry",
    "WatchHit",
    "Watchlist",
    "alembic_config",
    "check_database",
    "confusion_key",
    "dialect_insert",
    "get_route",
    "get_video",
    "insert_missing",
    "make_engine",
    "metadata",
    "migrate",
    "plate_pattern_to_like",
    "query_events",
    "save_video",
    "search_rows",
    "sqlite_path",
    "vehicle_id",
]
