"""Matching events against watch-list entries and the stored hits (``watch_hits``).

:func:`match_video` / :func:`match_entry` run :func:`dashcam.search.search_events` per entry and
store new hits with ``INSERT ... ON CONFLICT DO NOTHING``; :func:`list_hits` reads them back.
Turning a new hit into a Prefect event is :mod:`.alerts`; :mod:`.corrections` re-matches a video
after a correction.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from dashcam.db import VEHICLES, WATCH_ENTRIES, WATCH_HITS, WATCHLISTS, _jsonable, dialect_insert
from dashcam.search import search_events
from dashcam.watch_lists.common import DEFAULT_MIN_SCORE, _begin, _db_error, _now, entry_query


def list_hits(
    engine: sa.Engine,
    *,
    watchlist: str | None = None,
    event_ids: list[str] | None = None,
    entry_id: int | None = None,
    limit: int = 100,
) -> list[dict]:
    """Stored hits, newest event first, as JSON-ready dicts: ``id, entry_id, watchlist, label, kind,
    pattern, event_id, video_id, score, matched_text, created_at`` and, while the event exists,
    ``plate, ts, lat, lon, crop_path, pts_s`` (else None). ``entry_id`` / ``event_ids`` /
    ``watchlist`` narrow them."""
    h, e, w, v = WATCH_HITS, WATCH_ENTRIES, WATCHLISTS, VEHICLES
    stmt = (
        sa.select(
            h.c.id,
            h.c.entry_id,
            w.c.name.label("watchlist"),
            e.c.label,
            e.c.kind,
            e.c.pattern,
            h.c.event_id,
            h.c.video_id,
            h.c.score,
            h.c.matched_text,
            h.c.created_at,
            v.c.final_plate.label("plate"),
            v.c.ts,
            v.c.lat,
            v.c.lon,
            v.c.crop_path,
            v.c.pts_s,
        )
        .join(e, e.c.id == h.c.entry_id)
        .join(w, w.c.id == e.c.watchlist_id)
        .outerjoin(v, v.c.id == h.c.event_id)
        .order_by(v.c.ts.desc(), h.c.id.desc())
        .limit(max(1, min(int(limit), 10000)))
    )
    if watchlist is not None:
        stmt = stmt.where(w.c.name == watchlist)
    if event_ids is not None:
        stmt = stmt.where(h.c.event_id.in_(list(event_ids)))
    if entry_id is not None:
        stmt = stmt.where(h.c.entry_id == int(entry_id))
    try:
        with engine.connect() as conn:
            return [_jsonable(m) for m in conn.execute(stmt).mappings()]
    except SQLAlchemyError as exc:
        raise _db_error(engine, "listing watch hits", exc) from exc


def match_video(engine: sa.Engine, video_id: str, *, default_min_score: float = DEFAULT_MIN_SCORE) -> list[dict]:
    """Match the events of ``video_id`` against every entry and store the hits; return the NEW ones.

    Per entry: :func:`dashcam.search.search_events` with :func:`entry_query`, the video and the
    entry's active window as filters; a fuzzy entry keeps events scoring at least its ``min_score``
    (else ``default_min_score``). Hits go in with ``ON CONFLICT DO NOTHING`` on (entry, event);
    the returned dicts (only rows inserted now, so a re-ingest returns none for old hits) hold
    ``hit_id, entry_id, watchlist, label, kind, pattern, event_id, video_id, track_id, plate,
    matched_text, score, ts, lat, lon, crop_path, thumb_path, video_path``.
    """
    try:
        return _match(engine, video_id=video_id, default_min_score=default_min_score)
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"matching video {video_id} against the watch lists", exc) from exc


def match_entry(engine: sa.Engine, entry_id: int, *, default_min_score: float = DEFAULT_MIN_SCORE) -> list[dict]:
    """Match entry ``entry_id`` against every stored event (not one video) and store the hits;
    return the new ones as :func:`match_video` does. The web UI runs it after adding or editing an
    entry, so the entry's page shows what it would have caught (no alert is sent for these)."""
    try:
        return _match(engine, entry_id=int(entry_id), default_min_score=default_min_score)
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"matching watch-list entry {entry_id}", exc) from exc


def _match(
    engine: sa.Engine,
    *,
    video_id: str | None = None,
    entry_id: int | None = None,
    default_min_score: float = DEFAULT_MIN_SCORE,
) -> list[dict]:
    e, w = WATCH_ENTRIES, WATCHLISTS
    new: list[dict] = []
    with _begin(engine) as conn, conn.begin():
        stmt = sa.select(e, w.c.name.label("watchlist")).join(w, w.c.id == e.c.watchlist_id).order_by(e.c.id)
        if entry_id is not None:
            stmt = stmt.where(e.c.id == entry_id)
        for ent in conn.execute(stmt).mappings().all():
            q = entry_query(ent["kind"], ent["pattern"], ent["fuzzy"])
            threshold = (ent["min_score"] or default_min_score) if ent["fuzzy"] else 0.0
            offset = 0
            while True:
                page = search_events(
                    conn,
                    q,
                    video_ids=None if video_id is None else [video_id],
                    since=ent["active_from"],
                    until=ent["active_until"],
                    limit=1000,
                    offset=offset,
                )
                for row in page.rows:
                    if row["score"] < threshold:
                        continue
                    hit_id = conn.execute(
                        _insert_ignore(
                            conn,
                            {
                                "entry_id": ent["id"],
                                "event_id": row["id"],
                                "video_id": row["video_id"],
                                "score": row["score"],
                                "matched_text": row["matched_text"],
                                "created_at": _now(),
                            },
                        )
                    ).scalar()
                    if hit_id is not None:
                        new.append(
                            {
                                "hit_id": hit_id,
                                "entry_id": ent["id"],
                                "watchlist": ent["watchlist"],
                                "label": ent["label"],
                                "kind": ent["kind"],
                                "pattern": ent["pattern"],
                                "event_id": row["id"],
                                "video_id": row["video_id"],
                                "track_id": row["track_id"],
                                "plate": row["final_plate"],
                                "matched_text": row["matched_text"],
                                "score": row["score"],
                                "ts": row["ts"],
                                "lat": row["lat"],
                                "lon": row["lon"],
                                "crop_path": row["crop_path"],
                                "thumb_path": row["thumb_path"],
                                "video_path": row["video_path"],
                            }
                        )
                offset += len(page.rows)
                if not page.rows or offset >= page.total:
                    break
    return new


def _insert_ignore(conn: sa.Connection, row: dict):
    return dialect_insert(conn, WATCH_HITS).values(**row).on_conflict_do_nothing().returning(WATCH_HITS.c.id)
