"""The web UI: FastAPI app factory, pages, media and exports (see docs/webui.md).

Server-rendered Jinja2 pages; JavaScript only for the maps (Leaflet) and the player sync
(``static/app.js``). Each request gets one read-only database connection (SQLite
``PRAGMA query_only``; PostgreSQL ``default_transaction_read_only``); every statement is a
parameterised SQLAlchemy Core query. Only the POST routes of :mod:`dashcam.web.watch_pages`
(watch lists, corrections, notes) write, through :meth:`Web.writer`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import overload
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy import event
from starlette.exceptions import HTTPException as StarletteHTTPException

from dashcam import watch_lists as wl
from dashcam.db import ROUTES, VEHICLES, VIDEOS, make_engine
from dashcam.drives import Drive, load_drives, route_length_m
from dashcam.settings import Settings
from dashcam.web import exports, watch_pages
from dashcam.web.charts import speed_series, speed_svg
from dashcam.web.media import archive_file, file_response, poster
from dashcam.web.prefect_runs import FailureReader
from dashcam.web.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Guard,
    check_csrf,
    csrf_token,
    security_headers,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PLATE_RE = re.compile(r"^[A-Z0-9]{1,16}$")
MAX_Q = 200  # characters of a search query; longer gets a 400 (the search core has its own limit too)
PAGE_SIZE = 50
EXPORT_LIMIT = 10_000
MAP_LIMIT = 20_000

__all__ = ["create_app"]


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


# --------------------------------------------------------------------------------------------
# the app


class Web:
    """Per-app state and the read helpers that pages share."""

    def __init__(self, settings: Settings, prefect_api_url: str | None, prefect_ui_url: str | None):
        self.settings = settings
        assert settings.archive_dir is not None  # Settings fills it in (<data_dir>/archive)
        self.archive_dir = Path(settings.archive_dir).resolve()
        self.poster_dir = Path(settings.data_dir) / "web-cache" / "posters"
        self.tz = None if settings.camera_tz in ("", "local") else ZoneInfo(settings.camera_tz)
        self.gap_min = float(settings.drive_gap_min)
        self.failures = FailureReader(prefect_api_url, prefect_ui_url)
        self.prefect_ui_url = prefect_ui_url
        self._route_len: dict[tuple[str, int], float] = {}
        self._drives: tuple[tuple, list[Drive]] | None = None  # (videos fingerprint, drives), see drives()
        self._drives_lock = threading.Lock()
        url = settings.db_url
        self._writer: sa.Engine | None = None
        self._writer_lock = threading.Lock()
        if url.startswith("sqlite"):
            self.engine = make_engine(url, migrate_schema=False)

            @event.listens_for(self.engine, "connect")
            def _read_only(dbapi_conn, _rec):  # one read-only connection per request
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA query_only = ON")
                cur.close()
        else:
            self.engine = make_engine(
                url, migrate_schema=False, connect_args={"options": "-c default_transaction_read_only=on"}
            )

    def writer(self) -> sa.Engine:
        """The writable engine, made on first use: only the write routes of
        :mod:`dashcam.web.watch_pages` (POST + CSRF) use it; every page reads through ``engine``."""
        with self._writer_lock:
            if self._writer is None:
                self._writer = make_engine(self.settings.db_url, migrate_schema=False)
            return self._writer

    # times ----------------------------------------------------------------------------------
    @overload
    def local(self, v: datetime | str) -> datetime: ...
    @overload
    def local(self, v: None) -> None: ...

    def local(self, v: datetime | str | None) -> datetime | None:
        """``v`` (a datetime or ISO 8601 text) in the display zone (camera_tz; "local": this machine's)."""
        if v is None:
            return None
        return _iso(v).astimezone(self.tz)

    def day_bounds(self, since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
        """[since 00:00, until+1 00:00) in the display zone, as UTC datetimes."""
        tz = self.tz or datetime.now().astimezone().tzinfo

        def at(d):
            return datetime.combine(d, time(0), tz).astimezone(UTC)

        return (at(since) if since else None, at(until + timedelta(days=1)) if until else None)

    # reads ----------------------------------------------------------------------------------
    def drives(self, conn) -> list[Drive]:
        """All drives, newest first (:func:`dashcam.drives.load_drives`), cached per app.

        Grouping every video into drives costs ~0.8 s at 10,000 videos (bench/search.py
        ``--pages``), and nearly every page needs it. The cache is keyed on ``count(*)`` and
        ``max(ingested_at)`` of ``videos``: an ingest or re-ingest (which sets ``ingested_at``)
        and a removed video change the key; nothing else changes the grouping's inputs.
        Callers must not modify the returned drives.
        """
        key = tuple(conn.execute(sa.select(sa.func.count(), sa.func.max(VIDEOS.c.ingested_at))).one())
        with self._drives_lock:
            if self._drives is not None and self._drives[0] == key:
                return self._drives[1]
        drives = load_drives(conn, self.gap_min)
        with self._drives_lock:
            self._drives = (key, drives)
        return drives

    def route_lengths(self, conn, video_ids: list[str]) -> dict[str, float]:
        """Route length (m) per video id (0 for none), cached by (video_id, n_points)."""
        if not video_ids:
            return {}
        out = {v: 0.0 for v in video_ids}
        rows = conn.execute(
            sa.select(ROUTES.c.video_id, ROUTES.c.n_points).where(ROUTES.c.video_id.in_(video_ids))
        ).all()
        missing = [vid for vid, n in rows if (vid, n) not in self._route_len]
        if missing:
            for vid, n, pts in conn.execute(
                sa.select(ROUTES.c.video_id, ROUTES.c.n_points, ROUTES.c.points).where(ROUTES.c.video_id.in_(missing))
            ):
                self._route_len[(vid, n)] = route_length_m(pts)
        for vid, n in rows:
            out[vid] = self._route_len.get((vid, n), 0.0)
        return out

    def drive_km(self, conn, drives: list[Drive]) -> dict[str, float]:
        prim = {d.id: [s.primary["id"] for s in d.segments] for d in drives}
        lens = self.route_lengths(conn, [v for vs in prim.values() for v in vs])
        return {did: sum(lens.get(v, 0.0) for v in vs) / 1000 for did, vs in prim.items()}

    def events_of(self, conn, video_ids: list[str]) -> list[dict]:
        if not video_ids:
            return []
        stmt = sa.select(VEHICLES).where(VEHICLES.c.video_id.in_(video_ids)).order_by(VEHICLES.c.ts, VEHICLES.c.id)
        return [self.decorate(_jsonable(r)) for r in conn.execute(stmt).mappings()]

    def route_of(self, conn, video_id: str) -> dict | None:
        r = conn.execute(sa.select(ROUTES).where(ROUTES.c.video_id == video_id)).mappings().first()
        return None if r is None else dict(r)

    def decorate(self, ev: dict) -> dict:
        """Add ``moment_url``, ``crop_url``, ``thumb_url`` and ``local`` (display time) to an event row."""
        ev["moment_url"] = f"/videos/{ev['video_id']}?t={float(ev['pts_s']):.2f}"
        ev["crop_url"] = f"/media/crop/{ev['id']}" if ev.get("crop_path") else None
        ev["thumb_url"] = f"/media/thumb/{ev['id']}" if ev.get("thumb_path") else None
        ev["local"] = self.local(ev["ts"])
        return ev


def _t0(video: dict, events: list[dict]) -> datetime:
    """GPS/UTC time of the video's pts 0: from an event (ts - pts_s; ts is GPS-corrected) if any,
    else the recorded start."""
    for e in events:
        if e["video_id"] == video["id"]:
            return _iso(e["ts"]) - timedelta(seconds=float(e["pts_s"]))
    return _iso(video["recording_start"])


def _fmt_dur(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {sec:02d} s" if m else f"{sec} s")


def create_app(  # noqa: C901 - the routes are closures over web/guard/templates, each simple; their branches all count here
    settings: Settings | None = None,
    *,
    prefect_api_url: str | None = None,
    prefect_ui_url: str | None = None,
) -> FastAPI:
    """Build the web UI for ``settings`` (database, archive folder, drive gap, tiles, token).

    ``prefect_api_url`` / ``prefect_ui_url`` (default: ``$PREFECT_API_URL`` / ``$PREFECT_UI_URL``)
    let the dashboard list failed ingest runs and link to them. The database must already be
    migrated (any ``dashcam`` ingest does it); the web UI writes to it only from the watch-list,
    correction and note forms (:mod:`dashcam.web.watch_pages`).
    """
    settings = settings or Settings()
    web = Web(
        settings,
        prefect_api_url or os.environ.get("PREFECT_API_URL"),
        prefect_ui_url or os.environ.get("PREFECT_UI_URL"),
    )
    guard = Guard(settings.web_token.get_secret_value() if settings.web_token else None)
    headers = security_headers(settings.tile_url)

    app = FastAPI(title="dashcam", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web = web
    app.state.guard = guard
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.globals.update(
        csrf_token=csrf_token,
        tile_url=settings.tile_url,
        tile_attribution=settings.tile_attribution,
        auth_enabled=guard.enabled,
    )
    env.filters["dt"] = lambda v, f="%Y-%m-%d %H:%M:%S": web.local(v).strftime(f) if v else "-"
    env.filters["dur"] = _fmt_dur
    env.filters["km"] = lambda m: f"{m:.1f} km" if m >= 1 else f"{m * 1000:.0f} m"
    env.filters["pct"] = lambda v: f"{float(v) * 100:.0f}%"
    env.filters["tojson_attr"] = lambda v: Markup(json.dumps(v).replace("<", "\\u003c"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def db() -> Iterator[sa.Connection]:
        with web.engine.connect() as conn:
            yield conn

    def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"request": request, **ctx}, status_code=status)

    # middleware: login, CSRF cookie, security headers ---------------------------------------
    @app.middleware("http")
    async def guard_mw(request: Request, call_next):
        raw = request.cookies.get(CSRF_COOKIE)
        new_csrf = None
        if not raw or len(raw) > 64:
            raw = new_csrf = guard.csrf_cookie_value()
        request.state.csrf_raw = raw
        path = request.url.path
        open_path = path in ("/login", "/healthz") or path.startswith("/static/")
        if guard.enabled and not open_path and not guard.authenticated(request):
            if (
                request.method == "GET"
                and not path.startswith(("/api/", "/media/"))
                and not path.endswith((".csv", ".json", ".gpx"))
            ):
                nxt = path + (f"?{request.url.query}" if request.url.query else "")
                response: Response = RedirectResponse("/login?" + urlencode({"next": nxt}), status_code=303)
            else:
                response = PlainTextResponse("Login required.", status_code=401)
        else:
            response = await call_next(request)
        for k, v in headers.items():
            response.headers.setdefault(k, v)
        if new_csrf:
            response.set_cookie(CSRF_COOKIE, new_csrf, httponly=True, samesite="strict", max_age=SESSION_MAX_AGE_S)
        return response

    # errors: a plain message page, never a trace ------------------------------------------------
    def error_response(request: Request, status: int, message: str) -> Response:
        path = request.url.path
        if path.startswith("/api/") or path.endswith((".json", ".csv", ".gpx")) or path.startswith("/media/"):
            return JSONResponse({"error": message}, status_code=status)
        return page(request, "error.html", status=status, title=f"Error {status}", code=status, message=message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"There is no page at {request.url.path[:200]}."
        return error_response(request, exc.status_code, msg)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        e = errs[0] if errs else {}
        where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "query"
        return error_response(request, 400, f"Bad value for {where}: {e.get('msg', 'invalid')}.")

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        log.exception("error serving %s", request.url.path)
        return error_response(request, 500, "Something went wrong on the server (it has been logged).")

    # pages ----------------------------------------------------------------------------------
    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz():
        return "ok"

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
            drive_cards=_drive_cards(conn, recent),
            latest=latest,
            top=top,
            failures=failures,
            failures_why=why,
            prefect_ui=web.prefect_ui_url,
            watch_hits=watch_pages.recent_hits(web),
        )

    def _drive_cards(conn, drives: list[Drive]) -> dict[str, dict]:
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
                or (
                    f"/media/poster/{d.segments[0].primary['id']}"
                    if d.segments[0].primary.get("archive_path")
                    else None
                ),
            }
        return out

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
            cards=_drive_cards(conn, shown),
            since=since or "",
            until=until or "",
            total=total,
            page_no=page_no,
            pages=max(1, -(-total // PAGE_SIZE)),
            qs=qs,
        )

    def _find_drive(conn, drive_id: str) -> tuple[list[Drive], Drive]:
        drives = web.drives(conn)
        for d in drives:
            if d.id == drive_id:
                return drives, d
        raise HTTPException(404, f"There is no drive {drive_id[:80]!r}.")

    def _drive_of_video(conn, video_id: str) -> Drive:
        for d in web.drives(conn):
            if video_id in d.video_ids:
                return d
        raise HTTPException(404, f"There is no video {video_id[:80]!r}.")

    @app.get("/videos/{video_id}")
    def video_moment(video_id: str, t: float | None = None, conn=Depends(db)):
        """A stable link to a moment: redirects to the video's drive page at ``t`` seconds."""
        d = _drive_of_video(conn, video_id)
        q = {"v": video_id}
        if t is not None:
            if not math.isfinite(t) or t < 0:
                raise BadRequest("t must be a number of seconds >= 0.")
            q["t"] = f"{t:.2f}"
        return RedirectResponse(f"/drives/{d.id}?{urlencode(q)}", status_code=303)

    def _drive_data(conn, d: Drive, video: dict) -> dict:
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

    @app.get("/drives/{drive_id}", response_class=HTMLResponse)
    def drive_page(request: Request, drive_id: str, v: str | None = None, t: float | None = None, conn=Depends(db)):
        drives, d = _find_drive(conn, drive_id)
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
        data = _drive_data(conn, d, video)
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
        _, d = _find_drive(conn, drive_id)
        video = d.segments[0].primary
        if v is not None:
            seg = d.segment_of(v)
            if seg is None:
                raise HTTPException(404, f"Video {v[:80]!r} is not part of drive {drive_id[:80]!r}.")
            video = next(x for x in seg.channels.values() if x["id"] == v)
        data = _drive_data(conn, d, video)
        data.pop("_events"), data.pop("_route")
        data["videos"] = d.video_ids
        data["start"], data["end"] = d.start.isoformat(), d.end.isoformat()
        return data

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

    watch_pages.register(app, page, plate_view)

    def _sightings(conn, since: str | None, until: str | None) -> list[dict]:
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

    @app.get("/map", response_class=HTMLResponse)
    def map_page(request: Request, since: str | None = None, until: str | None = None, conn=Depends(db)):
        points = _sightings(conn, since, until)
        return page(
            request, "map.html", title="Map", points=points, since=since or "", until=until or "", limit=MAP_LIMIT
        )

    @app.get("/api/sightings")
    def sightings_api(since: str | None = None, until: str | None = None, conn=Depends(db)):
        """Sightings with a position in the date range (newest first, at most MAP_LIMIT)."""
        return {"sightings": _sightings(conn, since, until)}

    # search ----------------------------------------------------------------------------------
    def _search_args(conn, q, since, until, drive, box, min_conf) -> tuple[dict, dict]:
        if q is not None and len(q) > MAX_Q:
            raise BadRequest(f"The query is {len(q)} characters long; at most {MAX_Q} are allowed.")
        lo, hi = web.day_bounds(_parse_day(since, "since"), _parse_day(until, "until"))
        video_ids = None
        if drive:
            _, d = _find_drive(conn, drive)
            video_ids = d.video_ids
        args = {
            "since": lo,
            "until": hi - timedelta(microseconds=1) if hi else None,
            "video_ids": video_ids,
            "bbox": _parse_bbox(box),
            "min_conf": _parse_float(min_conf, "min_conf", 0.0, 1.0),
        }
        shown = {
            k: v
            for k, v in {
                "q": q,
                "since": since,
                "until": until,
                "drive": drive,
                "box": box,
                "min_conf": min_conf,
            }.items()
            if v
        }
        return args, shown

    def _search(conn, q, args, limit, offset):
        try:
            from dashcam.search import SearchError, search_events
        except ImportError:
            raise HTTPException(503, "Search is not available in this build (dashcam.search is missing).") from None
        try:
            return search_events(conn, (q or "").strip() or None, limit=limit, offset=offset, **args)
        except SearchError as exc:
            raise BadRequest(str(exc).splitlines()[0] if str(exc) else "Bad search query.") from None

    @app.get("/search", response_class=HTMLResponse)
    def search_page(
        request: Request,
        q: str | None = None,
        since: str | None = None,
        until: str | None = None,
        drive: str | None = None,
        box: str | None = None,
        min_conf: str | None = None,
        page_no: int = 1,
        conn=Depends(db),
    ):
        if page_no < 1 or page_no > 100_000:
            raise BadRequest("page_no must be between 1 and 100000.")
        args, shown = _search_args(conn, q, since, until, drive, box, min_conf)
        res = None
        if q or any(v for k, v in shown.items() if k != "q"):
            res = _search(conn, q, args, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)
            drives = web.drives(conn)
            of_video = {v: d for d in drives for v in d.video_ids}
            res_rows = []
            for r in res.rows:
                r = web.decorate(dict(r))
                r["drive"] = of_video.get(r["video_id"])
                res_rows.append(r)
        else:
            res_rows = []
        total = res.total if res else 0
        return page(
            request,
            "search.html",
            title=f"Search {q}" if q else "Search",
            q=q or "",
            f=shown,
            res=res,
            rows=res_rows,
            total=total,
            page_no=page_no,
            pages=max(1, -(-total // PAGE_SIZE)),
            qs=urlencode(shown),
            start=(page_no - 1) * PAGE_SIZE,
        )

    def _export(conn, q, since, until, drive, box, min_conf):
        """The same search as the page, every row up to EXPORT_LIMIT (fetched a page of 1000 at a time)."""
        args, shown = _search_args(conn, q, since, until, drive, box, min_conf)
        res = _search(conn, q, args, 1000, 0)
        while len(res.rows) < min(res.total, EXPORT_LIMIT):
            more = _search(conn, q, args, 1000, len(res.rows))
            if not more.rows:
                break
            res.rows.extend(more.rows)
        del res.rows[EXPORT_LIMIT:]
        return shown, res

    def _fname(shown: dict, ext: str) -> dict:
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", shown.get("q", "all"))[:40] or "all"
        return {"Content-Disposition": f'attachment; filename="dashcam-search-{base}.{ext}"'}

    @app.get("/search.csv")
    def search_csv(
        q: str | None = None,
        since: str | None = None,
        until: str | None = None,
        drive: str | None = None,
        box: str | None = None,
        min_conf: str | None = None,
        conn=Depends(db),
    ):
        shown, res = _export(conn, q, since, until, drive, box, min_conf)
        return Response(exports.to_csv(res.rows), media_type="text/csv; charset=utf-8", headers=_fname(shown, "csv"))

    @app.get("/search.json")
    def search_json(
        q: str | None = None,
        since: str | None = None,
        until: str | None = None,
        drive: str | None = None,
        box: str | None = None,
        min_conf: str | None = None,
        conn=Depends(db),
    ):
        shown, res = _export(conn, q, since, until, drive, box, min_conf)
        return Response(
            exports.to_json(shown, res.total, res.kind, res.rows),
            media_type="application/json",
            headers=_fname(shown, "json"),
        )

    @app.get("/search.gpx")
    def search_gpx(
        q: str | None = None,
        since: str | None = None,
        until: str | None = None,
        drive: str | None = None,
        box: str | None = None,
        min_conf: str | None = None,
        conn=Depends(db),
    ):
        shown, res = _export(conn, q, since, until, drive, box, min_conf)
        return Response(
            exports.to_gpx(res.rows, f"dashcam search {shown.get('q', '')}".strip()),
            media_type="application/gpx+xml",
            headers=_fname(shown, "gpx"),
        )

    # media -----------------------------------------------------------------------------------
    def _video_row(conn, video_id: str) -> dict:
        """The video's archive copy facts. Media is served from the archive copy only, never
        ``videos.path``: the raw file may be gone (``raw_deleted_at``, retention) and lies outside
        the archive folder; an archive copy deleted by retention is 410 Gone (issue 16)."""
        r = (
            conn.execute(
                sa.select(VIDEOS.c.id, VIDEOS.c.archive_path, VIDEOS.c.duration_s, VIDEOS.c.archive_deleted_at).where(
                    VIDEOS.c.id == video_id
                )
            )
            .mappings()
            .first()
        )
        if r is None:
            raise HTTPException(404, f"There is no video {video_id[:80]!r}.")
        if r["archive_deleted_at"] is not None:
            raise HTTPException(
                410,
                f"The archive copy of video {video_id[:80]} was deleted by retention "
                f"(archive_keep_days) on {r['archive_deleted_at']:%Y-%m-%d}; its crops and thumbnails remain.",
            )
        return dict(r)

    @app.get("/media/video/{video_id}")
    def media_video(video_id: str, conn=Depends(db)):
        """The archive copy (H.264 MP4), with HTTP Range support."""
        return file_response(archive_file(web.archive_dir, _video_row(conn, video_id)["archive_path"]), 3600)

    @app.get("/media/poster/{video_id}")
    def media_poster(video_id: str, conn=Depends(db)):
        """A frame of the archive copy (at 1 s or the middle of a shorter video), cached."""
        r = _video_row(conn, video_id)
        src = archive_file(web.archive_dir, r["archive_path"])
        return file_response(poster(src, web.poster_dir, video_id, min(1.0, float(r["duration_s"]) / 2)), 86400)

    def _event_file(conn, vehicle_id: str, col) -> Path:
        r = conn.execute(sa.select(col).where(VEHICLES.c.id == vehicle_id)).first()
        if r is None:
            raise HTTPException(404, f"There is no plate event {vehicle_id[:80]!r}.")
        return archive_file(web.archive_dir, r[0])

    @app.get("/media/crop/{vehicle_id}")
    def media_crop(vehicle_id: str, conn=Depends(db)):
        return file_response(_event_file(conn, vehicle_id, VEHICLES.c.crop_path), 86400)

    @app.get("/media/thumb/{vehicle_id}")
    def media_thumb(vehicle_id: str, conn=Depends(db)):
        return file_response(_event_file(conn, vehicle_id, VEHICLES.c.thumb_path), 86400)

    # login ----------------------------------------------------------------------------------
    def _safe_next(nxt: str | None) -> str:
        if not nxt or not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
            return "/"
        return nxt

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None):
        return page(request, "login.html", title="Log in", next=_safe_next(next), error=None)

    @app.post("/login", dependencies=[Depends(check_csrf)])
    def login(request: Request, token: str = Form(""), next: str = Form("/")):
        if not guard.enabled:
            return RedirectResponse(_safe_next(next), status_code=303)
        if not guard.token_ok(token):
            return page(
                request,
                "login.html",
                status=401,
                title="Log in",
                next=_safe_next(next),
                error="That token is not right.",
            )
        resp = RedirectResponse(_safe_next(next), status_code=303)
        resp.set_cookie(SESSION_COOKIE, guard.new_session(), httponly=True, samesite="lax", max_age=SESSION_MAX_AGE_S)
        return resp

    @app.post("/logout", dependencies=[Depends(check_csrf)])
    def logout():
        resp = RedirectResponse("/login" if guard.enabled else "/", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    from dashcam.web import storage_page  # issue 16: read-only storage page

    storage_page.register(app, page, web)
    return app
