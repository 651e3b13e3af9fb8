"""Plate search against the results database: :func:`search_events` (filters, candidate lookup
through ``plate_key_variants``, ranking, paging) and its result :class:`SearchPage`.

Part of :mod:`dashcam.search` (import the names from there): the query comes parsed from
:mod:`dashcam.search.query`, keys and scores from :mod:`dashcam.search.keys`; the tables and
helpers of :mod:`dashcam.db` are imported late (dashcam.db imports dashcam.search).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from dashcam.search.keys import _score, confusion_key, key_score_bound, query_variants
from dashcam.search.query import ParsedQuery, SearchError, normalize_query, regex_hints

ALTERNATIVE_WEIGHT = 0.9
MIN_SCORE = 0.5
MAX_LIMIT = 1000
MAX_TEXTS = 2000  # wildcard/regex: more matching texts than this stay a subquery


@dataclass
class SearchPage:
    """One page of :func:`search_events` results.

    ``total``: matching events over all pages; ``rows``: this page (see :func:`search_events`);
    ``kind``: how ``q`` was read: ``"all" | "exact" | "wildcard" | "regex" | "fuzzy"``.
    """

    total: int
    rows: list[dict] = field(default_factory=list)
    kind: str = "all"


# --------------------------------------------------------------------------------------------
# The query


def _tables():
    from dashcam.db import PLATE_KEY_VARIANTS, PLATE_READINGS, VEHICLES

    return VEHICLES, PLATE_READINGS, PLATE_KEY_VARIANTS


def _filters(v: sa.Table, since, until, video_ids, bbox, min_conf) -> list:
    conds = []
    if since is not None:
        conds.append(v.c.ts >= _aware(since, "since"))
    if until is not None:
        conds.append(v.c.ts <= _aware(until, "until"))
    if since is not None and until is not None and _aware(since, "since") > _aware(until, "until"):
        raise SearchError("the date range is empty: since is after until")
    if video_ids is not None:
        ids = [video_ids] if isinstance(video_ids, str) else [str(x) for x in video_ids]  # one id as a str too
        conds.append(v.c.video_id.in_(ids) if ids else sa.false())
    if bbox is not None:
        try:
            min_lat, min_lon, max_lat, max_lon = (float(x) for x in bbox)
        except (TypeError, ValueError):
            raise SearchError("bbox must be four numbers: min_lat, min_lon, max_lat, max_lon") from None
        if not (-90 <= min_lat <= max_lat <= 90) or not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
            raise SearchError(
                "bbox must be min_lat, min_lon, max_lat, max_lon in WGS84 degrees (lat -90..90, lon -180..180)"
            )
        conds.append(v.c.lat.between(min_lat, max_lat))
        if min_lon <= max_lon:
            conds.append(v.c.lon.between(min_lon, max_lon))
        else:  # the box crosses the antimeridian
            conds.append(sa.or_(v.c.lon >= min_lon, v.c.lon <= max_lon))
    if min_conf is not None:
        try:
            mc = float(min_conf)
        except (TypeError, ValueError):
            raise SearchError("min_conf must be a number in [0, 1]") from None
        if not 0.0 <= mc <= 1.0:
            raise SearchError("min_conf must be a number in [0, 1]")
        conds.append(v.c.plate_confidence >= mc)
    return conds


def _aware(t: datetime, name: str) -> datetime:
    if not isinstance(t, datetime):
        raise SearchError(f"{name} must be a datetime")

    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _like_bounds(col, pattern: str) -> list:
    """LIKE over a whole stored plate for a ``*``/``?`` pattern, plus a range on its literal
    prefix so that a plain B-tree index on ``col`` serves it on SQLite and PostgreSQL alike."""
    from dashcam.db import plate_pattern_to_like

    conds = [col.like(plate_pattern_to_like(pattern), escape="\\")]
    return conds + _prefix_range(col, re.split(r"[*?]", pattern, maxsplit=1)[0])


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _prefix_range(col, prefix: str) -> list:
    """``col >= prefix AND col < next`` where ``next`` is the smallest ``[A-Z0-9]`` string after
    every string starting with ``prefix`` (stays inside the alphabet, so the range holds under
    any collation that orders digits before letters, the C one and the usual locales alike)."""
    if not prefix or any(c not in _ALNUM for c in prefix):
        return []
    conds = [col >= prefix]
    head = prefix
    while head and head[-1] == "Z":
        head = head[:-1]
    if head:
        conds.append(col < head[:-1] + _ALNUM[_ALNUM.index(head[-1]) + 1])
    return conds


def search_events(
    db: sa.Engine | sa.Connection,
    q: str | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    video_ids: Sequence[str] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    min_conf: float | None = None,
    limit: int = 50,
    offset: int = 0,
) -> SearchPage:
    """Search the plate events of the results database (query language: module docstring).

    ``db``: an ``sqlalchemy.Engine`` (a connection is opened and closed here) or an open
    ``sqlalchemy.Connection`` (used as is: only SELECTs, nothing committed or closed) of a
    database made by :func:`dashcam.db.make_engine` (SQLite needs its REGEXP function).
    ``q``: the query; ``None`` or blank = every event, newest first.
    Filters (all optional, combined with AND): ``since`` / ``until`` (inclusive, on ``ts``;
    naive datetimes are taken as UTC), ``video_ids`` (events of these videos only; an empty
    sequence matches nothing), ``bbox`` ``(min_lat, min_lon, max_lat, max_lon)`` in WGS84 degrees
    (events without a position are left out; ``min_lon > max_lon`` crosses the antimeridian),
    ``min_conf`` (``plate_confidence >= min_conf``, in [0, 1]). ``limit`` (1..1000) rows from
    ``offset`` (>= 0).

    Returns a :class:`SearchPage`: ``total`` matching events, ``kind`` of query, and ``rows``,
    each the JSON-ready ``vehicles`` row (as :func:`dashcam.db.query_events` returns it: ISO 8601
    UTC strings, bbox lists) plus ``score`` (float, 1.0 = the final plate matches exactly;
    lower = worse; an alternative's match is scaled by :data:`ALTERNATIVE_WEIGHT`),
    ``matched_text`` (the final plate or the alternative that matched best) and ``alternatives``
    (``[{"text", "count", "mean_conf"}, ...]``, most reads first). Order: score descending, then
    ``ts`` newest first, then id.

    Raises :class:`SearchError` for a bad query or filter, :class:`dashcam.db.DatabaseError`
    when the database fails.
    """
    from dashcam.db import DatabaseError, _reason

    parsed = normalize_query(q)
    try:
        limit, offset = int(limit), int(offset)
    except (TypeError, ValueError):
        raise SearchError("limit and offset must be whole numbers") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise SearchError("offset must be >= 0")
    v, _, _ = _tables()
    conds = _filters(v, since, until, video_ids, bbox, min_conf)
    try:
        if isinstance(db, sa.Connection):
            return _run(db, parsed, conds, limit, offset)
        with db.connect() as conn:
            return _run(conn, parsed, conds, limit, offset)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"plate search failed: {_reason(exc)}") from exc


def _run(conn: sa.Connection, p: ParsedQuery, conds: list, limit: int, offset: int) -> SearchPage:
    v, r, _ = _tables()
    where = sa.and_(*conds) if conds else None
    if p.kind == "all":
        total = conn.execute(_where(sa.select(sa.func.count()).select_from(v), where)).scalar_one()
        ids = (
            conn.execute(_where(sa.select(v.c.id), where).order_by(v.c.ts.desc(), v.c.id).limit(limit).offset(offset))
            .scalars()
            .all()
        )
        return SearchPage(total, _page(conn, [(i, 1.0, None) for i in ids]), "all")
    if p.kind in ("wildcard", "regex"):
        return _run_pattern(conn, p, where, limit, offset)
    # exact and fuzzy: gather matching (event, text) pairs, score them here
    if p.kind == "exact":
        keys = None
        fin_cond = v.c.final_plate == p.text
        alt_cond = r.c.text == p.text
    else:
        keys = _candidate_keys(conn, confusion_key(p.text))
        fin_cond = v.c.confusion_key.in_(keys)
        alt_cond = r.c.confusion_key.in_(keys)
    hits: dict[str, tuple[float, str, Any]] = {}
    for vid, text, ts in conn.execute(_where(sa.select(v.c.id, v.c.final_plate, v.c.ts).where(fin_cond), where)):
        s = 1.0 if p.kind == "exact" else _score(p.text, text)
        _keep(hits, vid, s, text, ts)
    alt_q = _where(sa.select(r.c.vehicle_id, r.c.text, v.c.ts).join(v, v.c.id == r.c.vehicle_id).where(alt_cond), where)
    for vid, text, ts in conn.execute(alt_q):
        s = ALTERNATIVE_WEIGHT * (1.0 if p.kind == "exact" else _score(p.text, text))
        _keep(hits, vid, s, text, ts)
    ranked = [(vid, s, t, ts) for vid, (s, t, ts) in hits.items() if s >= MIN_SCORE]
    ranked.sort(key=lambda x: x[0])
    ranked.sort(key=lambda x: x[3], reverse=True)
    ranked.sort(key=lambda x: x[1], reverse=True)
    page = ranked[offset : offset + limit]
    return SearchPage(len(ranked), _page(conn, [(vid, s, t) for vid, s, t, _ in page]), p.kind)


def _where(stmt, where):
    return stmt if where is None else stmt.where(where)


def _keep(hits: dict, vid: str, score: float, text: str, ts) -> None:
    old = hits.get(vid)
    if old is None or score > old[0]:
        hits[vid] = (round(score, 4), text, ts)


def _candidate_keys(conn: sa.Connection, qkey: str) -> list[str]:
    """Stored confusion keys within the reach of ``qkey`` (module docstring, candidate lookup)
    whose texts can still score >= :data:`MIN_SCORE` (:func:`key_score_bound`)."""
    _, _, kv = _tables()
    variants = sorted(query_variants(qkey))
    keys = set(conn.execute(sa.select(kv.c.confusion_key).where(kv.c.variant.in_(variants)).distinct()).scalars())
    keys.add(qkey)
    return sorted(k for k in keys if key_score_bound(qkey, k) >= MIN_SCORE)


def _run_pattern(conn: sa.Connection, p: ParsedQuery, where, limit: int, offset: int) -> SearchPage:
    """Wildcard and regex: match the distinct texts of ``plate_texts``, then select the events
    whose final plate (score 1.0) or an alternative (:data:`ALTERNATIVE_WEIGHT`) is one of them."""
    v, r, _ = _tables()
    from dashcam.db import PLATE_TEXTS as pt

    if p.kind == "wildcard":
        match = _like_bounds(pt.c.text, p.text)
    else:
        prefix, literal = regex_hints(p.text)
        match = []
        match += _prefix_range(pt.c.text, prefix)  # an index range, then a cheap LIKE, then the regex
        if literal:
            match.append(pt.c.text.like(f"%{literal}%"))
        match.append(_regex(conn, pt.c.text, p.text))
    # the matching texts first (a scan of the distinct texts), then the events by index; a
    # pattern that matches very many texts keeps them as a subquery instead of bound values
    found = conn.execute(sa.select(pt.c.text).where(*match).limit(MAX_TEXTS + 1)).scalars().all()
    if not found:
        return SearchPage(0, [], p.kind)
    texts = sa.select(pt.c.text).where(*match) if len(found) > MAX_TEXTS else found
    fin_ids = sa.select(v.c.id.label("id"), sa.literal(1.0).label("score"), v.c.final_plate.label("text")).where(
        v.c.final_plate.in_(texts)
    )
    alt_ids = sa.select(
        r.c.vehicle_id.label("id"), sa.literal(ALTERNATIVE_WEIGHT).label("score"), r.c.text.label("text")
    ).where(r.c.text.in_(texts))
    u = sa.union_all(fin_ids, alt_ids).subquery("m")
    best = (
        sa.select(u.c.id, sa.func.max(u.c.score).label("score"), sa.func.min(u.c.text).label("alt_text"))
        .group_by(u.c.id)
        .subquery("b")
    )
    base = _where(
        sa.select(best.c.id, best.c.score, best.c.alt_text, v.c.final_plate).join(v, v.c.id == best.c.id), where
    )
    total = conn.execute(sa.select(sa.func.count()).select_from(base.subquery())).scalar_one()
    rows = conn.execute(base.order_by(best.c.score.desc(), v.c.ts.desc(), v.c.id).limit(limit).offset(offset)).all()
    # an alternative-only match shows the (alphabetically first) matching alternative
    out = [(vid, float(s), final if s >= 1.0 else alt_text) for vid, s, alt_text, final in rows]
    return SearchPage(total, _page(conn, out), p.kind)


def _regex(conn: sa.Connection, col, src: str):
    """``col`` matches regex ``src``, case-insensitive: PostgreSQL ``~*``, SQLite ``REGEXP``
    (the function :func:`dashcam.db.engine._setup_sqlite` registers)."""
    if conn.dialect.name == "postgresql":
        return col.op("~*")(src)
    return col.op("REGEXP")(src)


def _page(conn: sa.Connection, items: list[tuple[str, float, str | None]]) -> list[dict]:
    """Full JSON-ready rows for ``(vehicle_id, score, matched_text)`` in the given order."""
    from dashcam.db import _jsonable

    if not items:
        return []
    v, r, _ = _tables()
    ids = [i for i, _, _ in items]
    rows = {m["id"]: _jsonable(m) for m in conn.execute(sa.select(v).where(v.c.id.in_(ids))).mappings()}
    alts: dict[str, list[dict]] = {i: [] for i in ids}
    for m in conn.execute(
        sa.select(r.c.vehicle_id, r.c.text, r.c.count, r.c.mean_conf)
        .where(r.c.vehicle_id.in_(ids))
        .order_by(r.c.vehicle_id, r.c.count.desc(), r.c.mean_conf.desc(), r.c.text)
    ).mappings():
        alts[m["vehicle_id"]].append({"text": m["text"], "count": m["count"], "mean_conf": m["mean_conf"]})
    out = []
    for vid, score, matched in items:
        row = rows.get(vid)
        if row is None:  # deleted between the two statements (no snapshot on SQLite autocommit reads)
            continue
        row["score"] = float(score)
        row["matched_text"] = matched if matched is not None else row["final_plate"]
        row["alternatives"] = alts[vid]
        out.append(row)
    return out
