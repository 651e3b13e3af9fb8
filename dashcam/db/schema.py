"""Results-database schema: the column type :class:`UTCDateTime`, the one :data:`metadata` (with
its naming convention), the SQLModel tables and their ``sa.Table`` handles (``VIDEOS``,
``VEHICLES``, ...), and :func:`vehicle_id`.

Part of :mod:`dashcam.db` (import the names from there): :mod:`dashcam.db.engine` connects and
migrates (Alembic's ``env.py`` compares the migrations against this :data:`metadata`),
:mod:`dashcam.db.persist` writes these tables and :mod:`dashcam.db.queries` reads them. This
module imports nothing else of the package.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

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
