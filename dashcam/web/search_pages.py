"""Search and its exports: ``GET /search`` (HTML, paged) and ``GET /search.csv|.json|.gpx``.

Query values (``q``, ``since``, ``until``, ``drive``, ``box``, ``min_conf``) are parsed with the
one-line 400s of :mod:`dashcam.web.helpers` and run through :func:`dashcam.search.search_events`
on the app's read-only connection (:class:`dashcam.web.app.Web`); the files are written by
:mod:`dashcam.web.exports` (at most :data:`~dashcam.web.helpers.EXPORT_LIMIT` rows). Registered by
:func:`dashcam.web.app.create_app`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from dashcam.web import exports
from dashcam.web.helpers import (
    EXPORT_LIMIT,
    MAX_Q,
    PAGE_SIZE,
    BadRequest,
    _parse_bbox,
    _parse_day,
    _parse_float,
    find_drive,
)

if TYPE_CHECKING:
    from dashcam.web.app import Web

Page = Callable[..., Response]


@dataclass
class SearchForm:
    """The search form's query values as sent (strings or None; parsed by :func:`_search_args`). One
    ``Depends()`` of the page and of every export route, so they take the same parameters."""

    q: str | None = None
    since: str | None = None
    until: str | None = None
    drive: str | None = None
    box: str | None = None
    min_conf: str | None = None


def _search_args(web: Web, conn, form: SearchForm) -> tuple[dict, dict]:
    """``form`` -> (keyword arguments of :func:`dashcam.search.search_events`, the non-empty form
    values as sent, for links and file names). Raises :class:`BadRequest` (one line) on bad values."""
    q, drive = form.q, form.drive
    if q is not None and len(q) > MAX_Q:
        raise BadRequest(f"The query is {len(q)} characters long; at most {MAX_Q} are allowed.")
    lo, hi = web.day_bounds(_parse_day(form.since, "since"), _parse_day(form.until, "until"))
    video_ids = None
    if drive:
        _, d = find_drive(web, conn, drive)
        video_ids = d.video_ids
    args = {
        "since": lo,
        "until": hi - timedelta(microseconds=1) if hi else None,
        "video_ids": video_ids,
        "bbox": _parse_bbox(form.box),
        "min_conf": _parse_float(form.min_conf, "min_conf", 0.0, 1.0),
    }
    shown = {k: v for k, v in asdict(form).items() if v}
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


def _export(web: Web, conn, form: SearchForm):
    """The same search as the page, every row up to EXPORT_LIMIT (fetched a page of 1000 at a time)."""
    args, shown = _search_args(web, conn, form)
    q = form.q
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


def register(app: FastAPI, page: Page, web: Web, db: Callable[[], Iterator[sa.Connection]]) -> None:
    """Add these routes to ``app``: ``page(request, template, status=200, **ctx)`` renders a
    template, ``web`` is the app's :class:`~dashcam.web.app.Web`, ``db`` the read-only connection dependency."""

    @app.get("/search", response_class=HTMLResponse)
    def search_page(
        request: Request,
        form: SearchForm = Depends(),
        page_no: int = 1,
        conn=Depends(db),
    ):
        if page_no < 1 or page_no > 100_000:
            raise BadRequest("page_no must be between 1 and 100000.")
        q = form.q
        args, shown = _search_args(web, conn, form)
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

    @app.get("/search.csv")
    def search_csv(
        form: SearchForm = Depends(),
        conn=Depends(db),
    ):
        shown, res = _export(web, conn, form)
        return Response(exports.to_csv(res.rows), media_type="text/csv; charset=utf-8", headers=_fname(shown, "csv"))

    @app.get("/search.json")
    def search_json(
        form: SearchForm = Depends(),
        conn=Depends(db),
    ):
        shown, res = _export(web, conn, form)
        return Response(
            exports.to_json(shown, res.total, res.kind, res.rows),
            media_type="application/json",
            headers=_fname(shown, "json"),
        )

    @app.get("/search.gpx")
    def search_gpx(
        form: SearchForm = Depends(),
        conn=Depends(db),
    ):
        shown, res = _export(web, conn, form)
        return Response(
            exports.to_gpx(res.rows, f"dashcam search {shown.get('q', '')}".strip()),
            media_type="application/gpx+xml",
            headers=_fname(shown, "gpx"),
        )
