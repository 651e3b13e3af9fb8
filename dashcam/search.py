"""Plate search that survives OCR misreads: confusion keys, a weighted plate distance and one
query function (:func:`search_events`) shared by the web UI and ``dashcam plates``.

Query language (``q`` of :func:`search_events`; docs/search.md)
----------------------------------------------------------------
* empty / ``None``: every event, newest first (kind ``"all"``).
* ``XS-NB-23`` (plain text; spaces, ``-`` and ``.`` are dropped, case ignored): events whose final
  plate or one of whose alternative readings is exactly the text come first (score 1.0 for the
  final plate), then **fuzzy**, OCR-confusion-aware matches ranked by :func:`plate_score`
  (kind ``"fuzzy"``).
* ``=XSNB23`` or ``"XSNB23"``: exact matches only (final plate or an alternative; kind ``"exact"``).
* ``XS*23``, ``?SNB2?``: shell wildcards over the whole final plate or an alternative (kind
  ``"wildcard"``).
* ``/^XS.*3$/``: a case-insensitive regular expression searched in the final plate or an
  alternative (kind ``"regex"``). The syntax is the subset that Python's ``re`` and PostgreSQL's
  ARE agree on: literals, ``. [] [^] ^ $ * + ? {m,n} | ()`` and ``\\d \\w \\s``; ``(?`` constructs
  (look-around, flags, named groups), back-references and counts above 255 are refused.

Bad input (an over-long pattern, control characters, characters that cannot be in a plate, a
broken regex) raises :class:`SearchError` (a ``ValueError``) with a one-line message. User text
only ever reaches the database as bound parameters.

Confusion key (:func:`confusion_key`)
-------------------------------------
Characters that OCR confuses on plates are folded onto one representative, so look-alike
misreads of one plate share one indexed key:

=======  ==================  ==========================================================
class    characters          source
=======  ==================  ==========================================================
``0``    ``0 O Q D``         issue 12; bench/accuracy.py images: ``O``->``0`` 10, ``0``->``O`` 3
``1``    ``1 I L T``         issue 12; bench frames: ``T``->``1``/``I`` 5; photos ``4``->``L``
``2``    ``2 Z``             issue 12; photos ``2``->``Z``
``5``    ``5 S``             issue 12; bench frames ``S``->``5`` 2
``6``    ``6 G C``           issue 12; bench frames ``G``->``C`` 9 (Video106_2, 12 px glyphs)
``8``    ``8 B``             issue 12; bench frames ``B``<->``8`` 6
=======  ==================  ==========================================================

(bench numbers: docs/performance.md, issue 5 step 3, ``bench/accuracy.py images|frames``
confusion tables; the photo table of this issue's run is in docs/search.md). Pairs that were seen
confused but are too far apart to fold without merging unrelated plates are *similar* pairs
(:data:`SIMILAR_PAIRS`): cheaper substitutions in :func:`plate_distance`, not part of the key.

Distance and score
------------------
:func:`plate_distance` aligns the two confusion keys with rapidfuzz's Levenshtein alignment
(``rapidfuzz.distance.Levenshtein.opcodes``, https://rapidfuzz.github.io/RapidFuzz/, MIT) and
prices each aligned operation: a look-alike substitution (equal key, different character)
:data:`LOOKALIKE_COST`, a similar pair :data:`SIMILAR_COST`, any other substitution
:data:`SUBSTITUTION_COST`, a character inserted or dropped at either end (a cut-off plate, a
dropped first group) :data:`EDGE_INDEL_COST` per character, one inside the plate
:data:`INDEL_COST`. :func:`plate_score` is ``1 - distance / max(len(a), len(b))`` clipped to
``[0, 1]`` (1.0 = identical). An event's score is the best over its final plate and its
alternatives, an alternative's score multiplied by :data:`ALTERNATIVE_WEIGHT`.

Candidate lookup (fuzzy)
------------------------
Exact-key lookup alone misses insertions and deletions, so the table ``plate_key_variants``
(:func:`key_variants`, written by :func:`dashcam.db.save_video`) maps *variants* of every stored
key to the key: the key itself, its single-character deletions (keys of >= 5 characters), and its
prefixes/suffixes of at least ``max(4, n - 3)`` characters. The query key's own variants (itself,
its deletions, its prefixes/suffixes of at least ``max(4, n - 2)``) are looked up there (an
indexed ``IN``), which finds every stored key within one insertion, deletion or substitution of
the query key (symmetric-deletion, as in SymSpell, https://github.com/wolfgarbe/SymSpell) and
stored plates with a dropped or extra edge group (``NB23`` finds ``XSNB23``). The candidate keys
select events through the indexed ``vehicles.confusion_key`` and ``plate_readings.confusion_key``;
candidates are ranked in Python and those with score >= :data:`MIN_SCORE` are returned.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from rapidfuzz.distance import Levenshtein
from sqlalchemy.exc import SQLAlchemyError

__all__ = [
    "ALTERNATIVE_WEIGHT",
    "CONFUSION_CLASSES",
    "MAX_QUERY_LEN",
    "MIN_SCORE",
    "SIMILAR_PAIRS",
    "SearchError",
    "SearchPage",
    "confusion_key",
    "key_variants",
    "normalize_query",
    "plate_distance",
    "plate_score",
    "query_variants",
    "search_events",
]

# --------------------------------------------------------------------------------------------
# Tables (module docstring)

CONFUSION_CLASSES: dict[str, str] = {
    "0": "0OQD",
    "1": "1ILT",
    "2": "2Z",
    "5": "5S",
    "6": "6GC",
    "8": "8B",
}
_KEY = str.maketrans({c: rep for rep, chars in CONFUSION_CLASSES.items() for c in chars})

# seen confused in the bench tables (photos: 4->L, Z->7, W->N, E->3, 5->B, H->U) or classic look-alikes
# that are too different to fold without merging unrelated plates (cheaper substitution only);
# S/3 is issue 12's own example (X5NB2S read for XSNB23)
SIMILAR_PAIRS: frozenset[frozenset[str]] = frozenset(
    frozenset(p)
    for p in (
        "4L",
        "4A",
        "7Z",
        "72",
        "7T",
        "WN",
        "MN",
        "MW",
        "E3",
        "38",
        "B3",
        "S3",
        "5B",
        "HU",
        "UV",
        "VY",
        "KX",
        "PR",
        "EF",
        "HN",
        "UO",
        "U0",
        "JI",
        "J1",
        "FP",
    )
)

LOOKALIKE_COST = 0.2
SIMILAR_COST = 0.5
SUBSTITUTION_COST = 1.0
EDGE_INDEL_COST = 0.6
INDEL_COST = 1.0
ALTERNATIVE_WEIGHT = 0.9
MIN_SCORE = 0.5
MAX_QUERY_LEN = 64
MAX_LIMIT = 1000
MAX_TEXTS = 2000  # wildcard/regex: more matching texts than this stay a subquery
# variants: deletions only of keys this long or longer; affixes at least this long
MIN_VARIANT_LEN = 4

_PLAIN_DROP = str.maketrans("", "", " -.\u00b7")
_PLATE_RE = re.compile(r"^[A-Z0-9]+$")
_WILD_RE = re.compile(r"^[A-Z0-9*?]+$")
# the regex subset Python re and PostgreSQL ARE read the same way
_REGEX_ALLOWED = re.compile(r"^[A-Za-z0-9.^$*+?{}\[\]()|,\-\\ ]+$")


class SearchError(ValueError):
    """A search query that cannot be run (bad syntax, too long, bad filter); ``str()`` is one
    plain line fit to show the user."""


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
# Keys and distance


def confusion_key(text: str) -> str:
    """The look-alike-folded key of a plate text (module docstring, table).

    ``text`` is normalised first (upper case, only ``[A-Z0-9]`` kept), e.g.
    ``confusion_key("XS-NB-23") == confusion_key("X5NB2S") == "X5N825"``.
    """
    return _norm(text).translate(_KEY)


_NOT_PLATE = re.compile(r"[^A-Z0-9]+")


def _norm(text: str) -> str:
    return _NOT_PLATE.sub("", text.upper())


def _affixes(key: str, min_len: int) -> set[str]:
    n = len(key)
    out: set[str] = set()
    for m in range(max(MIN_VARIANT_LEN, min_len), n):
        out.add(key[:m])
        out.add(key[n - m :])
    return out


def _deletions(key: str) -> set[str]:
    if len(key) <= MIN_VARIANT_LEN:
        return set()
    return {key[:i] + key[i + 1 :] for i in range(len(key))}


def key_variants(key: str) -> set[str]:
    """The lookup variants stored for one confusion ``key`` (rows of ``plate_key_variants``):
    the key, its single deletions (keys of >= 5 characters) and its prefixes and suffixes of
    ``max(4, len - 3) .. len - 1`` characters."""
    return {key} | _deletions(key) | _affixes(key, len(key) - 3) if key else set()


def query_variants(key: str) -> set[str]:
    """The variants of a query's confusion ``key`` looked up in ``plate_key_variants``: the
    key, its single deletions (>= 5 characters) and prefixes/suffixes of ``max(4, len - 2)``
    .. ``len - 1`` characters."""
    return {key} | _deletions(key) | _affixes(key, len(key) - 2) if key else set()


# the similar pairs seen through the key (S/3 -> 5/3): pricing keys with these never costs more
# than pricing the texts behind them, so a key's score bounds its texts' scores from above
_SIMILAR_KEYS = frozenset(frozenset(c.translate(_KEY) for c in p) for p in SIMILAR_PAIRS)


def _similar(a: str, b: str) -> bool:
    return frozenset((a, b)) in SIMILAR_PAIRS


def plate_distance(a: str, b: str) -> float:
    """Weighted OCR edit distance between two plate texts (>= 0.0; 0.0 = identical).

    Both are normalised (upper case, ``[A-Z0-9]`` only). Alignment: rapidfuzz
    ``Levenshtein.opcodes`` over the confusion keys; costs per aligned character in the module
    docstring (look-alike 0.2, similar pair 0.5, other substitution 1.0, insertion/deletion at an
    end 0.6, inside 1.0). E.g. ``plate_distance("X5NB2S", "XSNB23") == 0.7`` (S/5 look-alike, S/3
    similar pair), ``plate_distance("NB23", "XSNB23") == 1.2`` (a dropped first group).
    """
    return _distance(_norm(a), _norm(b))


@lru_cache(maxsize=65536)
def _distance(a: str, b: str) -> float:
    if a == b:
        return 0.0
    ka, kb = a.translate(_KEY), b.translate(_KEY)
    d = 0.0
    for op in Levenshtein.opcodes(ka, kb):
        tag, i1, i2, j1, j2 = op.tag, op.src_start, op.src_end, op.dest_start, op.dest_end
        if tag == "equal":
            d += LOOKALIKE_COST * sum(x != y for x, y in zip(a[i1:i2], b[j1:j2], strict=True))
        elif tag == "replace":
            for x, y in zip(a[i1:i2], b[j1:j2], strict=True):  # equal and replace blocks: same length
                d += SIMILAR_COST if _similar(x, y) else SUBSTITUTION_COST
        else:  # insert / delete: a run of characters only one side has
            n = max(i2 - i1, j2 - j1)
            at_edge = i1 == 0 or i2 == len(a) or j1 == 0 or j2 == len(b)
            d += n * (EDGE_INDEL_COST if at_edge else INDEL_COST)
    return round(d, 6)


def plate_score(a: str, b: str) -> float:
    """Similarity of two plate texts in ``[0, 1]``: ``1 - plate_distance / max(len)`` (1.0 =
    identical after normalisation, 0.0 for an empty side)."""
    return _score(_norm(a), _norm(b))


@lru_cache(maxsize=65536)
def _score(na: str, nb: str) -> float:
    """:func:`plate_score` of two already normalised texts (stored texts are)."""
    n = max(len(na), len(nb))
    if not n or not na or not nb:
        return 0.0
    return max(0.0, min(1.0, 1.0 - _distance(na, nb) / n))


# --------------------------------------------------------------------------------------------
# Query parsing


@dataclass(frozen=True)
class ParsedQuery:
    """``kind`` ("all" | "exact" | "wildcard" | "regex" | "fuzzy") and ``text``: the normalised
    plate (exact/fuzzy), the pattern in upper case (wildcard) or the regex source (regex)."""

    kind: str
    text: str = ""


def normalize_query(q: str | None) -> ParsedQuery:
    """Parse a query string (module docstring); raises :class:`SearchError` on bad input."""
    if q is None:
        return ParsedQuery("all")
    if not isinstance(q, str):
        raise SearchError(f"search query must be text, got {type(q).__name__}")
    if len(q) > MAX_QUERY_LEN:
        raise SearchError(f"search query is {len(q)} characters long; at most {MAX_QUERY_LEN} are allowed")
    if any(unicodedata.category(c).startswith("C") for c in q):
        raise SearchError("search query contains control characters")
    s = q.strip()
    if not s:
        return ParsedQuery("all")
    if len(s) >= 2 and s.startswith("/") and s.endswith("/"):
        return ParsedQuery("regex", _check_regex(s[1:-1]))
    if s.startswith("/"):
        raise SearchError("a regular expression must be written /pattern/ (closing slash missing)")
    exact = False
    if s.startswith("="):
        exact, s = True, s[1:]
    elif len(s) >= 2 and s[0] == s[-1] == '"':
        exact, s = True, s[1:-1]
    t = s.upper().translate(_PLAIN_DROP)
    if not t:
        raise SearchError("search query has no letters or digits")
    if "*" in t or "?" in t:
        return ParsedQuery("wildcard", _check_wildcard(t, exact))
    if not _PLATE_RE.match(t):
        raise SearchError(
            f"unexpected character {_first_bad(t, '')!r} in plate query; plates have letters and digits "
            "(wildcards * and ?, regular expressions /.../)"
        )
    return ParsedQuery("exact" if exact else "fuzzy", t)


def _check_wildcard(t: str, exact: bool) -> str:
    if exact:
        raise SearchError('an exact query (=... or "...") cannot contain wildcards')
    if not _WILD_RE.match(t):
        raise SearchError(
            f"unexpected character {_first_bad(t, '*?')!r} in plate pattern; use letters, digits, * and ?"
        )
    if not t.strip("*?"):
        raise SearchError("a wildcard pattern needs at least one letter or digit")
    return t


def _first_bad(t: str, extra: str) -> str:
    return next(c for c in t if not ((c.isascii() and c.isalnum()) or c in extra))


def _check_regex(src: str) -> str:
    if not src:
        raise SearchError("empty regular expression //")
    if not _REGEX_ALLOWED.match(src):
        bad = next(c for c in src if not _REGEX_ALLOWED.match(c))
        raise SearchError(f"character {bad!r} is not allowed in a plate regular expression")
    if "(?" in src:
        raise SearchError(
            "(? constructs (look-around, flags, named groups) are not supported in plate regular expressions"
        )
    if re.search(r"\\[1-9]", src):
        raise SearchError("back-references are not supported in plate regular expressions")
    if re.search(r"\\[^dDwWsS.\\^$*+?{}\[\]()|\-]", src):
        raise SearchError(
            "only the escapes \\d \\w \\s (and escaped punctuation) are supported in plate regular expressions"
        )
    if any(int(n) > 255 for m in re.finditer(r"\{(\d*)(?:,(\d*))?\}", src) for n in m.groups() if n):
        raise SearchError("repetition counts {m,n} above 255 are not supported in plate regular expressions")
    try:
        re.compile(src, re.IGNORECASE)
    except re.error as exc:
        raise SearchError(f"invalid regular expression /{src}/: {exc}") from None
    return src


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


@lru_cache(maxsize=65536)
def key_score_bound(ka: str, kb: str) -> float:
    """An upper bound of :func:`plate_score` over all texts with confusion keys ``ka``, ``kb``:
    the same alignment and costs on the keys themselves, look-alikes free and similar pairs
    judged through the key (:data:`_SIMILAR_KEYS`)."""
    n = max(len(ka), len(kb))
    if not n or not ka or not kb:
        return 0.0
    if ka == kb:
        return 1.0
    d = 0.0
    for op in Levenshtein.opcodes(ka, kb):
        tag, i1, i2, j1, j2 = op.tag, op.src_start, op.src_end, op.dest_start, op.dest_end
        if tag == "replace":
            for x, y in zip(ka[i1:i2], kb[j1:j2], strict=True):  # a replace block: same length
                d += SIMILAR_COST if frozenset((x, y)) in _SIMILAR_KEYS else SUBSTITUTION_COST
        elif tag != "equal":
            n_ = max(i2 - i1, j2 - j1)
            at_edge = i1 == 0 or i2 == len(ka) or j1 == 0 or j2 == len(kb)
            d += n_ * (EDGE_INDEL_COST if at_edge else INDEL_COST)
    return max(0.0, min(1.0, 1.0 - d / n))


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


_QUANT = "*?{"


def regex_hints(src: str) -> tuple[str, str]:
    """``(prefix, literal)`` that every text matching the plate regex ``src`` must have: a
    literal prefix when ``src`` is anchored (``^XS.B`` -> ``XS``) and the longest literal run of
    letters/digits outside groups and classes (``.NB2`` -> ``NB2``), both upper case; ``""``
    where none can be proven (any ``|``, a quantified character). Used only to narrow the scan
    before the regex itself runs."""
    if "|" in src:
        return "", ""
    runs: list[str] = []
    cur: list[str] = []

    def end_run() -> None:
        runs.append("".join(cur))
        cur.clear()

    depth = 0
    i = 0
    while i < len(src):
        c = src[i]
        nxt = src[i + 1] if i + 1 < len(src) else ""
        if c == "\\":
            end_run()
            i += 2
            continue
        if c == "[":
            end_run()
            j = src.find("]", i + 2 if nxt in "^]" else i + 1)
            i = len(src) if j < 0 else j + 1
            continue
        if c in "()":
            end_run()
            depth += 1 if c == "(" else -1
            i += 1
            continue
        if c == "{":  # a {m,n} count: skip it
            end_run()
            j = src.find("}", i)
            i = len(src) if j < 0 else j + 1
            continue
        if c.isalnum() and depth == 0 and not (nxt and nxt in _QUANT):
            cur.append(c.upper())
            if nxt == "+":  # required, but repeatable: the run ends here
                end_run()
        else:
            end_run()
        i += 1
    runs.append("".join(cur))
    prefix = ""
    if src.startswith("^"):
        m = re.match(r"\^([A-Za-z0-9]+)", src)
        if m:
            lit = m.group(1)
            after = src[m.end() : m.end() + 1]
            prefix = (lit[:-1] if after and after in _QUANT else lit).upper()
    literal = max(runs, key=len, default="")
    return prefix, literal if len(literal) >= 2 else ""


def _regex(conn: sa.Connection, col, src: str):
    """``col`` matches regex ``src``, case-insensitive: PostgreSQL ``~*``, SQLite ``REGEXP``
    (the function :func:`dashcam.db._setup_sqlite` registers)."""
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
