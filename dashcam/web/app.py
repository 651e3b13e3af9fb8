"""The web UI's app factory (:func:`create_app`) and its per-app state (:class:`Web`); see docs/webui.md.

Server-rendered Jinja2 pages; JavaScript only for the maps (Leaflet) and the player sync
(``static/app.js``). Each request gets one read-only database connection (SQLite
``PRAGMA query_only``; PostgreSQL ``default_transaction_read_only``); every statement is a
parameterised SQLAlchemy Core query. Only the POST routes of :mod:`dashcam.web.watch_pages`
(watch lists, corrections, notes) write, through :meth:`Web.writer`.

:func:`create_app` does the setup (settings, the engines in :class:`Web`, templates and their
filters, the login/CSRF/header middleware, the error handlers, ``/healthz``) and then lets each
route module add its routes with ``register(app, ...)``: :mod:`~dashcam.web.drive_pages`
(dashboard, drives, moments, drive JSON), :mod:`~dashcam.web.plate_page`,
:mod:`~dashcam.web.watch_pages`, :mod:`~dashcam.web.map_page` (map, sightings JSON),
:mod:`~dashcam.web.search_pages` (search, CSV/JSON/GPX), :mod:`~dashcam.web.media_routes`,
:mod:`~dashcam.web.login_page`, :mod:`~dashcam.web.storage_page`. Shared parsing helpers and
limits are in :mod:`dashcam.web.helpers` (re-exported here, their old home).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import overload
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy import event
from starlette.exceptions import HTTPException as StarletteHTTPException

from dashcam.db import ROUTES, VEHICLES, VIDEOS, make_engine
from dashcam.drives import Drive, load_drives, route_length_m
from dashcam.settings import Settings
from dashcam.web import drive_pages, login_page, map_page, media_routes, plate_page, search_pages, watch_pages
from dashcam.web.drive_pages import _t0  # noqa: F401 - re-exported (its old home)
from dashcam.web.helpers import (  # noqa: F401 - re-exported: this module was their home before the split
    EXPORT_LIMIT,
    MAP_LIMIT,
    MAX_Q,
    PAGE_SIZE,
    PLATE_RE,
    BadRequest,
    _fmt_dur,
    _iso,
    _jsonable,
    _parse_bbox,
    _parse_day,
    _parse_float,
    _plate,
)
from dashcam.web.prefect_runs import FailureReader
from dashcam.web.security import (
    CSRF_COOKIE,
    SESSION_MAX_AGE_S,
    Guard,
    csrf_token,
    security_headers,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

__all__ = ["create_app"]


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


def _error_handlers(app: FastAPI, page: Callable[..., Response]) -> None:
    """Answer every error with a one-line message: an HTML page (``error.html``), or ``{"error": ...}``
    for /api/, /media/ and the .json/.csv/.gpx exports; never a trace (a 500 is logged)."""

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


def create_app(
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
    _error_handlers(app, page)

    # pages: each module's register() adds its routes, in this order -------------------------
    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz():
        return "ok"

    drive_pages.register(app, page, web, db)
    plate_view = plate_page.register(app, page, web, db)
    watch_pages.register(app, page, plate_view)
    map_page.register(app, page, web, db)
    search_pages.register(app, page, web, db)
    media_routes.register(app, web, db)
    login_page.register(app, page, guard)

    from dashcam.web import storage_page  # issue 16: read-only storage page

    storage_page.register(app, page, web)
    return app
