"""Web pages that write: watch lists and their entries, plate corrections, notes and tags (issue 15).

Every route here that changes something is a POST with the CSRF token
(:func:`dashcam.web.security.check_csrf`) and, when the app has an access token, a logged-in
session or bearer token (the app's middleware). Writes go through the app's second, writable
engine (:meth:`dashcam.web.app.Web.writer`); the read-only one of every other page is untouched.
All logic is :mod:`dashcam.watch_lists` (validation, matching, corrections); bad input raises
:class:`dashcam.watch_lists.WatchListError`, shown as one line above the form it came from
(HTTP 400), with the user's values kept in the form.

Routes (see docs/webui.md):

* ``GET /watchlists``; ``POST /watchlists`` (new list); ``GET /watchlists/<id>``;
  ``POST /watchlists/<id>/delete``
* ``POST /watchlists/entries`` (add, field ``watchlist_id``); ``GET /watchlists/entries/<id>``
  (edit form and its hits); ``POST /watchlists/entries/<id>`` (save); ``POST .../<id>/delete``
* ``GET|POST /events/<event_id>/correct``
* ``POST /plates/<PLATE>/notes`` (``kind`` note|tag); ``POST /plates/<PLATE>/notes/<id>/delete``
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from dashcam import watch_lists as wl
from dashcam.db import VEHICLES
from dashcam.web.security import check_csrf

if TYPE_CHECKING:
    from dashcam.web.app import Web

__all__ = ["corrections_by_event", "hits_by_event", "hits_of", "recent_hits", "register"]

RECENT_HITS = 10
HITS_SHOWN = 200
WEB_BY = "web"  # who made a change, when the form's "by" field is left empty

Page = Callable[..., Response]


# --------------------------------------------------------------------------------------------
# reads shared with the pages of dashcam.web.app (read-only engine)


def hits_by_event(web: Web, event_ids: list[str]) -> dict[str, list[dict]]:
    """Stored watch hits of these events (:func:`dashcam.watch_lists.list_hits`), by event id."""
    out: dict[str, list[dict]] = {}
    if not event_ids:
        return out
    for h in wl.list_hits(web.engine, event_ids=event_ids, limit=10_000):
        out.setdefault(h["event_id"], []).append(h)
    return out


def corrections_by_event(web: Web, event_ids: list[str]) -> dict[str, dict]:
    """Corrections of these events (:func:`dashcam.watch_lists.list_corrections`), by event id."""
    if not event_ids:
        return {}
    return {c["event_id"]: c for c in wl.list_corrections(web.engine, event_ids=event_ids)}


def hits_of(web: Web, event_ids: list[str]) -> dict[str, list[dict]]:
    """:func:`hits_by_event` with each hit decorated (links) for the templates."""
    return {k: [_decorate_hit(h) for h in v] for k, v in hits_by_event(web, event_ids).items()}


def recent_hits(web: Web, limit: int = RECENT_HITS) -> list[dict]:
    """The newest watch hits (by event time) for the dashboard, with ``moment_url`` / ``crop_url``."""
    return [_decorate_hit(h) for h in wl.list_hits(web.engine, limit=limit)]


def _decorate_hit(h: dict) -> dict:
    """A hit of list_hits plus ``event_exists``, ``crop_url``, ``moment_url`` (None once the event is gone)."""
    h = dict(h)
    h["event_exists"] = h.get("plate") is not None
    eid = quote(h["event_id"], safe="")
    h["crop_url"] = f"/media/crop/{eid}" if h.get("crop_path") and h["event_exists"] else None
    h["moment_url"] = (
        f"/videos/{quote(h['video_id'], safe='')}?t={float(h['pts_s']):.2f}"
        if h["event_exists"] and h.get("pts_s") is not None
        else None
    )
    h["entry_url"] = f"/watchlists/entries/{h['entry_id']}"
    return h


# --------------------------------------------------------------------------------------------
# form values


def _local_input(web: Web, v: Any) -> str:
    """A stored UTC time as the value of an ``<input type="datetime-local">`` in the display zone."""
    if not v:
        return ""
    loc = web.local(v)
    return loc.strftime("%Y-%m-%dT%H:%M") if loc else ""


def _from_local(web: Web, s: str | None) -> datetime | str | None:
    """A ``datetime-local`` value (naive, in the display zone) as an aware datetime; text that is
    not a date/time is passed on unchanged so that :mod:`dashcam.watch_lists` names the error."""
    if s is None or not s.strip():
        return None
    try:
        d = datetime.fromisoformat(s.strip())
    except ValueError:
        return s
    if d.tzinfo is None:
        d = d.replace(tzinfo=web.tz or datetime.now().astimezone().tzinfo)
    return d


def _entry_values(web: Web, e: dict | None) -> dict:
    """Form values of an entry (``e`` from list_entries, or None for the empty add form)."""
    if e is None:
        return {
            "pattern": "",
            "label": "",
            "notes": "",
            "fuzzy": True,
            "min_score": "",
            "active_from": "",
            "active_until": "",
        }
    return {
        "pattern": wl.entry_query(e["kind"], e["pattern"], e["fuzzy"]),
        "label": e["label"] or "",
        "notes": e["notes"] or "",
        "fuzzy": bool(e["fuzzy"]) or e["kind"] != "exact",
        "min_score": "" if e["min_score"] is None else f"{e['min_score']:g}",
        "active_from": _local_input(web, e["active_from"]),
        "active_until": _local_input(web, e["active_until"]),
    }


def _one_line(exc: Exception) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else "Bad input."
    return msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else ".")


# --------------------------------------------------------------------------------------------
# routes (module level, on one router; the app's state carries ``web``, ``page``, ``plate_view``)

router = APIRouter()


def register(app: FastAPI, page: Page, plate_view: Callable[..., Response]) -> None:
    """Add the watch-list, correction and note routes to ``app`` (whose ``state.web`` is the
    :class:`dashcam.web.app.Web`). ``page(request, template, status=200, **ctx)`` renders a
    template; ``plate_view(request, conn, plate, status=200, **extra)`` renders the plate page
    (a note form's error is shown on it)."""
    app.state.page = page
    app.state.plate_view = plate_view
    app.include_router(router)


def _web(request: Request) -> Web:
    return request.app.state.web


def _page(request: Request, name: str, status: int = 200, **ctx) -> Response:
    return request.app.state.page(request, name, status=status, **ctx)


def _db(request: Request) -> Iterator[sa.Connection]:
    """The read-only connection of this request (as every other page has)."""
    with _web(request).engine.connect() as conn:
        yield conn


def _list_or_404(web: Web, list_id: int) -> dict:
    for w in wl.list_lists(web.engine):
        if w["id"] == list_id:
            return w
    raise HTTPException(404, f"There is no watch list {list_id}.")


def _entry_or_404(web: Web, entry_id: int) -> dict:
    for e in wl.list_entries(web.engine):
        if e["id"] == entry_id:
            return e
    raise HTTPException(404, f"There is no watch-list entry {entry_id}.")


def _list_id_of(web: Web, name: str) -> int | None:
    return next((w["id"] for w in wl.list_lists(web.engine) if w["name"] == name), None)


def _overview(request: Request, status: int = 200, **extra) -> Response:
    web = _web(request)
    lists = wl.list_lists(web.engine)
    by_list: dict[int, list[dict]] = {w["id"]: [] for w in lists}
    ids = {w["name"]: w["id"] for w in lists}
    for e in wl.list_entries(web.engine):
        by_list.setdefault(ids.get(e["watchlist"], -1), []).append(e)
    ctx: dict[str, Any] = {
        "lists": lists,
        "by_list": by_list,
        "hits": recent_hits(web, 20),
        "entry": _entry_values(web, None),
        "list_name": "",
        "list_error": None,
        "entry_error": None,
        "watchlist_id": lists[0]["id"] if lists else None,
    }
    ctx.update(extra)
    return _page(request, "watchlists.html", status=status, title="Watch lists", **ctx)


def _list_view(request: Request, w: dict, status: int = 200, **extra) -> Response:
    web = _web(request)
    ctx: dict[str, Any] = {
        "w": w,
        "entries": wl.list_entries(web.engine, w["name"]),
        "hits": [_decorate_hit(h) for h in wl.list_hits(web.engine, watchlist=w["name"], limit=HITS_SHOWN)],
        "entry": _entry_values(web, None),
        "entry_error": None,
    }
    ctx.update(extra)
    return _page(request, "watchlist.html", status=status, title=f"Watch list {w['name']}", **ctx)


def _entry_view(request: Request, e: dict, status: int = 200, **extra) -> Response:
    web = _web(request)
    ctx: dict[str, Any] = {
        "e": e,
        "entry": _entry_values(web, e),
        "error": None,
        "list_id": _list_id_of(web, e["watchlist"]),
        "hits": [_decorate_hit(h) for h in wl.list_hits(web.engine, entry_id=e["id"], limit=HITS_SHOWN)],
    }
    ctx.update(extra)
    return _page(request, "watch_entry.html", status=status, title=f"Watch entry {e['id']}", **ctx)


def _entry_form(
    web: Web,
    pattern: str,
    label: str,
    notes: str,
    fuzzy: str | None,
    min_score: str,
    active_from: str,
    active_until: str,
) -> tuple[dict, dict]:
    """(keyword arguments for add_entry/update_entry, the values to show again in the form)."""
    shown = {
        "pattern": pattern[:300],
        "label": label[:300],
        "notes": notes[:3000],
        "fuzzy": fuzzy is not None,
        "min_score": min_score[:20],
        "active_from": active_from[:40],
        "active_until": active_until[:40],
    }
    kw = {
        "label": label,
        "notes": notes,
        "fuzzy": fuzzy is not None,
        "min_score": min_score or None,
        "active_from": _from_local(web, active_from),
        "active_until": _from_local(web, active_until),
    }
    return kw, shown


def _rematch(web: Web, entry_id: int) -> None:
    wl.match_entry(web.writer(), entry_id, default_min_score=float(web.settings.watch_min_score))


# lists ------------------------------------------------------------------------------------------
@router.get("/watchlists")
def watchlists_page(request: Request):
    return _overview(request)


@router.post("/watchlists", dependencies=[Depends(check_csrf)])
def watchlist_add(request: Request, name: str = Form("")):
    try:
        w = wl.add_list(_web(request).writer(), name)
    except wl.WatchListError as exc:
        return _overview(request, status=400, list_error=_one_line(exc), list_name=name[:200])
    return RedirectResponse(f"/watchlists/{w['id']}", status_code=303)


@router.get("/watchlists/{list_id:int}")
def watchlist_page(request: Request, list_id: int):
    return _list_view(request, _list_or_404(_web(request), list_id))


@router.post("/watchlists/{list_id:int}/delete", dependencies=[Depends(check_csrf)])
def watchlist_delete(request: Request, list_id: int):
    if not wl.remove_list(_web(request).writer(), list_id):
        raise HTTPException(404, f"There is no watch list {list_id}.")
    return RedirectResponse("/watchlists", status_code=303)


# entries ----------------------------------------------------------------------------------------
@router.post("/watchlists/entries", dependencies=[Depends(check_csrf)])
def entry_add(
    request: Request,
    watchlist_id: str = Form(""),
    back: str = Form(""),
    pattern: str = Form(""),
    label: str = Form(""),
    notes: str = Form(""),
    fuzzy: str | None = Form(None),
    min_score: str = Form(""),
    active_from: str = Form(""),
    active_until: str = Form(""),
):
    web = _web(request)
    kw, shown = _entry_form(web, pattern, label, notes, fuzzy, min_score, active_from, active_until)
    wid = watchlist_id.strip()
    w = next((x for x in wl.list_lists(web.engine) if str(x["id"]) == wid), None)
    try:
        if w is None:
            raise wl.WatchListError(
                f"there is no watch list {wid[:20]!r} (was it deleted?)"
                if wid
                else "choose a watch list (or make one first)"
            )
        e = wl.add_entry(web.writer(), pattern, watchlist=w["name"], create_list=False, **kw)
    except wl.WatchListError as exc:
        if back == "list" and w is not None:
            return _list_view(request, w, status=400, entry=shown, entry_error=_one_line(exc))
        return _overview(
            request,
            status=400,
            entry=shown,
            entry_error=_one_line(exc),
            watchlist_id=int(wid) if wid.isdigit() else None,
        )
    _rematch(web, e["id"])
    return RedirectResponse(f"/watchlists/entries/{e['id']}", status_code=303)


@router.get("/watchlists/entries/{entry_id:int}")
def entry_page(request: Request, entry_id: int):
    return _entry_view(request, _entry_or_404(_web(request), entry_id))


@router.post("/watchlists/entries/{entry_id:int}", dependencies=[Depends(check_csrf)])
def entry_save(
    request: Request,
    entry_id: int,
    pattern: str = Form(""),
    label: str = Form(""),
    notes: str = Form(""),
    fuzzy: str | None = Form(None),
    min_score: str = Form(""),
    active_from: str = Form(""),
    active_until: str = Form(""),
):
    web = _web(request)
    e = _entry_or_404(web, entry_id)
    kw, shown = _entry_form(web, pattern, label, notes, fuzzy, min_score, active_from, active_until)
    try:
        wl.update_entry(web.writer(), entry_id, pattern, **kw)
    except wl.WatchListError as exc:
        return _entry_view(request, e, status=400, entry=shown, error=_one_line(exc))
    _rematch(web, entry_id)
    return RedirectResponse(f"/watchlists/entries/{entry_id}", status_code=303)


@router.post("/watchlists/entries/{entry_id:int}/delete", dependencies=[Depends(check_csrf)])
def entry_delete(request: Request, entry_id: int):
    web = _web(request)
    lid = _list_id_of(web, _entry_or_404(web, entry_id)["watchlist"])
    wl.remove_entry(web.writer(), entry_id, keep_empty_list=True)
    return RedirectResponse(f"/watchlists/{lid}" if lid is not None else "/watchlists", status_code=303)


# corrections ------------------------------------------------------------------------------------
def _event_or_404(web: Web, conn: sa.Connection, event_id: str) -> dict:
    r = conn.execute(sa.select(VEHICLES).where(VEHICLES.c.id == event_id[:300])).mappings().first()
    if r is None:
        raise HTTPException(404, f"There is no plate event {event_id[:80]!r}.")
    return web.decorate(dict(r))


def _correct_view(request: Request, conn: sa.Connection, event_id: str, status: int = 200, **extra) -> Response:
    web = _web(request)
    ev = _event_or_404(web, conn, event_id)
    ctx: dict[str, Any] = {
        "ev": ev,
        "corr": corrections_by_event(web, [ev["id"]]).get(ev["id"]),
        "error": None,
        "text": ev["final_plate"],
        "note": "",
        "by": "",
        "hits": hits_of(web, [ev["id"]]).get(ev["id"], []),
    }
    ctx.update(extra)
    return _page(request, "correct.html", status=status, title=f"Correct {ev['final_plate']}", **ctx)


@router.get("/events/{event_id}/correct")
def correct_page(request: Request, event_id: str, conn=Depends(_db)):
    return _correct_view(request, conn, event_id)


@router.post("/events/{event_id}/correct", dependencies=[Depends(check_csrf)])
def correct_save(
    request: Request, event_id: str, text: str = Form(""), note: str = Form(""), by: str = Form(""), conn=Depends(_db)
):
    web = _web(request)
    _event_or_404(web, conn, event_id)
    try:
        c = wl.correct_event(web.writer(), event_id, text, note=note, by=by.strip() or WEB_BY)
    except wl.WatchListError as exc:
        return _correct_view(
            request, conn, event_id, status=400, error=_one_line(exc), text=text[:100], note=note[:3000], by=by[:120]
        )
    return RedirectResponse(f"/plates/{c['text']}", status_code=303)


# notes and tags ---------------------------------------------------------------------------------
@router.post("/plates/{plate}/notes", dependencies=[Depends(check_csrf)])
def note_add(
    request: Request, plate: str, kind: str = Form("note"), text: str = Form(""), by: str = Form(""), conn=Depends(_db)
):
    try:
        n = wl.add_plate_note(_web(request).writer(), plate, text, kind=kind, by=by.strip() or WEB_BY)
    except wl.WatchListError as exc:
        return request.app.state.plate_view(
            request, conn, plate, status=400, note_error=_one_line(exc), note_kind=kind, note_text=text[:3000]
        )
    return RedirectResponse(f"/plates/{n['plate']}#notes", status_code=303)


@router.post("/plates/{plate}/notes/{note_id:int}/delete", dependencies=[Depends(check_csrf)])
def note_delete(request: Request, plate: str, note_id: int):
    try:
        removed = wl.remove_plate_note(_web(request).writer(), note_id, plate=plate)
    except wl.WatchListError as exc:
        raise HTTPException(400, _one_line(exc)) from None
    if not removed:
        raise HTTPException(404, f"Plate {plate[:20]} has no note {note_id}.")
    return RedirectResponse(f"/plates/{quote(plate.strip().upper(), safe='')}#notes", status_code=303)
