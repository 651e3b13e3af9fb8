"""The map of every sighting with a position: ``GET /map`` (Leaflet page) and ``GET /api/sightings`` (its JSON).

Both take ``since`` / ``until`` (YYYY-MM-DD, display zone) and return at most
:data:`~dashcam.web.helpers.MAP_LIMIT` sightings, newest first, read through the app's read-only
connection (:class:`dashcam.web.app.Web`). Registered by :func:`dashcam.web.app.create_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from dashcam.db import VEHICLES
from dashcam.web.helpers import MAP_LIMIT, _parse_day

if TYPE_CHECKING:
    from dashcam.web.app import Web

Page = Callable[..., Response]


def _sightings(web: Web, conn, since: str | None, until: str | None) -> list[dict]:
    lo, hi = web.day_bounds(_parse_day(since, "since"), _parse_day(until, "until"))
    stmt = (
        sa.select(
            VEHICLES.c.id,
            VEHICLES.c.final_plate,
            VEHICLES.c.ts,
            VEHICLES.c.lat,
            VEHICLES.c.lon,
            VEHICLES.c.video_id,
            VEHICLES.c.pts_s,
            VEHICLES.c.plate_confidence,
        )
        .where(VEHICLES.c.lat.is_not(None), VEHICLES.c.lon.is_not(None))
        .order_by(VEHICLES.c.ts.desc(), VEHICLES.c.id)
        .limit(MAP_LIMIT)
    )
    if lo is not None:
        stmt = stmt.where(VEHICLES.c.ts >= lo)
    if hi is not None:
        stmt = stmt.where(VEHICLES.c.ts < hi)
    out = []
    for r in conn.execute(stmt).mappings():
        out.append(
            {
                "id": r["id"],
                "plate": r["final_plate"],
                "lat": r["lat"],
                "lon": r["lon"],
                "when": web.local(r["ts"]).strftime("%Y-%m-%d %H:%M:%S"),
                "conf": round(r["plate_confidence"], 3),
                "url": f"/videos/{r['video_id']}?t={float(r['pts_s']):.2f}",
                "plate_url": f"/plates/{r['final_plate']}",
            }
        )
    return out


def register(app: FastAPI, page: Page, web: Web, db: Callable[[], Iterator[sa.Connection]]) -> None:
    """Add these routes to ``app``: ``page(request, template, status=200, **ctx)`` renders a
    template, ``web`` is the app's :class:`~dashcam.web.app.Web`, ``db`` the read-only connection dependency."""

    @app.get("/map", response_class=HTMLResponse)
    def map_page(request: Request, since: str | None = None, until: str | None = None, conn=Depends(db)):
        points = _sightings(web, conn, since, until)
        return page(
            request, "map.html", title="Map", points=points, since=since or "", until=until or "", limit=MAP_LIMIT
        )

    @app.get("/api/sightings")
    def sightings_api(since: str | None = None, until: str | None = None, conn=Depends(db)):
        """Sightings with a position in the date range (newest first, at most MAP_LIMIT)."""
        return {"sightings": _sightings(web, conn, since, until)}
