"""The shared base of :mod:`dashcam.watch_lists`: limits and defaults, :class:`WatchListError`, input
validation (entry fields, pattern parsing, plate texts, who) and the two database helpers every
sibling uses (:func:`_begin`, :func:`_db_error`).

It imports nothing of its siblings; :mod:`.entries`, :mod:`.matching`, :mod:`.alerts`,
:mod:`.corrections` and :mod:`.notes` import from it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from dashcam.db import DatabaseError, _reason, _safe_url
from dashcam.search import SearchError, normalize_query

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


def _begin(engine: sa.Engine) -> sa.Connection:
    conn = engine.connect()
    if conn.dialect.name == "sqlite":
        conn.execution_options(sqlite_begin="IMMEDIATE")
    return conn


# --------------------------------------------------------------------------------------------
# Plate texts and who (corrections and notes)


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
