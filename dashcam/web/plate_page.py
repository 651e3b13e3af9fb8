"""The plate page of the web UI: ``GET /plates/<PLATE>`` (every sighting, a day timeline, a map, notes and tags).

:func:`register` also returns the page's renderer, ``plate_view``, which
:mod:`dashcam.web.watch_pages` needs to show a note form's error on the plate page; corrections,
watch hits and notes are read through :mod:`dashcam.watch_lists` on the app's read-only engine
(:class:`dashcam.web.app.Web`). Registered by :func:`dashcam.web.app.create_app`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from dashcam import watch_lists as wl
from dashcam.db import VEHICLES
from dashcam.web import watch_pages
from dashcam.web.helpers import _jsonable, _plate

if TYPE_CHECKING:
    from dashcam.web.app import Web

Page = Callable[..., Response]


def register(app: FastAPI, page: Page, web: Web, db: Callable[[], Iterator[sa.Connection]]) -> Callable[..., Response]:
    """Add ``GET /plates/<PLATE>`` to ``app`` and return ``plate_view(request, conn, plate, status=200, **extra)``
    (the page's renderer). ``page(request, template, status=200, **ctx)`` renders a template, ``web`` is the
    app's :class:`~dashcam.web.app.Web`, ``db`` the read-only connection dependency."""

    @app.get("/plates/{plate}", response_class=HTMLResponse)
    def plate_page(request: Request, plate: str, conn=Depends(db)):
        return plate_view(request, conn, plate)

    def plate_view(request: Request, conn, plate: str, status: int = 200, **extra) -> Response:
        """The plate page; ``extra``: the note form's ``note_error`` / ``note_kind`` / ``note_text``."""
        p = _plate(plate)
        rows = conn.execute(
            sa.select(VEHICLES).where(VEHICLES.c.final_plate == p).order_by(VEHICLES.c.ts, VEHICLES.c.id)
        ).mappings()
        sightings = [web.decorate(_jsonable(r)) for r in rows]
        notes = wl.list_plate_notes(web.engine, p)
        renamed = [c for c in wl.list_corrections(web.engine, plate=p) if c["text"] != p]
        if not sightings and not notes and not renamed:
            return page(
                request,
                "error.html",
                status=404,
                title=f"Plate {p}",
                code=404,
                message=f"No sightings of plate {p}.",
                search_link=f"/search?{urlencode({'q': p})}",
            )
        drives = web.drives(conn)
        of_video = {v: d for d in drives for v in d.video_ids}
        for s in sightings:
            s["drive"] = of_video.get(s["video_id"])
        seen_drives = list(dict.fromkeys(s["drive"].id for s in sightings if s["drive"]))
        timeline = Counter(web.local(s["ts"]).date() for s in sightings)
        tl = sorted(timeline.items())
        points = [
            {
                "lat": s["lat"],
                "lon": s["lon"],
                "plate": s["final_plate"],
                "url": s["moment_url"],
                "when": web.local(s["ts"]).strftime("%Y-%m-%d %H:%M:%S"),
            }
            for s in sightings
            if s["lat"] is not None
        ]
        ev_ids = [s["id"] for s in sightings]
        ctx = {"note_error": None, "note_kind": "note", "note_text": "", **extra}
        return page(
            request,
            "plate.html",
            status=status,
            title=f"Plate {p}",
            plate=p,
            sightings=sightings,
            timeline=tl,
            tl_max=max(timeline.values(), default=1),
            n_drives=len(seen_drives),
            points=points,
            drives={d.id: d for d in drives if d.id in seen_drives},
            hits=watch_pages.hits_of(web, ev_ids),
            corrections=watch_pages.corrections_by_event(web, ev_ids),
            renamed=renamed,
            notes=[n for n in notes if n["kind"] == "note"],
            tags=[n for n in notes if n["kind"] == "tag"],
            **ctx,
        )

    return plate_view
