"""Drive pages of the web UI: the dashboard, the drive list, moment links, a drive's player page and its JSON.

Routes: ``GET /``, ``GET /drives``, ``GET /videos/<video_id>?t=`` (redirect to the drive page at a
moment), ``GET /drives/<drive_id>?v=&t=``, ``GET /api/drives/<drive_id>?v=``. Reads go through
the app's read-only connection (:class:`dashcam.web.app.Web`, which also caches the drive
grouping of :mod:`dashcam.drives`); watch hits and corrections shown on the pages come from
:mod:`dashcam.web.watch_pages`. Registered by :func:`dashcam.web.app.create_app`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dashcam.db import VEHICLES, VIDEOS
from dashcam.drives import Drive
from dashcam.web import watch_pages
from dashcam.web.charts import speed_series, speed_svg
from dashcam.web.helpers import PAGE_SIZE, BadRequest, _iso, _jsonable, _parse_day, find_drive

if TYPE_CHECKING:
    from dashcam.web.app import Web

Page = Callable[..., Response]


def _t0(video: dict, events: list[dict]) -> datetime:
    """GPS/UTC time of the video's pts 0: from an event (ts - pts_s; ts is GPS-corrected) if any,
    else the recorded start."""
    for e in events:
        if e["video_id"] == video["id"]:
            return _iso(e["ts"]) - timedelta(seconds=float(e["pts_s"]))
    return _iso(video["recording_start"])


def _drive_cards(web: Web, conn, drives: list[Drive]) -> dict[str, dict]:
    """Per drive: distinct plates in order, a thumbnail URL."""
    evs = web.events_of(conn, [v for d in drives for v in d.video_ids])
    by_video = defaultdict(list)
    for e in evs:
        by_video[e["video_id"]].append(e)
    out = {}
    for d in drives:
        des = [e for v in d.video_ids for e in by_video.get(v, [])]
        plates = list(dict.fromkeys(e["final_plate"] for e in sorted(des, key=lambda e: e["ts"])))
        thumb = next((e["thumb_url"] for e in des if e["thumb_url"]), None)
        out[d.id] = {
            "plates": plates,
            "thumb": thumb
            or (f"/media/poster/{d.segments[0].primary['id']}" if d.segments[0].primary.get("archive_path") else None),
        }
    return out


def _drive_of_video(web: Web, conn, video_id: str) -> Drive:
    for d in web.drives(conn):
        if video_id in d.video_ids:
            return d
    raise HTTPException(404, f"There is no video {video_id[:80]!r}.")


def _drive_data(web: Web, conn, d: Drive, video: dict) -> dict:
    events = web.events_of(conn, d.video_ids)
    seg = d.segment_of(video["id"])
    t0 = _t0(video, events)
    route = web.route_of(conn, video["id"])
    cur = []
    for p in (route or {}).get("points") or []:
        cur.append([round((_iso(p[0]) - t0).total_seconds(), 3), p[1], p[2]])
    others = []
    for s in d.segments:
        if s is seg:
            continue
        pv = s.primary
        r = web.route_of(conn, pv["id"])
        if not r:
            continue
        st0 = _t0(pv, events)
        others.append(
            {
                "video": pv["id"],
                "url": f"/videos/{pv['id']}",
                "points": [[round((_iso(p[0]) - st0).total_seconds(), 3), p[1], p[2]] for p in r["points"]],
            }
        )
    evs = [
        {
            "id": e["id"],
            "plate": e["final_plate"],
            "pts": e["pts_s"],
            "lat": e["lat"],
            "lon": e["lon"],
            "video": e["video_id"],
            "url": e["moment_url"],
            "here": e["video_id"] == video["id"],
        }
        for e in events
    ]
    return {
        "video": video["id"],
        "drive": d.id,
        "t0": t0.isoformat(),
        "duration": float(video["duration_s"]),
        "route": cur,
        "others": others,
        "events": evs,
        "_events": events,
        "_route": route,
    }


def register(app: FastAPI, page: Page, web: Web, db: Callable[[], Iterator[sa.Connection]]) -> None:
    """Add the drive routes to ``app``: ``page(request, template, status=200, **ctx)`` renders a
    template, ``web`` is the app's :class:`~dashcam.web.app.Web`, ``db`` the read-only connection dependency."""
    _register_lists(app, page, web, db)
    _register_drive(app, page, web, db)


def _register_lists(app: FastAPI, page: Page, web: Web, db: Callable[[], Iterator[sa.Connection]]) -> None:
    """``GET /`` (dashboard) and ``GET /drives`` (the list by day)."""

    @app.get("/", response_class=HTMLResponse)
    def dashboard(request: Request, conn=Depends(db)):
        drives = web.drives(conn)
        km = web.drive_km(conn, drives)
        n_events, n_plates = conn.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(VEHICLES.c.final_plate)))
        ).one()
        video_s = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(VIDEOS.c.duration_s), 0.0))).scalar_one()
        latest_rows = conn.execute(
            sa.select(VEHICLES).order_by(VEHICLES.c.ts.desc(), VEHICLES.c.id).limit(12)
        ).mappings()
        latest = [web.decorate(_jsonable(r)) for r in latest_rows]
        top = conn.execute(
            sa.select(VEHICLES.c.final_plate, sa.func.count().label("n"), sa.func.max(VEHICLES.c.ts).label("last"))
            .group_by(VEHICLES.c.final_plate)
            .order_by(sa.desc("n"), sa.desc("last"), VEHICLES.c.final_plate)
            .limit(10)
        ).all()
        failures, why = web.failures.read()
        recent = drives[:5]
        return page(
            request,
            "dashboard.html",
            title="Dashboard",
            totals={
                "drives": len(drives),
                "hours": float(video_s) / 3600,
                "km": sum(km.values()),
                "events": n_events,
                "plates": n_plates,
            },
            drives=recent,
            km=km,
            drive_cards=_drive_cards(web, conn, recent),
            latest=latest,
            top=top,
            failures=failures,
            failures_why=why,
            prefect_ui=web.prefect_ui_url,
            watch_hits=watch_pages.recent_hits(web),
        )

    @app.get("/drives", response_class=HTMLResponse)
    def drives_page(
        request: Request, since: str | None = None, until: str | None = None, page_no: int = 1, conn=Depends(db)
    ):
        d_since, d_until = _parse_day(since, "since"), _parse_day(until, "until")
        if d_since and d_until and d_since > d_until:
            raise BadRequest("since is after until.")
        lo, hi = web.day_bounds(d_since, d_until)
        drives = [d for d in web.drives(conn) if (lo is None or d.end >= lo) and (hi is None or d.start < hi)]
        if page_no < 1:
            raise BadRequest("page_no must be >= 1.")
        total = len(drives)
        shown = drives[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]
        km = web.drive_km(conn, shown)
        days: dict[str, list[Drive]] = {}
        for d in shown:
            days.setdefault(web.local(d.start).strftime("%A %d %B %Y"), []).append(d)
        qs = {k: v for k, v in {"since": since, "until": until}.items() if v}
        return page(
            request,
            "drives.html",
            title="Drives",
            days=days,
            km=km,
            cards=_drive_cards(web, conn, shown),
            since=since or "",
            until=until or "",
            total=total,
            page_no=page_no,
            pages=max(1, -(-total // PAGE_SIZE)),
            qs=qs,
        )


def _register_drive(app: FastAPI, page: Page, web: Web, db: Callable[[], Iterator[sa.Connection]]) -> None:
    """``GET /videos/<id>`` (moment link), ``GET /drives/<id>`` (player page), ``GET /api/drives/<id>``."""

    @app.get("/videos/{video_id}")
    def video_moment(video_id: str, t: float | None = None, conn=Depends(db)):
        """A stable link to a moment: redirects to the video's drive page at ``t`` seconds."""
        d = _drive_of_video(web, conn, video_id)
        q = {"v": video_id}
        if t is not None:
            if not math.isfinite(t) or t < 0:
                raise BadRequest("t must be a number of seconds >= 0.")
            q["t"] = f"{t:.2f}"
        return RedirectResponse(f"/drives/{d.id}?{urlencode(q)}", status_code=303)

    @app.get("/drives/{drive_id}", response_class=HTMLResponse)
    def drive_page(request: Request, drive_id: str, v: str | None = None, t: float | None = None, conn=Depends(db)):
        drives, d = find_drive(web, conn, drive_id)
        if t is not None and (not math.isfinite(t) or t < 0):
            raise BadRequest("t must be a number of seconds >= 0.")
        if v is None:
            seg = d.segments[0]
            video = seg.primary
        else:
            found = d.segment_of(v)
            if found is None:
                raise HTTPException(404, f"Video {v[:80]!r} is not part of drive {drive_id[:80]!r}.")
            seg = found
            video = next(x for x in seg.channels.values() if x["id"] == v)
        data = _drive_data(web, conn, d, video)
        events = data.pop("_events")
        route = data.pop("_route")
        km = web.drive_km(conn, [d])[d.id]
        t0 = datetime.fromisoformat(data["t0"])
        chart = (
            speed_svg(speed_series((route or {}).get("points") or [], t0), float(video["duration_s"]))
            if route
            else None
        )
        channels = [
            (ch or "single", x) for ch, x in sorted(seg.channels.items(), key=lambda kv: {"F": 0, "": 1, "R": 2}[kv[0]])
        ]
        idx = drives.index(d)
        newer = drives[idx - 1] if idx > 0 else None
        older = drives[idx + 1] if idx + 1 < len(drives) else None
        ev_ids = [e["id"] for e in events]
        return page(
            request,
            "drive.html",
            title=f"Drive {web.local(d.start).strftime('%Y-%m-%d %H:%M')}",
            d=d,
            video=video,
            hits=watch_pages.hits_of(web, ev_ids),
            corrections=watch_pages.corrections_by_event(web, ev_ids),
            seg=seg,
            channels=channels,
            events=events,
            data=data,
            km=km,
            chart=chart,
            t=t or 0.0,
            plates=list(dict.fromkeys(e["final_plate"] for e in events)),
            newer=newer,
            older=older,
            seg_ids=[x["id"] for x in seg.channels.values()],
            rear_ids=[x["id"] for c, x in seg.channels.items() if c == "R"],
        )

    @app.get("/api/drives/{drive_id}")
    def drive_api(drive_id: str, v: str | None = None, conn=Depends(db)):
        """The drive page's map/player data as JSON (routes in video seconds, events)."""
        _, d = find_drive(web, conn, drive_id)
        video = d.segments[0].primary
        if v is not None:
            seg = d.segment_of(v)
            if seg is None:
                raise HTTPException(404, f"Video {v[:80]!r} is not part of drive {drive_id[:80]!r}.")
            video = next(x for x in seg.channels.values() if x["id"] == v)
        data = _drive_data(web, conn, d, video)
        data.pop("_events"), data.pop("_route")
        data["videos"] = d.video_ids
        data["start"], data["end"] = d.start.isoformat(), d.end.isoformat()
        return data
