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
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from dashcam.records import PlateEvent, VideoInfo

__all__ = [
    "DashcamTable",
    "PlateKeyVariant",
    "PlateReading",
    "PlateText",
    "DatabaseError",
    "UTCDateTime",
    "alembic_config",
    "check_database",
    "sqlite_path",
    "Route",
    "Vehicle",
    "Video",
    "get_route",
    "get_video",
    "make_engine",
    "metadata",
    "migrate",
    "query_events",
    "save_video",
    "vehicle_id",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Arbitrary constant: the PostgreSQL advisory lock that serialises concurrent migrations
# (several workers calling make_engine() at start-up against one fresh database).
_PG_MIGRATION_LOCK = 0x0DA5C0A1


class DatabaseError(RuntimeError):
    """A database operation failed. ``__cause__`` is the original SQLAlchemy exception."""


# --------------------------------------------------------------------------------------------
# Types


class UTCDateTime(sa.types.TypeDecorator):
    """``DateTime(timezone=True)`` that always hands back timezone-aware UTC datetimes.

    Binding: aware values are converted to UTC; naive values are taken to be UTC already. On
    SQLite (no timezone support) the value is stored naive UTC. Results: naive values (SQLite)
    get ``tzinfo=UTC``; aware ones (PostgreSQL) are converted to UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# Tables. Keep dashcam/migrations/versions/* in step with these (tests/test_db.py checks that
# autogenerate finds no difference). The tables live on their own MetaData (not the global
# SQLModel.metadata) whose naming convention gives every constraint and index the same name on
# both backends, which Alembic's batch mode on SQLite needs to alter them later. New tables of
# the results database must subclass DashcamTable.

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class DashcamTable(SQLModel, registry=registry(metadata=metadata)):
    """Base of the results-database tables (abstract; carries :data:`metadata`)."""


class Video(DashcamTable, table=True):
    """One ingested video (table ``videos``); ``id`` is :attr:`VideoInfo.video_id`."""

    __tablename__ = "videos"

    id: str = Field(primary_key=True)
    path: str
    size_bytes: int = Field(sa_type=sa.BigInteger)
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    recording_start: datetime = Field(sa_type=UTCDateTime)
    recording_start_source: str
    camera: str | None = None
    archive_path: str | None = None
    n_events: int
    ingested_at: datetime = Field(sa_type=UTCDateTime)
    # NULL: decoded cleanly; else one line: where decoding stopped and why (events before it kept)
    damage: str | None = None
    # Storage (migration 0005, dashcam.storage): archive verification, retention, keep mark
    archive_verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    archive_bytes: int | None = Field(default=None, sa_type=sa.BigInteger)  # archive video copy
    archive_images_bytes: int | None = Field(default=None, sa_type=sa.BigInteger)  # crops + thumbnails
    raw_deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    archive_deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    keep: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class Vehicle(DashcamTable, table=True):
    """One vehicle event with a confident plate (table ``vehicles``, the seed schema)."""

    __tablename__ = "vehicles"
    __table_args__ = (
        sa.UniqueConstraint("video_id", "track_id", name="uq_vehicles_video_id_track_id"),
        # per-plate aggregates (most-seen plates, last seen) without reading every row (0007)
        sa.Index("ix_vehicles_final_plate_ts", "final_plate", "ts"),
    )

    id: str = Field(primary_key=True)  # f"{video_id}:{track_id}"
    track_id: int
    video_id: str = Field(foreign_key="videos.id", index=True)
    frame_idx: int
    ts: datetime = Field(sa_type=UTCDateTime, index=True)
    final_plate: str = Field(index=True)
    plate_confidence: float
    car_bbox: list[float] = Field(sa_type=sa.JSON)  # [x1, y1, x2, y2] source-frame pixels
    plate_bbox: list[float] = Field(sa_type=sa.JSON)
    created_at: datetime = Field(sa_type=UTCDateTime)
    video_path: str
    pts_s: float
    lat: float | None = None
    lon: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    crop_path: str | None = None
    thumb_path: str | None = None
    n_reads: int
    first_frame_idx: int
    last_frame_idx: int
    # dashcam.search.confusion_key(final_plate); NULL only for rows written before migration 0004
    confusion_key: str | None = Field(default=None, index=True)


class PlateReading(DashcamTable, table=True):
    """One distinct alternative reading of an event's track (table ``plate_readings``).

    ``text``: normalised ``[A-Z0-9]``, never the event's ``final_plate``; ``count``: reads with
    that text; ``mean_conf``: their mean OCR confidence in [0, 1]; ``confusion_key``:
    :func:`dashcam.search.confusion_key` of ``text``. Rows go with their ``vehicles`` row
    (written and replaced by :func:`save_video`; ON DELETE CASCADE).
    """

    __tablename__ = "plate_readings"

    vehicle_id: str = Field(primary_key=True, foreign_key="vehicles.id", ondelete="CASCADE")
    text: str = Field(primary_key=True, index=True)
    count: int
    mean_conf: float
    confusion_key: str = Field(index=True)


class PlateKeyVariant(DashcamTable, table=True):
    """Lookup variants of the stored confusion keys (table ``plate_key_variants``).

    One row per ``(variant, confusion_key)``, ``variant`` from :func:`dashcam.search.key_variants`
    of a key that a ``vehicles`` or ``plate_readings`` row had when it was written. Rows are only
    added (``INSERT ... ON CONFLICT DO NOTHING``), never removed with their events: a variant
    whose key no longer has events just yields no candidates.
    """

    __tablename__ = "plate_key_variants"

    variant: str = Field(primary_key=True)
    confusion_key: str = Field(primary_key=True)


class PlateText(DashcamTable, table=True):
    """Every distinct plate text stored as a final plate or an alternative (table
    ``plate_texts``): what wildcard and regex searches scan instead of every event. Rows are
    only added, like ``plate_key_variants``."""

    __tablename__ = "plate_texts"

    text: str = Field(primary_key=True)


class Route(DashcamTable, table=True):
    """The simplified GPS route of one video (table ``routes``): one point per second.

    ``points``: ``[[t_iso_utc, lat, lon, speed_mps|null, heading_deg|null], ...]`` in time order,
    ``t`` in GPS UTC (see :func:`dashcam.gps.route_points`); ``source`` says where the
    track came from (``embedded:gpmf``, ``embedded:freegps``, ``sidecar:<path>``, ...).
    """

    __tablename__ = "routes"

    video_id: str = Field(primary_key=True, foreign_key="videos.id")
    source: str
    n_points: int
    points: list = Field(sa_type=sa.JSON)


class Watchlist(DashcamTable, table=True):
    """A named watch list (table ``watchlists``, migration 0006; see dashcam.watch_lists)."""

    __tablename__ = "watchlists"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime)


class WatchEntry(DashcamTable, table=True):
    """One entry of a watch list (table ``watch_entries``).

    ``kind``: ``exact`` | ``wildcard`` | ``regex``; ``pattern``: the normalised plate, the upper-case
    ``*``/``?`` pattern or the regex source (dashcam.search query language); ``fuzzy``: exact
    entries also match OCR-confusion-aware (``min_score``, NULL = the default threshold);
    ``active_from`` / ``active_until``: only events whose ``ts`` lies inside (NULL = open).
    """

    __tablename__ = "watch_entries"

    id: int | None = Field(default=None, primary_key=True)
    watchlist_id: int = Field(foreign_key="watchlists.id", index=True, ondelete="CASCADE")
    kind: str
    pattern: str
    label: str = ""
    notes: str = ""
    fuzzy: bool = True
    min_score: float | None = None
    active_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    active_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)


class WatchHit(DashcamTable, table=True):
    """An event that matched a watch entry (table ``watch_hits``), one row per (entry, event).

    ``event_id`` is the stable ``vehicles.id`` (``<video_id>:<track_id>``) but no foreign key:
    :func:`save_video` deletes and re-inserts a video's vehicles rows, and a hit is history.
    """

    __tablename__ = "watch_hits"
    __table_args__ = (sa.UniqueConstraint("entry_id", "event_id", name="uq_watch_hits_entry_id_event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="watch_entries.id", ondelete="CASCADE")
    event_id: str = Field(index=True)
    video_id: str = Field(index=True)
    score: float
    matched_text: str
    created_at: datetime = Field(sa_type=UTCDateTime)


class Correction(DashcamTable, table=True):
    """A user's correction of an event's plate (table ``corrections``), kept apart from
    ``vehicles`` so that a re-ingest (which replaces the vehicles rows) keeps it.

    ``event_id``: the vehicles id it applies to; ``track_id`` / ``ts`` / ``first_frame_idx`` /
    ``last_frame_idx``: where that event was, to re-attach the correction by frame overlap when
    a re-ingest changes the track ids; ``ocr_text``: the plate the OCR voted (kept beside the
    correction); ``text``: the corrected plate (``[A-Z0-9]``); ``by`` / ``at``: who and when.
    """

    __tablename__ = "corrections"

    event_id: str = Field(primary_key=True)
    video_id: str = Field(index=True)
    track_id: int
    ts: datetime = Field(sa_type=UTCDateTime)
    first_frame_idx: int
    last_frame_idx: int
    ocr_text: str
    text: str
    note: str = ""
    by: str
    at: datetime = Field(sa_type=UTCDateTime)


class PlateNote(DashcamTable, table=True):
    """A note or a tag on a plate text (table ``plate_notes``): ``kind`` ``note`` | ``tag``."""

    __tablename__ = "plate_notes"

    id: int | None = Field(default=None, primary_key=True)
    plate: str = Field(index=True)
    kind: str
    text: str
    by: str
    created_at: datetime = Field(sa_type=UTCDateTime)


# SQLModel sets __table__ on each table=True class; its type stubs do not declare it (attr-defined)
VIDEOS: sa.Table = Video.__table__  # type: ignore[attr-defined]
VEHICLES: sa.Table = Vehicle.__table__  # type: ignore[attr-defined]
ROUTES: sa.Table = Route.__table__  # type: ignore[attr-defined]
PLATE_READINGS: sa.Table = PlateReading.__table__  # type: ignore[attr-defined]
PLATE_KEY_VARIANTS: sa.Table = PlateKeyVariant.__table__  # type: ignore[attr-defined]
PLATE_TEXTS: sa.Table = PlateText.__table__  # type: ignore[attr-defined]
WATCHLISTS: sa.Table = Watchlist.__table__  # type: ignore[attr-defined]
WATCH_ENTRIES: sa.Table = WatchEntry.__table__  # type: ignore[attr-defined]
WATCH_HITS: sa.Table = WatchHit.__table__  # type: ignore[attr-defined]
CORRECTIONS: sa.Table = Correction.__table__  # type: ignore[attr-defined]
PLATE_NOTES: sa.Table = PlateNote.__table__  # type: ignore[attr-defined]


def vehicle_id(video_id: str, track_id: int) -> str:
    """The deterministic primary key of a ``vehicles`` row."""
    return f"{video_id}:{track_id}"


# --------------------------------------------------------------------------------------------
# Engine and migrations


def _safe_url(url: str | sa.URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


@lru_cache(maxsize=256)
def _compiled_regex(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def _sqlite_regexp(pattern: str | None, value: str | None) -> bool | None:
    """SQLite's ``value REGEXP pattern``: case-insensitive :func:`re.search`; NULL in, NULL out.
    A bad pattern raises (SQLite reports a user-function error); dashcam.search validates first."""
    if pattern is None or value is None:
        return None
    return _compiled_regex(pattern).search(value) is not None


def _setup_sqlite(engine: Engine) -> None:
    """Make pysqlite transactional (DDL included) and sane for several processes.

    pysqlite's own transaction handling does not BEGIN before DDL, so a failed migration could
    be half-applied; the SQLAlchemy-documented fix is to switch the driver to autocommit and
    emit BEGIN ourselves. ``execution_options(sqlite_begin="IMMEDIATE")`` on a connection takes
    the write lock at BEGIN (used by writers, to avoid lock-upgrade failures under WAL).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        # ``x REGEXP y`` for dashcam.search (case-insensitive search, as PostgreSQL's ``~*``)
        dbapi_conn.create_function("regexp", 2, _sqlite_regexp, deterministic=True)
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if engine.url.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


# Timeouts: an unreachable or frozen database must fail a command in seconds, not hang it
# (psycopg's own default connect timeout is 130 s). Each can be overridden per URL
# (``?connect_timeout=20``, ``?options=-c statement_timeout=0``).
PG_CONNECT_TIMEOUT_S = 5  # TCP connect + startup/auth; a SIGSTOPped postmaster never answers
PG_STATEMENT_TIMEOUT_MS = 60_000  # server-side: no statement (migrations included) runs longer
PG_LOCK_TIMEOUT_MS = 20_000  # waiting for a row/table/advisory lock held by a stuck session
PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
SQLITE_BUSY_TIMEOUT_S = 30  # a writer waits this long for another process's write lock


def _pg_connect_args(sa_url: sa.URL) -> dict[str, Any]:
    """psycopg connect args: timeouts and TCP keepalives, unless the URL sets them itself."""
    q = sa_url.query
    args: dict[str, Any] = {k: v for k, v in PG_KEEPALIVES.items() if k not in q}
    if "connect_timeout" not in q:
        args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    if "options" not in q:
        args["options"] = f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS} -c lock_timeout={PG_LOCK_TIMEOUT_MS}"
    return args


def make_engine(url: str, *, migrate_schema: bool = True, **engine_kwargs: Any) -> Engine:
    """Create an engine for ``url`` and (by default) bring its schema to the latest revision.

    ``url``: ``sqlite:///path/to/file.db`` (parent folder created) or
    ``postgresql+psycopg://user:pass@host:5432/db`` (``postgresql://`` is taken to mean the same). Raises :class:`DatabaseError` when the
    database cannot be reached or migrated.

    Timeouts (see the ``PG_*`` / ``SQLITE_*`` constants): PostgreSQL connections give up after
    :data:`PG_CONNECT_TIMEOUT_S` s, statements after :data:`PG_STATEMENT_TIMEOUT_MS`, lock waits
    after :data:`PG_LOCK_TIMEOUT_MS`, and TCP keepalives detect a vanished server; SQLite waits
    :data:`SQLITE_BUSY_TIMEOUT_S` s for another writer. A URL's own ``connect_timeout`` /
    ``options`` / ``keepalives*`` query parameters win.
    """
    sa_url = make_url(url)
    if sa_url.drivername in ("postgresql", "postgres"):  # plain URL: use psycopg 3, not psycopg2
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if sa_url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = _pg_connect_args(sa_url)
    if sa_url.get_backend_name() == "sqlite":
        db = sa_url.database
        if db and db != ":memory:" and not db.startswith("file:"):
            try:
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the folder of SQLite database {db}: {exc}") from exc
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    kwargs.update(engine_kwargs)
    engine = sa.create_engine(sa_url, **kwargs)
    if sa_url.get_backend_name() == "sqlite":
        _setup_sqlite(engine)
    if migrate_schema:
        migrate(engine)
    return engine


def check_database(url: str) -> None:
    """Connect to ``url`` and bring its schema to head, then close: the fail-fast check that
    ``ingest`` runs before any analysis. Raises :class:`DatabaseError` (one-line message naming
    the database without its password) when it cannot be reached or migrated, within about
    :data:`PG_CONNECT_TIMEOUT_S` seconds for an unreachable or frozen PostgreSQL server."""
    make_engine(url).dispose()


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///FILE`` URL, or None (in-memory, ``file:`` URIs, other backends)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:" or u.database.startswith("file:"):
        return None
    return Path(u.database).expanduser()


_migrate_lock = threading.Lock()


def alembic_config(connection: sa.Connection | None = None):
    """Alembic Config for our migrations (no ini file); ``connection`` is used by env.py."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Run Alembic ``upgrade <revision>`` programmatically (no alembic.ini needed).

    Safe to call repeatedly and from several processes at once (PostgreSQL: advisory lock;
    SQLite: the whole upgrade runs in one ``BEGIN IMMEDIATE`` transaction).
    """
    from alembic import command

    own_engine = not isinstance(engine_or_url, Engine)
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url, migrate_schema=False)
    try:
        with _migrate_lock:
            try:
                conn = engine.connect()
            except SQLAlchemyError as exc:
                raise DatabaseError(f"cannot connect to database {_safe_url(engine.url)}: {_reason(exc)}") from exc
            with conn:
                if conn.dialect.name == "sqlite":
                    conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    if conn.dialect.name == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    command.upgrade(alembic_config(conn), revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"could not migrate database {_safe_url(engine.url)} to {revision}: {_reason(exc)}"
        ) from exc
    finally:
        if own_engine:
            engine.dispose()


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else type(exc).__name__}"


# --------------------------------------------------------------------------------------------
# Writes


def _video_row(
    info: VideoInfo,
    n_events: int,
    archive_path: str | None,
    now: datetime,
    damage: str | None = None,
    archive_check: dict | None = None,
) -> dict:
    check = archive_check or {}
    return {
        "archive_verified_at": check.get("archive_verified_at"),
        "archive_bytes": check.get("archive_bytes"),
        "archive_images_bytes": check.get("archive_images_bytes"),
        "id": info.video_id,
        "path": info.path,
        "size_bytes": info.size_bytes,
        "duration_s": info.duration_s,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "codec": info.codec,
        "recording_start": info.recording_start,
        "recording_start_source": info.recording_start_source,
        "camera": info.camera,
        "archive_path": archive_path,
        "n_events": n_events,
        "ingested_at": now,
        "damage": damage,
    }


def confusion_key(text: str) -> str:
    """:func:`dashcam.search.confusion_key` (imported late: dashcam.search imports this module)."""
    from dashcam.search import confusion_key as key

    return key(text)


def _vehicle_row(ev: PlateEvent, video_path: str, created_at: datetime) -> dict:
    return {
        "id": vehicle_id(ev.video_id, ev.track_id),
        "track_id": ev.track_id,
        "video_id": ev.video_id,
        "frame_idx": ev.frame_idx,
        "ts": ev.ts,
        "final_plate": ev.final_plate,
        "plate_confidence": ev.plate_confidence,
        "car_bbox": [float(v) for v in ev.car_bbox],
        "plate_bbox": [float(v) for v in ev.plate_bbox],
        "created_at": created_at,
        "video_path": video_path,
        "pts_s": ev.pts_s,
        "lat": ev.lat,
        "lon": ev.lon,
        "speed_mps": ev.speed_mps,
        "heading_deg": ev.heading_deg,
        "crop_path": ev.crop_path,
        "thumb_path": ev.thumb_path,
        "n_reads": ev.n_reads,
        "first_frame_idx": ev.first_frame_idx,
        "last_frame_idx": ev.last_frame_idx,
        "confusion_key": confusion_key(ev.final_plate),
    }


def search_rows(events: list[PlateEvent]) -> tuple[list[dict], list[dict], list[dict]]:
    """The search-side rows of ``events``: ``plate_readings`` (their alternatives, minus any
    equal to the final plate), ``plate_key_variants`` of all their confusion keys and
    ``plate_texts`` of all their texts (both sorted, so concurrent writers insert in one order)."""
    from dashcam.search import confusion_key, key_variants

    readings: dict[tuple[str, str], dict] = {}
    keys, texts = set(), set()
    for ev in events:
        vid = vehicle_id(ev.video_id, ev.track_id)
        keys.add(confusion_key(ev.final_plate))
        texts.add(ev.final_plate)
        for alt in ev.alternatives:
            if alt.text == ev.final_plate or (vid, alt.text) in readings:
                continue
            k = confusion_key(alt.text)
            keys.add(k)
            texts.add(alt.text)
            readings[(vid, alt.text)] = {
                "vehicle_id": vid,
                "text": alt.text,
                "count": alt.count,
                "mean_conf": alt.mean_conf,
                "confusion_key": k,
            }
    variants = sorted({(var, k) for k in keys if k for var in key_variants(k)})
    return (
        list(readings.values()),
        [{"variant": var, "confusion_key": k} for var, k in variants],
        [{"text": t} for t in sorted(texts)],
    )


def dialect_insert(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """``INSERT INTO table`` of the connection's dialect, the one with ``on_conflict_do_nothing``
    / ``on_conflict_do_update``: PostgreSQL's for a PostgreSQL connection, else SQLite's."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_missing(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """Insert ``rows`` into ``table``, skipping those whose primary key is already there
    (``INSERT ... ON CONFLICT DO NOTHING``, SQLite and PostgreSQL)."""
    if not rows:
        return
    conn.execute(dialect_insert(conn, table).on_conflict_do_nothing(), rows)


def _upsert_video(conn: sa.Connection, row: dict) -> None:
    if conn.dialect.name not in ("postgresql", "sqlite"):  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise DatabaseError(f"unsupported database dialect {conn.dialect.name!r}")
    stmt = dialect_insert(conn, VIDEOS).values(**row)
    stmt = stmt.on_conflict_do_update(
        index_elements=[VIDEOS.c.id],
        set_={k: stmt.excluded[k] for k in row if k != "id"},
    )
    conn.execute(stmt)


def save_video(
    engine: Engine,
    info: VideoInfo,
    events: list[PlateEvent],
    archive_path: str | None,
    route: dict | None = None,
    *,
    damage: str | None = None,
    archive_check: dict | None = None,
) -> int:
    """Store one video and its events idempotently, in ONE transaction; return ``len(events)``.

        Upserts the ``videos`` row (``ingested_at`` = now), deletes the video's previous
        ``vehicles`` rows and inserts ``events``. A vehicle row that existed before under the same
        id (same video, same track) keeps its ``created_at``, so re-ingesting identical input leaves
        identical ``vehicles`` rows. The events' alternative readings replace the old
        ``plate_readings`` rows of the video's events; the lookup variants of their confusion keys
        and their texts are added to ``plate_key_variants`` and ``plate_texts`` (see
        :mod:`dashcam.search`). ``route`` (``{"source": str, "points": [[t_iso, lat, lon, speed,
        heading], ...]}``, see :func:`dashcam.gps.route_points`) replaces the video's ``routes``
        row in the same transaction; ``{}`` (no points) deletes it; None leaves an existing route as it is.
        ``damage``: one line when the video decoded only in part (``AnalyzeResult.damage``), stored in
        ``videos.damage``; None (clean) stores NULL, also over an older value. ``archive_check``: the
    result of :func:`dashcam.storage.verify_archive` for ``archive_path`` (``archive_verified_at``
    UTC datetime, ``archive_bytes``, ``archive_images_bytes``), stored on the row; None stores NULLs
    (not verified: retention never deletes its raw file). ``keep`` and the retention columns are
    left as they are. The video's
        ``corrections`` are re-applied to the new rows in the same transaction
        (:func:`dashcam.watch_lists.apply_corrections`). Writers of the same video are serialised by the row lock taken
        by the upsert (PostgreSQL) or by ``BEGIN IMMEDIATE`` (SQLite).

        Raises ``ValueError`` for events of another video, :class:`DatabaseError` when the database
        fails (then nothing of this call was written, except for the rare failure of the COMMIT
        itself, whose outcome the message says is unknown; re-running is safe).
    """
    foreign = sorted({ev.video_id for ev in events if ev.video_id != info.video_id})
    if foreign:
        raise ValueError(f"events of video(s) {foreign} passed to save_video for {info.video_id}")
    now = _utcnow()
    what = f"saving video {info.video_id} ({len(events)} events) to {_safe_url(engine.url)}"
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise DatabaseError(f"{what} failed, nothing was written: {_reason(exc)}") from exc
    with conn:
        if conn.dialect.name == "sqlite":
            conn.execution_options(sqlite_begin="IMMEDIATE")
        try:
            trans = conn.begin()
            _upsert_video(conn, _video_row(info, len(events), archive_path, now, damage, archive_check))
            created = dict(
                conn.execute(
                    sa.select(VEHICLES.c.id, VEHICLES.c.created_at).where(VEHICLES.c.video_id == info.video_id)
                ).all()
            )
            conn.execute(
                sa.delete(PLATE_READINGS).where(
                    PLATE_READINGS.c.vehicle_id.in_(
                        sa.select(VEHICLES.c.id).where(VEHICLES.c.video_id == info.video_id)
                    )
                )
            )
            conn.execute(sa.delete(VEHICLES).where(VEHICLES.c.video_id == info.video_id))
            rows = [
                _vehicle_row(ev, info.path, created.get(vehicle_id(ev.video_id, ev.track_id), now)) for ev in events
            ]
            if rows:
                conn.execute(sa.insert(VEHICLES), rows)
            readings, variants, texts = search_rows(events)
            if readings:
                conn.execute(sa.insert(PLATE_READINGS), readings)
            insert_missing(conn, PLATE_KEY_VARIANTS, variants)
            insert_missing(conn, PLATE_TEXTS, texts)
            from dashcam.watch_lists import apply_corrections  # late: it imports this module

            apply_corrections(conn, info.video_id)  # a user's corrections survive the re-ingest
            if route is not None:
                conn.execute(sa.delete(ROUTES).where(ROUTES.c.video_id == info.video_id))
                pts = [list(p) for p in route.get("points") or []]
                if pts:  # an empty route ({}) removes a stale one: the video has no GPS any more
                    conn.execute(
                        sa.insert(ROUTES),
                        [
                            {
                                "video_id": info.video_id,
                                "source": str(route.get("source") or ""),
                                "n_points": len(pts),
                                "points": pts,
                            }
                        ],
                    )
        except SQLAlchemyError as exc:
            with contextlib.suppress(SQLAlchemyError):  # connection gone: the server rolls back on its own
                conn.rollback()
            raise DatabaseError(
                f"{what} failed, the transaction was rolled back and nothing was written: {_reason(exc)}"
            ) from exc
        try:
            trans.commit()
        except SQLAlchemyError as exc:
            raise DatabaseError(
                f"{what} failed at COMMIT; whether it was applied is unknown "
                f"(re-running the ingest is safe, it is idempotent): {_reason(exc)}"
            ) from exc
    return len(events)


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
