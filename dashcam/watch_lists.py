"""Watch lists, watch hits, plate corrections and plate notes (issue 15): pure logic, no Prefect server.

(Not to be confused with :mod:`dashcam.watch`, the file watcher.)

Watch lists
-----------
A watch list (table ``watchlists``) holds entries (``watch_entries``) written in the query language
of :mod:`dashcam.search` (docs/search.md): a plain plate ``XS-NB-23`` (kind ``exact``; with
``fuzzy`` on, the default, also its OCR-confusion-aware look-alikes scoring at least ``min_score``,
default :data:`DEFAULT_MIN_SCORE`), ``=XSNB23`` (exact only), a wildcard ``XS*23`` / ``?SNB2?``
(kind ``wildcard``) or a regex ``/^XS.*3$/`` (kind ``regex``). Matching is
:func:`dashcam.search.search_events` itself, restricted to one video and the entry's active
window (``active_from`` <= event ``ts`` <= ``active_until``), so an entry matches exactly what
the same text typed into the search finds: the final plate (score 1.0) or an alternative reading
of the track (``plate_readings``, score x :data:`dashcam.search.ALTERNATIVE_WEIGHT`). There is no
second matcher here.

:func:`match_video` (run by the ``watch-lists`` task after ``persist``) stores one
``watch_hits`` row per (entry, event) with ``INSERT ... ON CONFLICT DO NOTHING`` and returns only
the rows it inserted, so a re-ingest neither duplicates hits nor alerts twice. :func:`hit_event`
turns a new hit into the keyword arguments of ``prefect.events.emit_event`` (event
:data:`HIT_EVENT`); :func:`alert_automation` builds the Prefect automation that sends a
notification block's message for those events (docs/alerts.md). Prefect delivers the alerts.

Corrections and notes
---------------------
:func:`correct_event` stores a user's plate correction in ``corrections`` keyed on the stable event
id ``<video_id>:<track_id>`` with the OCR text beside it, who and when, and applies it:
``vehicles.final_plate`` (and its confusion key) become the corrected text and the OCR text
becomes an alternative reading, so search, plate pages, exports and watch-list matching all use
the corrected text while a search for the OCR text still finds the event.
:func:`dashcam.db.save_video` calls :func:`apply_corrections` in its transaction, so a re-ingest
re-applies them; a correction whose event id no longer exists (the tracker numbered the tracks
differently) is re-attached to the event of the same video whose frame range overlaps its own
the most. :func:`add_plate_note` keeps notes and tags per plate text (``plate_notes``).

Every function raises :class:`WatchListError` (a ``ValueError``, one line fit to show the user) for
bad input and :class:`dashcam.db.DatabaseError` when the database fails.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from dashcam.db import (
    CORRECTIONS,
    PLATE_KEY_VARIANTS,
    PLATE_NOTES,
    PLATE_READINGS,
    PLATE_TEXTS,
    VEHICLES,
    WATCH_ENTRIES,
    WATCH_HITS,
    WATCHLISTS,
    DatabaseError,
    _jsonable,
    _reason,
    _safe_url,
    dialect_insert,
    insert_missing,
)
from dashcam.search import SearchError, confusion_key, key_variants, normalize_query, search_events

__all__ = [
    "DEFAULT_MIN_SCORE",
    "HIT_EVENT",
    "WatchListError",
    "add_entry",
    "add_list",
    "add_plate_note",
    "alert_automation",
    "apply_corrections",
    "correct_event",
    "entry_query",
    "export_csv",
    "hit_event",
    "import_csv",
    "import_rows",
    "list_corrections",
    "list_entries",
    "list_hits",
    "list_lists",
    "list_plate_notes",
    "match_entry",
    "match_video",
    "osm_url",
    "parse_pattern",
    "remove_entry",
    "remove_list",
    "remove_plate_note",
    "update_entry",
]

HIT_EVENT = "dashcam.watchlist.hit"
DEFAULT_MIN_SCORE = 0.75  # fuzzy entries: X5NB2S for XSNB23 scores 0.88, an unrelated 6-char plate < 0.5
DEFAULT_LIST = "default"
MAX_NAME = 100
MAX_LABEL = 200
MAX_NOTES = 2000
MAX_BY = 100
MAX_TAG = 50
MAX_PLATE = 16
CSV_FIELDS = ["watchlist", "pattern", "label", "notes", "fuzzy", "min_score", "active_from", "active_until"]


class WatchListError(ValueError):
    """Bad watch-list, correction or note input; ``str()`` is one line fit to show the user."""


def _now() -> datetime:
    return datetime.now(UTC)


def _db_error(engine_or_conn, what: str, exc: SQLAlchemyError) -> DatabaseError:
    url = engine_or_conn.engine.url if isinstance(engine_or_conn, sa.Connection) else engine_or_conn.url
    return DatabaseError(f"{what} on {_safe_url(url)} failed: {_reason(exc)}")


# --------------------------------------------------------------------------------------------
# Validation


def _text(value: Any, name: str, max_len: int, *, required: bool = False, one_line: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise WatchListError(f"{name} must be text, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise WatchListError(f"{name} is empty")
    if len(value) > max_len:
        raise WatchListError(f"{name} is {len(value)} characters long; at most {max_len} are allowed")
    allowed = "" if one_line else "\n\t"
    if any(unicodedata.category(c).startswith("C") and c not in allowed for c in value):
        raise WatchListError(f"{name} contains control characters")
    return value


def parse_pattern(text: Any) -> tuple[str, str, bool]:
    """``(kind, pattern, exact_only)`` of a watch-list entry text (dashcam.search query language).

    ``XS-NB-23`` -> ``("exact", "XSNB23", False)``; ``=XSNB23`` -> ``("exact", "XSNB23", True)``;
    ``XS*23`` -> ``("wildcard", "XS*23", False)``; ``/^XS.*3$/`` -> ``("regex", "^XS.*3$", False)``.
    Raises :class:`WatchListError` for an empty text or anything the search refuses (a broken
    regex, characters no plate has, over-long).
    """
    if text is None or not str(text).strip():
        raise WatchListError(
            "plate pattern is empty: give a plate (XS-NB-23), a wildcard (XS*23) or a regex (/^XS.*3$/)"
        )
    try:
        parsed = normalize_query(str(text))
    except SearchError as exc:
        raise WatchListError(f"bad plate pattern {str(text)[:40]!r}: {exc}") from None
    if parsed.kind == "all":  # pragma: no cover - blank is caught above
        raise WatchListError("plate pattern is empty")
    if parsed.kind in ("exact", "fuzzy"):
        return "exact", parsed.text, parsed.kind == "exact"
    return parsed.kind, parsed.text, False


def entry_query(kind: str, pattern: str, fuzzy: bool) -> str:
    """The :func:`dashcam.search.search_events` query of an entry (``kind``/``pattern`` as stored)."""
    if kind == "regex":
        return f"/{pattern}/"
    if kind == "wildcard":
        return pattern
    return pattern if fuzzy else f"={pattern}"


def _when(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise WatchListError(
                f"{name} {value[:40]!r} is not an ISO 8601 date/time (2026-11-02 or 2026-11-02T14:30)"
            ) from None
    if not isinstance(value, datetime):
        raise WatchListError(f"{name} must be a date/time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _entry_row(
    pattern: Any, label: Any, notes: Any, fuzzy: Any, min_score: Any, active_from: Any, active_until: Any
) -> dict:
    kind, pat, exact_only = parse_pattern(pattern)
    if isinstance(fuzzy, str):
        f = fuzzy.strip().lower()
        if f not in ("", "1", "0", "true", "false", "yes", "no"):
            raise WatchListError(f"fuzzy must be true or false, got {fuzzy[:20]!r}")
        fuzzy = f in ("", "1", "true", "yes")
    fuzzy = bool(fuzzy) and not exact_only and kind == "exact"
    if min_score in (None, ""):
        ms = None
    else:
        try:
            ms = float(min_score)
        except (TypeError, ValueError):
            raise WatchListError(f"min_score must be a number in (0, 1], got {str(min_score)[:20]!r}") from None
        if not 0.0 < ms <= 1.0:
            raise WatchListError(f"min_score must be a number in (0, 1], got {ms}")
    a_from, a_until = _when(active_from, "active_from"), _when(active_until, "active_until")
    if a_from and a_until and a_until < a_from:
        raise WatchListError("active_until is before active_from")
    return {
        "kind": kind,
        "pattern": pat,
        "label": _text(label, "label", MAX_LABEL),
        "notes": _text(notes, "notes", MAX_NOTES, one_line=False),
        "fuzzy": fuzzy,
        "min_score": ms,
        "active_from": a_from,
        "active_until": a_until,
    }


# --------------------------------------------------------------------------------------------
# Watch lists


def _list_id(conn: sa.Connection, name: str, create: bool) -> int | None:
    got = conn.execute(sa.select(WATCHLISTS.c.id).where(WATCHLISTS.c.name == name)).scalar()
    if got is not None or not create:
        return got
    insert_missing(conn, WATCHLISTS, [{"name": name, "created_at": _now()}])
    return conn.execute(sa.select(WATCHLISTS.c.id).where(WATCHLISTS.c.name == name)).scalar_one()


def _begin(engine: sa.Engine) -> sa.Connection:
    conn = engine.connect()
    if conn.dialect.name == "sqlite":
        conn.execution_options(sqlite_begin="IMMEDIATE")
    return conn


def add_entry(
    engine: sa.Engine,
    pattern: str,
    *,
    watchlist: str = DEFAULT_LIST,
    label: str = "",
    notes: str = "",
    fuzzy: bool = True,
    min_score: float | None = None,
    active_from: datetime | str | None = None,
    active_until: datetime | str | None = None,
    create_list: bool = True,
) -> dict:
    """Add one entry to ``watchlist`` (created if new, unless ``create_list`` is False: then an
    unknown list raises :class:`WatchListError`); return it as :func:`list_entries` does.

    ``pattern``: see :func:`parse_pattern`; ``label`` <= 200 characters, one line; ``notes`` <= 2000;
    ``fuzzy`` applies to plain plates only; ``min_score`` in (0, 1] (None: :data:`DEFAULT_MIN_SCORE`);
    ``active_from`` / ``active_until``: datetimes or ISO 8601 strings (naive = UTC), bounds on the
    events' ``ts``. Raises :class:`WatchListError` / :class:`DatabaseError`.
    """
    return import_rows(
        engine,
        [
            dict(
                watchlist=watchlist,
                pattern=pattern,
                label=label,
                notes=notes,
                fuzzy=fuzzy,
                min_score=min_score,
                active_from=active_from,
                active_until=active_until,
            )
        ],
        create_list=create_list,
    )[0]


def import_rows(
    engine: sa.Engine, rows: Iterable[dict], where: str = "entry", *, create_list: bool = True
) -> list[dict]:
    """Validate every row (keys of :data:`CSV_FIELDS`) first, then add them all in one
    transaction; a bad row raises :class:`WatchListError` naming it and nothing is added. A list
    named by a row is created when new, unless ``create_list`` is False (then it is an error)."""
    checked = []
    for i, r in enumerate(rows, start=1):
        try:
            name = _text(r.get("watchlist") or DEFAULT_LIST, "watch list name", MAX_NAME, required=True)
            row = _entry_row(
                r.get("pattern"),
                r.get("label"),
                r.get("notes"),
                True if r.get("fuzzy") is None else r.get("fuzzy"),
                r.get("min_score"),
                r.get("active_from"),
                r.get("active_until"),
            )
        except WatchListError as exc:
            raise WatchListError(f"{where} {i}: {exc}" if where != "entry" else str(exc)) from None
        checked.append((name, row))
    try:
        with _begin(engine) as conn, conn.begin():
            ids = []
            for name, row in checked:
                lid = _list_id(conn, name, create=create_list)
                if lid is None:
                    raise WatchListError(f"there is no watch list named {name[:40]!r}")
                ids.append(
                    conn.execute(
                        sa.insert(WATCH_ENTRIES)
                        .values(watchlist_id=lid, created_at=_now(), **row)
                        .returning(WATCH_ENTRIES.c.id)
                    ).scalar_one()
                )
    except SQLAlchemyError as exc:
        raise _db_error(engine, "adding watch-list entries", exc) from exc
    by_id = {e["id"]: e for e in list_entries(engine)}
    return [by_id[i] for i in ids]


def list_entries(engine: sa.Engine, watchlist: str | None = None) -> list[dict]:
    """Entries as JSON-ready dicts: ``id, watchlist, kind, pattern, label, notes, fuzzy,
    min_score, active_from, active_until, created_at, n_hits, last_hit`` (ISO 8601 UTC), by list then id."""
    e, w, h = WATCH_ENTRIES, WATCHLISTS, WATCH_HITS
    hits = (
        sa.select(h.c.entry_id, sa.func.count().label("n_hits"), sa.func.max(h.c.created_at).label("last_hit"))
        .group_by(h.c.entry_id)
        .subquery()
    )
    stmt = (
        sa.select(
            e.c.id,
            w.c.name.label("watchlist"),
            e.c.kind,
            e.c.pattern,
            e.c.label,
            e.c.notes,
            e.c.fuzzy,
            e.c.min_score,
            e.c.active_from,
            e.c.active_until,
            e.c.created_at,
            sa.func.coalesce(hits.c.n_hits, 0).label("n_hits"),
            hits.c.last_hit,
        )
        .join(w, w.c.id == e.c.watchlist_id)
        .outerjoin(hits, hits.c.entry_id == e.c.id)
        .order_by(w.c.name, e.c.id)
    )
    if watchlist is not None:
        stmt = stmt.where(w.c.name == watchlist)
    try:
        with engine.connect() as conn:
            return [_jsonable(m) for m in conn.execute(stmt).mappings()]
    except SQLAlchemyError as exc:
        raise _db_error(engine, "listing watch-list entries", exc) from exc


def remove_entry(engine: sa.Engine, entry_id: int, *, keep_empty_list: bool = False) -> bool:
    """Delete entry ``entry_id`` and its hits; False when there was none. A watch list left empty
    is deleted too, unless ``keep_empty_list`` (the web UI, where lists are made on their own)."""
    try:
        with _begin(engine) as conn, conn.begin():
            lid = conn.execute(
                sa.select(WATCH_ENTRIES.c.watchlist_id).where(WATCH_ENTRIES.c.id == int(entry_id))
            ).scalar()
            if lid is None:
                return False
            conn.execute(sa.delete(WATCH_HITS).where(WATCH_HITS.c.entry_id == int(entry_id)))
            conn.execute(sa.delete(WATCH_ENTRIES).where(WATCH_ENTRIES.c.id == int(entry_id)))
            if (
                not keep_empty_list
                and not conn.execute(sa.select(sa.func.count()).where(WATCH_ENTRIES.c.watchlist_id == lid)).scalar_one()
            ):
                conn.execute(sa.delete(WATCHLISTS).where(WATCHLISTS.c.id == lid))
            return True
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"removing watch-list entry {entry_id}", exc) from exc


def add_list(engine: sa.Engine, name: str) -> dict:
    """Create an empty watch list ``name`` (<= 100 characters, one line); return it as
    :func:`list_lists` does. A name already taken raises :class:`WatchListError`."""
    name = _text(name, "watch list name", MAX_NAME, required=True)
    try:
        with _begin(engine) as conn, conn.begin():
            if _list_id(conn, name, create=False) is not None:
                raise WatchListError(f"a watch list named {name[:40]!r} exists already")
            lid = _list_id(conn, name, create=True)
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"adding watch list {name[:40]!r}", exc) from exc
    return next(w for w in list_lists(engine) if w["id"] == lid)


def list_lists(engine: sa.Engine) -> list[dict]:
    """Watch lists as JSON-ready dicts ``id, name, created_at, n_entries, n_hits``, by name."""
    e, w, h = WATCH_ENTRIES, WATCHLISTS, WATCH_HITS
    n_e = sa.select(sa.func.count()).where(e.c.watchlist_id == w.c.id).scalar_subquery()
    n_h = (
        sa.select(sa.func.count())
        .select_from(h.join(e, e.c.id == h.c.entry_id))
        .where(e.c.watchlist_id == w.c.id)
        .scalar_subquery()
    )
    stmt = sa.select(w.c.id, w.c.name, w.c.created_at, n_e.label("n_entries"), n_h.label("n_hits")).order_by(w.c.name)
    try:
        with engine.connect() as conn:
            return [_jsonable(m) for m in conn.execute(stmt).mappings()]
    except SQLAlchemyError as exc:
        raise _db_error(engine, "listing watch lists", exc) from exc


def remove_list(engine: sa.Engine, list_id: int) -> bool:
    """Delete watch list ``list_id`` with its entries and their hits; False when there was none."""
    e, w, h = WATCH_ENTRIES, WATCHLISTS, WATCH_HITS
    try:
        with _begin(engine) as conn, conn.begin():
            if conn.execute(sa.select(w.c.id).where(w.c.id == int(list_id))).scalar() is None:
                return False
            conn.execute(
                sa.delete(h).where(h.c.entry_id.in_(sa.select(e.c.id).where(e.c.watchlist_id == int(list_id))))
            )
            conn.execute(sa.delete(e).where(e.c.watchlist_id == int(list_id)))
            conn.execute(sa.delete(w).where(w.c.id == int(list_id)))
            return True
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"removing watch list {list_id}", exc) from exc


def update_entry(
    engine: sa.Engine,
    entry_id: int,
    pattern: str,
    *,
    label: str = "",
    notes: str = "",
    fuzzy: bool = True,
    min_score: float | None = None,
    active_from: datetime | str | None = None,
    active_until: datetime | str | None = None,
) -> dict:
    """Replace every field of entry ``entry_id`` (validated as :func:`add_entry` does; its list
    stays). Its stored hits are dropped, for the old pattern may not match them; run
    :func:`match_entry` to find them again. Returns the entry as :func:`list_entries` does.
    Raises :class:`WatchListError` for bad input or an unknown entry."""
    row = _entry_row(pattern, label, notes, fuzzy, min_score, active_from, active_until)
    e = WATCH_ENTRIES
    try:
        with _begin(engine) as conn, conn.begin():
            lid = conn.execute(sa.select(e.c.watchlist_id).where(e.c.id == int(entry_id))).scalar()
            if lid is None:
                raise WatchListError(f"there is no watch-list entry {entry_id}")
            conn.execute(sa.delete(WATCH_HITS).where(WATCH_HITS.c.entry_id == int(entry_id)))
            conn.execute(sa.update(e).where(e.c.id == int(entry_id)).values(**row))
    except SQLAlchemyError as exc:
        raise _db_error(engine, f"updating watch-list entry {entry_id}", exc) from exc
    return next(x for x in list_entries(engine) if x["id"] == int(entry_id))


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


def import_csv(engine: sa.Engine, path: str | Path) -> int:
    """Add the entries of a CSV file (header: :data:`CSV_FIELDS`; ``pattern`` required, the rest
    optional) in one transaction; return how many. A bad row or header raises
    :class:`WatchListError` naming its line, and nothing is added."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "pattern" not in fields:
                raise WatchListError(f"{p}: no 'pattern' column in the header (columns: {', '.join(CSV_FIELDS)})")
            unknown = [c for c in fields if c not in CSV_FIELDS]
            if unknown:
                raise WatchListError(f"{p}: unknown column(s) {', '.join(unknown)} (known: {', '.join(CSV_FIELDS)})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise WatchListError(f"cannot read {p}: {exc}") from None
    try:
        return len(import_rows(engine, rows, where=f"{p}: row"))
    except WatchListError as exc:
        m = re.match(rf"{re.escape(str(p))}: row (\d+): (.*)", str(exc))
        if m:  # data row n is line n + 1 (the header)
            raise WatchListError(f"{p}, line {int(m.group(1)) + 1}: {m.group(2)}") from None
        raise


def export_csv(engine: sa.Engine, path: str | Path, watchlist: str | None = None) -> int:
    """Write the entries (of ``watchlist``, or all) to a CSV file that :func:`import_csv` reads
    back; written to a temporary name beside it and renamed when complete. Returns how many."""
    p = Path(path)
    entries = list_entries(engine, watchlist)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            for e in entries:
                w.writerow(
                    {
                        "watchlist": e["watchlist"],
                        "pattern": entry_query(e["kind"], e["pattern"], e["fuzzy"]),
                        "label": e["label"],
                        "notes": e["notes"],
                        "fuzzy": "true" if e["fuzzy"] else "false",
                        "min_score": "" if e["min_score"] is None else e["min_score"],
                        "active_from": e["active_from"] or "",
                        "active_until": e["active_until"] or "",
                    }
                )
        with tmp.open(newline="", encoding="utf-8") as f:  # verify before it takes its name
            n = sum(1 for _ in csv.DictReader(f))
        if n != len(entries):
            raise WatchListError(f"writing {p}: {n} rows read back instead of {len(entries)}")
        os.replace(tmp, p)
    except OSError as exc:
        raise WatchListError(f"cannot write {p}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return len(entries)


# --------------------------------------------------------------------------------------------
# Matching


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


def osm_url(lat: float | None, lon: float | None, zoom: int = 17) -> str | None:
    """An OpenStreetMap link with a marker at WGS84 ``lat``/``lon`` (None without a position)."""
    if lat is None or lon is None:
        return None
    return f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map={zoom}/{lat:.6f}/{lon:.6f}"


def hit_event(
    hit: dict,
    *,
    flow_run_id: str | None = None,
    media_base_url: str | None = None,
    archive_dir: str | Path | None = None,
) -> dict:
    """Keyword arguments of ``prefect.events.emit_event`` for one new hit of :func:`match_video`.

    ``event`` :data:`HIT_EVENT`; ``resource`` the plate (``dashcam.plate.<PLATE>``, labels
    ``prefect.resource.name``, ``dashcam.watchlist``, ``dashcam.label``); ``related`` the video
    (role ``video``) and, given ``flow_run_id``, the flow run (role ``flow-run``); ``payload``:
    plate, matched_text, watchlist, label, pattern, score, ts (ISO 8601 UTC), lat, lon, map_url
    (:func:`osm_url`), event_id, crop_path and crop_url (``media_base_url`` + the crop's path under
    ``archive_dir`` when both are set and it lies there, else a ``file://`` URI).
    """
    crop = hit.get("crop_path")
    crop_url = None
    if crop:
        cp = Path(crop)
        if media_base_url and archive_dir and cp.is_relative_to(Path(archive_dir)):
            crop_url = media_base_url.rstrip("/") + "/" + cp.relative_to(Path(archive_dir)).as_posix()
        elif cp.is_absolute():
            crop_url = cp.as_uri()
    related = [
        {
            "prefect.resource.id": f"dashcam.video.{hit['video_id']}",
            "prefect.resource.role": "video",
            "prefect.resource.name": Path(hit.get("video_path") or hit["video_id"]).name,
        }
    ]
    if flow_run_id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"})
    return {
        "event": HIT_EVENT,
        "resource": {
            "prefect.resource.id": f"dashcam.plate.{hit['plate']}",
            "prefect.resource.name": hit["plate"],
            "dashcam.watchlist": hit["watchlist"],
            "dashcam.label": hit["label"] or "",
        },
        "related": related,
        "payload": {
            "plate": hit["plate"],
            "matched_text": hit["matched_text"],
            "watchlist": hit["watchlist"],
            "label": hit["label"],
            "pattern": hit["pattern"],
            "score": hit["score"],
            "ts": hit["ts"],
            "lat": hit["lat"],
            "lon": hit["lon"],
            "map_url": osm_url(hit["lat"], hit["lon"]),
            "event_id": hit["event_id"],
            "crop_path": crop,
            "crop_url": crop_url,
        },
    }


ALERT_SUBJECT = "dashcam: {{ event.payload.plate }} seen ({{ event.payload.label or event.payload.watchlist }})"
ALERT_BODY = """\
Plate {{ event.payload.plate }} (read as {{ event.payload.matched_text }}, score {{ event.payload.score }})
Watch list: {{ event.payload.watchlist }}{% if event.payload.label %}: {{ event.payload.label }}{% endif %}
Time: {{ event.payload.ts }}
Place: {% if event.payload.lat is not none and event.payload.lon is not none %}https://www.openstreetmap.org/?mlat={{ event.payload.lat }}&mlon={{ event.payload.lon }}#map=17/{{ event.payload.lat }}/{{ event.payload.lon }}{% else %}no GPS position{% endif %}
Crop: {{ event.payload.crop_url or "none" }}
Event: {{ event.payload.event_id }}"""


def alert_automation(
    name: str,
    block_document_id,
    *,
    watchlist: str | None = None,
    plate: str | None = None,
    subject: str = ALERT_SUBJECT,
    body: str = ALERT_BODY,
):
    """A ``prefect.automations.Automation`` (not yet created): an ``EventTrigger`` on
    :data:`HIT_EVENT` (reactive, one event; only those of ``watchlist`` / ``plate`` when given) and
    a ``SendNotification`` action to the notification block ``block_document_id`` with the Jinja
    ``subject`` and ``body`` (plate, label, time, OpenStreetMap link, crop). ``.create()`` it."""
    from prefect.automations import Automation, EventTrigger, Posture
    from prefect.events.actions import SendNotification

    match: dict[str, Any] = {"prefect.resource.id": f"dashcam.plate.{plate}" if plate else "dashcam.plate.*"}
    if watchlist:
        match["dashcam.watchlist"] = watchlist
    return Automation(
        name=name,
        description="dashcam watch-list alert (dashcam alerts add)",
        enabled=True,
        trigger=EventTrigger(expect={HIT_EVENT}, match=match, posture=Posture.Reactive, threshold=1),
        actions=[SendNotification(block_document_id=block_document_id, subject=subject, body=body)],
    )


# --------------------------------------------------------------------------------------------
# Corrections


def _plate_text(text: Any, name: str = "plate") -> str:
    t = _text(text, name, 64, required=True)
    norm = t.upper().translate(str.maketrans("", "", " -.\u00b7"))
    if not norm or not re.fullmatch(r"[A-Z0-9]+", norm):
        bad = next((c for c in norm if not (c.isascii() and c.isalnum())), "")
        raise WatchListError(
            f"{name} {t[:20]!r} has {'no letters or digits' if not norm else f'character {bad!r}'}: plates have letters and digits"
        )
    if len(norm) > MAX_PLATE:
        raise WatchListError(f"{name} {norm[:20]!r} has {len(norm)} characters; at most {MAX_PLATE}")
    return norm


def _who(by: str | None) -> str:
    return _text(by or os.environ.get("USER") or os.environ.get("USERNAME") or "unknown", "by", MAX_BY, required=True)


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


# --------------------------------------------------------------------------------------------
# Notes and tags per plate


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
