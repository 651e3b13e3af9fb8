"""Plate query parsing: :func:`normalize_query` reads the query language of :mod:`dashcam.search`
into a :class:`ParsedQuery` (``all`` / ``exact`` / ``wildcard`` / ``regex`` / ``fuzzy``) or raises
:class:`SearchError` with one line; the regex subset check; :func:`regex_hints` (literal prefix and
run a plate regex requires, to narrow the scan).

Part of :mod:`dashcam.search` (import the names from there). No database: the parsed query is run
by :mod:`dashcam.search.matching`; dashcam.watch_lists validates its patterns with it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_QUERY_LEN = 64

_PLAIN_DROP = str.maketrans("", "", " -.\u00b7")
_PLATE_RE = re.compile(r"^[A-Z0-9]+$")
_WILD_RE = re.compile(r"^[A-Z0-9*?]+$")
# the regex subset Python re and PostgreSQL ARE read the same way
_REGEX_ALLOWED = re.compile(r"^[A-Za-z0-9.^$*+?{}\[\]()|,\-\\ ]+$")


class SearchError(ValueError):
    """A search query that cannot be run (bad syntax, too long, bad filter); ``str()`` is one
    plain line fit to show the user."""


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
