"""Watch lists and their entries: create, list, edit, remove (one transaction each), and the CSV
import/export of entries (:data:`.common.CSV_FIELDS`).

Validation is :mod:`.common`'s; matching the entries against events is :mod:`.matching`.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from dashcam.db import WATCH_ENTRIES, WATCH_HITS, WATCHLISTS, _jsonable, insert_missing
from dashcam.watch_lists.common import (
    CSV_FIELDS,
    DEFAULT_LIST,
    MAX_NAME,
    WatchListError,
    _begin,
    _db_error,
    _entry_row,
    _now,
    _text,
    entry_query,
)


def _list_id(conn: sa.Connection, name: str, create: bool) -> int | None:
    got = conn.execute(sa.select(WATCHLISTS.c.id).where(WATCHLISTS.c.name == name)).scalar()
    if got is not None or not create:
        return got
    insert_missing(conn, WATCHLISTS, [{"name": name, "created_at": _now()}])
    return conn.execute(sa.select(WATCHLISTS.c.id).where(WATCHLISTS.c.name == name)).scalar_one()


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
