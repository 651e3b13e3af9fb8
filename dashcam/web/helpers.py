"""Shared helpers of the web UI's page modules: limits, one-line 400s, query-value parsing.

Everything here is pure (no app state): :mod:`dashcam.web.app` (the factory and :class:`Web`) and
the route modules (:mod:`dashcam.web.drive_pages`, :mod:`~dashcam.web.plate_page`,
:mod:`~dashcam.web.map_page`, :mod:`~dashcam.web.search_pages`, :mod:`~dashcam.web.media_routes`,
:mod:`~dashcam.web.login_page`) import from it, so it imports none of them (no cycle). The names
are also re-exported from :mod:`dashcam.web.app`, their old home.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import TYPE_CHECKING

from fastapi import HTTPException

if TYPE_CHECKING:
    from dashcam.drives import Drive
    from dashcam.web.app import Web

PLATE_RE = re.compile(r"^[A-Z0-9]{1,16}$")
MAX_Q = 200  # characters of a search query; longer gets a 400 (the search core has its own limit too)
PAGE_SIZE = 50
EXPORT_LIMIT = 10_000
MAP_LIMIT = 20_000


# --------------------------------------------------------------------------------------------
# small helpers


class BadRequest(HTTPException):
    def __init__(self, msg: str):
        super().__init__(400, msg)


def _iso(v) -> datetime:
    return datetime.fromisoformat(v) if isinstance(v, str) else v


def _jsonable(row) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items()}


def _parse_day(s: str | None, what: str) -> date | None:
    if s is None or s.strip() == "":
        return None
    try:
        return date.fromisoformat(s.strip())
    except ValueError:
        raise BadRequest(f"{what}={s[:40]!r} is not a date: use YYYY-MM-DD.") from None


def _parse_float(s: str | None, what: str, lo: float, hi: float) -> float | None:
    if s is None or s.strip() == "":
        return None
    try:
        v = float(s)
    except ValueError:
        raise BadRequest(f"{what}={s[:40]!r} is not a number.") from None
    if not (lo <= v <= hi) or not math.isfinite(v):
        raise BadRequest(f"{what}={v:g} is out of range ({lo:g} to {hi:g}).")
    return v


def _parse_bbox(s: str | None) -> tuple[float, float, float, float] | None:
    if s is None or s.strip() == "":
        return None
    parts = s.split(",")
    if len(parts) != 4:
        raise BadRequest(f"box={s[:60]!r}: give min_lat,min_lon,max_lat,max_lon (WGS84 degrees).")
    vals: list[float] = []
    for i, p in enumerate(parts):
        lim = 90 if i % 2 == 0 else 180
        name = ("min_lat", "min_lon", "max_lat", "max_lon")[i]
        v = _parse_float(p, name, -lim, lim)
        if v is None:  # "1,,3,4": was a TypeError (500) in the comparison below
            raise BadRequest(f"box={s[:60]!r}: {name} is empty; give min_lat,min_lon,max_lat,max_lon (WGS84 degrees).")
        vals.append(v)
    if vals[0] > vals[2] or vals[1] > vals[3]:
        raise BadRequest("box: min_lat must be <= max_lat and min_lon <= max_lon.")
    return vals[0], vals[1], vals[2], vals[3]


def _plate(text: str) -> str:
    p = text.strip().upper()
    if not PLATE_RE.match(p):
        raise BadRequest(f"{text[:40]!r} is not a plate text (letters and digits, at most 16).")
    return p


def _fmt_dur(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {sec:02d} s" if m else f"{sec} s")


def find_drive(web: Web, conn, drive_id: str) -> tuple[list[Drive], Drive]:
    """All drives (newest first) and the one with id ``drive_id``; HTTP 404 if there is none."""
    drives = web.drives(conn)
    for d in drives:
        if d.id == drive_id:
            return drives, d
    raise HTTPException(404, f"There is no drive {drive_id[:80]!r}.")
