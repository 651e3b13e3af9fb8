"""Results-database writes: :func:`save_video` (one video, its events, their alternative
readings, the search lookup rows and its route, in ONE transaction) and the insert helpers
:func:`dialect_insert` / :func:`insert_missing` that dashcam.watch_lists uses too.

Part of :mod:`dashcam.db` (import the names from there): writes the tables of
:mod:`dashcam.db.schema`, raises :class:`dashcam.db.engine.DatabaseError`. The confusion keys
come from :mod:`dashcam.search` and the corrections from :mod:`dashcam.watch_lists`, both
imported late (they import :mod:`dashcam.db`).
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashcam.db.engine import DatabaseError, _reason, _safe_url
from dashcam.db.schema import (
    PLATE_KEY_VARIANTS,
    PLATE_READINGS,
    PLATE_TEXTS,
    ROUTES,
    VEHICLES,
    VIDEOS,
    _utcnow,
    vehicle_id,
)
from dashcam.records import PlateEvent, VideoInfo

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
