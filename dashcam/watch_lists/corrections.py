"""Plate corrections (table ``corrections``): :func:`correct_event` stores and applies one,
:func:`apply_corrections` re-applies a video's corrections inside :func:`dashcam.db.save_video`'s
transaction (re-attaching by frame overlap), :func:`list_corrections` reads them.

After a correction the video is matched again through :mod:`.matching`; validation is :mod:`.common`'s.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from dashcam.db import (
    CORRECTIONS,
    PLATE_KEY_VARIANTS,
    PLATE_READINGS,
    PLATE_TEXTS,
    VEHICLES,
    _jsonable,
    insert_missing,
)
from dashcam.search import confusion_key, key_variants
from dashcam.watch_lists.common import (
    MAX_NOTES,
    WatchListError,
    _begin,
    _db_error,
    _now,
    _plate_text,
    _text,
    _who,
)
from dashcam.watch_lists.matching import match_video


def correct_event(engine: sa.Engine, event_id: str, text: str, *, note: str = "", by: str | None = None) -> dict:
    """Correct the plate of event ``event_id`` (``<video_id>:<track_id>``) to ``text``; return the
    correction as :func:`list_corrections` does. The OCR text stays in ``ocr_text`` (and as an
    alternative reading); ``by`` defaults to ``$USER``. Correcting a corrected event again
    replaces the correction (the OCR text is kept). Watch lists are matched again for the video
    (new hits stored; alerts are only emitted by the ingest). Raises :class:`WatchListError` for
    a bad text or an unknown event."""
    new = _plate_text(text)
    who = _who(by)
    note = _text(note, "note", MAX_NOTES, one_line=False)
    eid = _text(event_id, "event id", 300, required=True)
    v, c = VEHICLES, CORRECTIONS
    try:
        with _begin(engine) as conn, conn.begin():
            ev = conn.execute(sa.select(v).where(v.c.id == eid)).mappings().first()
            if ev is None:
                raise WatchListError(
                    f"no event {eid!r} (event ids are <video_id>:<track_id>, see dashcam plates --json)"
                )
            old = conn.execute(sa.select(c).where(c.c.event_id == eid)).mappings().first()
            if old is not None:
                _undo(conn, eid, old)
                conn.execute(sa.delete(c).where(c.c.event_id == eid))
                ocr = old["ocr_text"]
            else:
                ocr = ev["final_plate"]
            conn.execute(
                sa.insert(c).values(
                    event_id=eid,
                    video_id=ev["video_id"],
                    track_id=ev["track_id"],
                    ts=ev["ts"],
                    first_frame_idx=ev["first_frame_idx"],
                    last_frame_idx=ev["last_frame_idx"],
                    ocr_text=ocr,
                    text=new,
                    note=note,
                    by=who,
                    at=_now(),
                )
            )
            apply_corrections(conn, ev["video_id"])
            video_id = ev["video_id"]
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"correcting event {eid}", exc) from exc
    match_video(engine, video_id)
    return next(x for x in list_corrections(engine, video_id=video_id) if x["event_id"] == eid)


def _undo(conn: sa.Connection, eid: str, corr) -> None:
    """Put the OCR text back as the final plate of ``eid`` (the inverse of :func:`_apply`)."""
    v, r = VEHICLES, PLATE_READINGS
    cur = conn.execute(sa.select(v.c.final_plate).where(v.c.id == eid)).scalar()
    if cur is None or cur != corr["text"] or corr["ocr_text"] == corr["text"]:
        return
    conn.execute(sa.delete(r).where(r.c.vehicle_id == eid, r.c.text == corr["ocr_text"]))
    conn.execute(
        sa.update(v)
        .where(v.c.id == eid)
        .values(final_plate=corr["ocr_text"], confusion_key=confusion_key(corr["ocr_text"]))
    )


def apply_corrections(conn: sa.Connection, video_id: str) -> int:
    """Apply the stored corrections of ``video_id`` to its ``vehicles`` rows inside the caller's
    transaction (:func:`dashcam.db.save_video` calls it after writing new rows); return how many
    rows were changed.

    A correction whose event id is gone is re-attached to the event of the video whose frame range
    ``[first_frame_idx, last_frame_idx]`` overlaps its own the most (not one another correction
    holds); without any overlap it stays, unattached, for a later ingest. Applying sets
    ``final_plate`` / ``confusion_key`` to the corrected text, keeps the OCR's text as a
    ``plate_readings`` row (count = ``n_reads``, mean_conf = ``plate_confidence``) and in
    ``corrections.ocr_text``, and adds the search rows (``plate_texts``, ``plate_key_variants``).
    Idempotent.
    """
    v, c, r = VEHICLES, CORRECTIONS, PLATE_READINGS
    corrs = conn.execute(sa.select(c).where(c.c.video_id == video_id).order_by(c.c.at)).mappings().all()
    if not corrs:
        return 0
    events = {
        m["id"]: m
        for m in conn.execute(
            sa.select(
                v.c.id,
                v.c.track_id,
                v.c.ts,
                v.c.first_frame_idx,
                v.c.last_frame_idx,
                v.c.final_plate,
                v.c.n_reads,
                v.c.plate_confidence,
            ).where(v.c.video_id == video_id)
        ).mappings()
    }
    held = {k["event_id"] for k in corrs if k["event_id"] in events}
    changed = 0
    for k in corrs:
        eid = k["event_id"]
        if eid not in events:
            best, best_overlap = None, 0
            for ev in events.values():
                if ev["id"] in held:
                    continue
                ov = (
                    min(k["last_frame_idx"], ev["last_frame_idx"])
                    - max(k["first_frame_idx"], ev["first_frame_idx"])
                    + 1
                )
                if ov > best_overlap:
                    best, best_overlap = ev, ov
            if best is None:
                continue
            held.add(best["id"])
            conn.execute(
                sa.update(c)
                .where(c.c.event_id == eid)
                .values(
                    event_id=best["id"],
                    track_id=best["track_id"],
                    ts=best["ts"],
                    first_frame_idx=best["first_frame_idx"],
                    last_frame_idx=best["last_frame_idx"],
                )
            )
            eid = best["id"]
        ev = events[eid]
        if ev["final_plate"] == k["text"]:
            continue  # applied already (or the OCR now reads it so)
        ocr = ev["final_plate"]
        conn.execute(sa.delete(r).where(r.c.vehicle_id == eid, r.c.text.in_([k["text"], ocr])))
        conn.execute(
            sa.insert(r).values(
                vehicle_id=eid,
                text=ocr,
                count=ev["n_reads"],
                mean_conf=ev["plate_confidence"],
                confusion_key=confusion_key(ocr),
            )
        )
        key = confusion_key(k["text"])
        conn.execute(sa.update(v).where(v.c.id == eid).values(final_plate=k["text"], confusion_key=key))
        conn.execute(sa.update(c).where(c.c.event_id == eid).values(ocr_text=ocr))
        insert_missing(
            conn,
            PLATE_TEXTS,
            [{"text": k["text"]}, {"text": ocr}] if ocr < k["text"] else [{"text": ocr}, {"text": k["text"]}],
        )
        insert_missing(
            conn,
            PLATE_KEY_VARIANTS,
            [
                {"variant": x, "confusion_key": kk}
                for kk in sorted({key, confusion_key(ocr)})
                for x in sorted(key_variants(kk))
            ],
        )
        changed += 1
    return changed


def list_corrections(
    engine: sa.Engine, *, video_id: str | None = None, plate: str | None = None, event_ids: list[str] | None = None
) -> list[dict]:
    """Corrections as JSON-ready dicts (all ``corrections`` columns plus ``attached``: whether
    the event exists now), by time."""
    c, v = CORRECTIONS, VEHICLES
    stmt = sa.select(c, (v.c.id.is_not(None)).label("attached")).outerjoin(v, v.c.id == c.c.event_id).order_by(c.c.at)
    if video_id is not None:
        stmt = stmt.where(c.c.video_id == video_id)
    if plate is not None:
        p = _plate_text(plate)
        stmt = stmt.where(sa.or_(c.c.text == p, c.c.ocr_text == p))
    if event_ids is not None:
        stmt = stmt.where(c.c.event_id.in_(list(event_ids)))
    try:
        with engine.connect() as conn:
            return [_jsonable(m) for m in conn.execute(stmt).mappings()]
    except SQLAlchemyError as exc:
        raise _db_error(engine, "listing corrections", exc) from exc
