"""Web pages that write (issue 15): watch lists and entries, plate corrections, notes and tags.

Real data: two real clips through the real ``ingest`` flow (Video10_2, labelled XS-NB-23, as a
Viofo front file on the real GPS track; Video20_2, ZD-PB-67, a plain AVI) into SQLite, and the
same manifests persisted into PostgreSQL by the real ``finalize-video`` flow. Every test gets a
fresh copy of that database (a file copy; ``CREATE DATABASE ... TEMPLATE``) and its own
``dashcam web`` (uvicorn subprocess on 127.0.0.1, a free port). HTTP tests run on both backends;
the browser test (Debian's chromium through Playwright, as tests/test_web.py) on SQLite, and it
saves the screenshots docs/img/watchlists.png, watchlist.png, watch-entry.png, drive-hit.png,
correct.png, plate-notes.png.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import web_data
from helpers import shared_dir
from test_web import ARGS, CHROMIUM, needs_browser, shot, start_web, stop, wait_js, web_env

from dashcam.db import CORRECTIONS, PLATE_NOTES, VEHICLES, WATCH_ENTRIES, WATCH_HITS, WATCHLISTS, make_engine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shared_dir() / web_data.PLATES).is_dir(), reason="shared test data not found"),
]

LABEL = "hit and run 2026-11-02"


def _copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy (the WAL included) through SQLite's backup API."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------------------------
# data: two real clips, ingested once; a fresh copy per test


@pytest.fixture(scope="module")
def card(prefect_session_server, tmp_path_factory) -> web_data.WebData:
    from flows.ingest import ingest

    root = tmp_path_factory.mktemp("webwatch")
    (root / "cam").mkdir()
    (root / "tracks").mkdir()
    shutil.copy(shared_dir() / web_data.TRACK, root / "tracks" / Path(web_data.TRACK).name)
    front = root / "cam" / web_data.FRONT1
    web_data._remux([shared_dir() / web_data.PLATES / "Video10_2.avi"], front)
    plain = root / "plain" / web_data.PLAIN
    plain.parent.mkdir()
    shutil.copy(shared_dir() / web_data.PLATES / web_data.PLAIN, plain)
    settings = web_data.settings_for(root, f"sqlite:///{root / 'base.db'}")
    ingest([str(front), str(plain)], settings=settings)
    manifests = sorted(str(p) for p in Path(settings.work_dir).rglob("manifest.json"))
    return web_data.WebData(root, settings, [front, plain], manifests, root / "none")


@pytest.fixture(scope="module")
def pg_base(card, pg_server) -> str:
    """A PostgreSQL database holding the same events (finalize-video flow); the template of every test's copy."""
    name = pg_server.create_database()
    url = pg_server.url(name)
    make_engine(url).dispose()  # migrate
    web_data.persist_into(card, url)
    return name


class Site:
    def __init__(self, base: str, db_url: str):
        self.base, self.db_url = base, db_url
        self.client = httpx.Client(base_url=base, timeout=60)

    def csrf(self, path: str = "/watchlists") -> str:
        html = self.client.get(path).text
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    def count(self, table) -> int:
        eng = make_engine(self.db_url, migrate_schema=False)
        try:
            with eng.connect() as c:
                return c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        finally:
            eng.dispose()

    def event(self, plate: str) -> dict:
        eng = make_engine(self.db_url, migrate_schema=False)
        try:
            with eng.connect() as c:
                return dict(c.execute(sa.select(VEHICLES).where(VEHICLES.c.final_plate == plate)).mappings().one())
        finally:
            eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, card, tmp_path):
    if request.param == "sqlite":
        db = tmp_path / "dashcam.db"
        _copy_sqlite(card.root / "base.db", db)
        url, drop = f"sqlite:///{db}", None
    else:
        pg = request.getfixturevalue("pg_server")
        template = request.getfixturevalue("pg_base")
        name = f"test_{uuid.uuid4().hex[:16]}"
        with pg.connect_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url, drop = pg.url(name), (pg, name)
    proc, base = start_web(web_env(card, url))
    s = Site(base, url)
    try:
        yield s
    finally:
        s.client.close()
        stop(proc)
        if drop:
            drop[0].drop_database(drop[1])


def _alert(html: str) -> str:
    m = re.search(r'<p class="alert" role="alert">(.*?)</p>', html, re.S)
    return m.group(1) if m else ""


def _new_list(site: Site, name: str) -> int:
    r = site.client.post("/watchlists", data={"csrf_token": site.csrf(), "name": name}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def _new_entry(site: Site, list_id: int, **fields) -> int:
    data = {"csrf_token": site.csrf(), "watchlist_id": str(list_id), "fuzzy": "1", **fields}
    r = site.client.post("/watchlists/entries", data=data, follow_redirects=False)
    assert r.status_code == 303, _alert(r.text) or r.text[:500]
    return int(r.headers["location"].rsplit("/", 1)[1])


# --------------------------------------------------------------------------------------------
# HTTP, both backends


def test_every_write_needs_the_csrf_token(site: Site):
    lid = _new_list(site, "csrf")
    eid = _new_entry(site, lid, pattern="XS-NB-23")
    ev = site.event("XSNB23")
    before = {t.name: site.count(t) for t in (WATCHLISTS, WATCH_ENTRIES, WATCH_HITS, CORRECTIONS, PLATE_NOTES)}
    writes = [
        ("/watchlists", {"name": "x"}),
        (f"/watchlists/{lid}/delete", {}),
        ("/watchlists/entries", {"watchlist_id": str(lid), "pattern": "AB12"}),
        (f"/watchlists/entries/{eid}", {"pattern": "AB12"}),
        (f"/watchlists/entries/{eid}/delete", {}),
        (f"/events/{ev['id']}/correct", {"text": "AB12"}),
        ("/plates/XSNB23/notes", {"text": "x"}),
        ("/plates/XSNB23/notes/1/delete", {}),
    ]
    for path, data in writes:
        assert site.client.post(path, data=data).status_code == 403, path
        assert site.client.post(path, data={**data, "csrf_token": "forged"}).status_code == 403, path
    # a token from this browser does not pass with another browser's cookie
    other = httpx.post(site.base + "/watchlists", data={"name": "x", "csrf_token": site.csrf()}, timeout=30)
    assert other.status_code == 403 and "CSRF" in other.text
    assert {t.name: site.count(t) for t in (WATCHLISTS, WATCH_ENTRIES, WATCH_HITS, CORRECTIONS, PLATE_NOTES)} == before
    assert site.client.get(f"/watchlists/entries/{eid}").status_code == 200


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"pattern": ""}, "Plate pattern is empty"),
        ({"pattern": "/[/"}, "invalid regular expression"),
        ({"pattern": "XS-NB-23", "label": "x" * 10240}, "Label is 10240 characters long; at most 200 are allowed."),
        ({"pattern": "XS-NB-23", "watchlist_id": "99999"}, "There is no watch list &#39;99999&#39;"),
        ({"pattern": "XS-NB-23", "min_score": "1.5"}, "in_score must be a number in (0, 1], got 1.5."),
        (
            {"pattern": "XS-NB-23", "active_from": "2026-11-02T10:00", "active_until": "2026-11-01T10:00"},
            "Active_until is before active_from",
        ),
        ({"pattern": "XS-NB-23", "active_from": "yesterday"}, "is not an ISO 8601 date/time"),
    ],
)
def test_bad_entry_input_is_a_one_line_error_in_the_form(site: Site, fields, message):
    lid = _new_list(site, "bad input")
    n = site.count(WATCH_ENTRIES)
    r = site.client.post("/watchlists/entries", data={"csrf_token": site.csrf(), "watchlist_id": str(lid), **fields})
    assert r.status_code == 400
    err = _alert(r.text)
    assert message in err and "\n" not in err and "Traceback" not in r.text, err
    assert 'id="new-entry"' in r.text  # the form is shown again ...
    if "label" not in fields and fields["pattern"]:
        assert f'value="{fields["pattern"]}"' in r.text  # ... with what was typed
    assert site.count(WATCH_ENTRIES) == n


def test_bad_list_correction_and_note_input(site: Site):
    t = site.csrf()
    _new_list(site, "taken")
    for name, message in [
        ("", "Watch list name is empty."),
        ("taken", "A watch list named &#39;taken&#39; exists already."),
        ("x" * 101, "at most 100 are allowed"),
    ]:
        r = site.client.post("/watchlists", data={"csrf_token": t, "name": name})
        assert r.status_code == 400 and message in _alert(r.text), _alert(r.text)
    ev = site.event("XSNB23")
    for text, message in [("", "Plate is empty."), ("XS/NB", "character &#39;/&#39;"), ("A" * 20, "at most 16")]:
        r = site.client.post(f"/events/{ev['id']}/correct", data={"csrf_token": t, "text": text})
        assert r.status_code == 400 and message in _alert(r.text), _alert(r.text)
        assert "OCR read" in r.text
    assert site.client.post("/events/nope:1/correct", data={"csrf_token": t, "text": "AB12"}).status_code == 404
    for kind, text, message in [
        ("note", "", "Note is empty."),
        ("tag", "two words", "use letters, digits"),
        ("note", "x" * 2001, "at most 2000"),
        ("shout", "x", "Kind must be note or tag"),
    ]:
        r = site.client.post("/plates/XSNB23/notes", data={"csrf_token": t, "kind": kind, "text": text})
        assert r.status_code == 400 and message in _alert(r.text), _alert(r.text)
        assert 'id="note-form"' in r.text
    assert site.count(CORRECTIONS) == 0 and site.count(PLATE_NOTES) == 0
    assert site.event("XSNB23")["final_plate"] == "XSNB23"


def test_entry_hits_correction_and_notes_over_http(site: Site):
    t = site.csrf()
    lid = _new_list(site, "hit and run")
    eid = _new_entry(site, lid, pattern="X5N8Z3", label=LABEL)  # a misread-only form: fuzzy look-alike of XSNB23
    wild = _new_entry(site, lid, pattern="ZD*")
    ev = site.event("XSNB23")
    page = site.client.get(f"/watchlists/entries/{eid}").text
    assert 'href="/plates/XSNB23"' in page and f"/media/crop/{ev['id'].replace(':', '%3A')}" in page
    assert "ZDPB67" in site.client.get(f"/watchlists/entries/{wild}").text
    # shown on the dashboard, the plate page and the drive page's event row
    assert LABEL in site.client.get("/").text.split("Recent watch-list hits")[1].split("Latest plates")[0]
    assert f"⚑ {LABEL}" in site.client.get("/plates/XSNB23").text
    assert f"⚑ {LABEL}" in site.client.get(f"/videos/{ev['video_id']}", follow_redirects=True).text
    # editing an entry re-matches: a pattern that fits nothing has no hits
    r = site.client.post(
        f"/watchlists/entries/{eid}", data={"csrf_token": t, "pattern": "QQ*", "label": LABEL}, follow_redirects=True
    )
    assert r.status_code == 200 and "No hits yet." in r.text
    site.client.post(
        f"/watchlists/entries/{eid}", data={"csrf_token": t, "pattern": "XS-NB-23", "label": LABEL, "fuzzy": "1"}
    )
    assert 'href="/plates/XSNB23"' in site.client.get(f"/watchlists/entries/{eid}").text

    # a correction: search and plate pages use the corrected text, the OCR text stays beside it
    r = site.client.post(
        f"/events/{ev['id']}/correct",
        data={"csrf_token": t, "text": "xs-nb 28", "by": "anna", "note": "checked on the photo"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/plates/XSNB28"
    html = site.client.get("/plates/XSNB28").text
    assert "OCR read <code>XSNB23</code>, corrected by anna" in html
    found = site.client.get("/search.json", params={"q": "=XSNB28"}).json()
    assert [(x["id"], x["final_plate"]) for x in found["rows"]] == [(ev["id"], "XSNB28")]
    assert "Corrected away from XSNB23" in site.client.get("/plates/XSNB23").text
    assert "OCR read <code>XSNB23</code>" in site.client.get(f"/videos/{ev['video_id']}", follow_redirects=True).text

    # notes and tags per plate
    for kind, text in [("note", "neighbour's car,\nparks at no. 4"), ("tag", "Neighbour"), ("tag", "neighbour")]:
        r = site.client.post(
            "/plates/XSNB28/notes",
            data={"csrf_token": t, "kind": kind, "text": text, "by": "anna"},
            follow_redirects=False,
        )
        assert r.status_code == 303
    html = site.client.get("/plates/XSNB28").text
    assert "neighbour&#39;s car,\nparks at no. 4" in html and html.count(">#neighbour ") == 1
    note_id = int(re.search(r"/plates/XSNB28/notes/(\d+)/delete", html).group(1))
    assert site.client.post(f"/plates/ZDPB67/notes/{note_id}/delete", data={"csrf_token": t}).status_code == 404
    assert site.client.post(f"/plates/XSNB28/notes/{note_id}/delete", data={"csrf_token": t}).status_code == 303
    assert "parks at no. 4" not in site.client.get("/plates/XSNB28").text

    # delete an entry, then the list
    n_hits = site.count(WATCH_HITS)
    assert (
        site.client.post(
            f"/watchlists/entries/{wild}/delete", data={"csrf_token": t}, follow_redirects=False
        ).status_code
        == 303
    )
    assert site.client.get(f"/watchlists/entries/{wild}").status_code == 404
    assert site.count(WATCH_HITS) == n_hits - 1
    assert (
        site.client.post(f"/watchlists/{lid}/delete", data={"csrf_token": t}, follow_redirects=False).status_code == 303
    )
    assert site.count(WATCHLISTS) == 0 and site.count(WATCH_HITS) == 0
    assert site.client.get(f"/watchlists/{lid}").status_code == 404


def test_writes_need_the_login_when_a_token_is_set(card, tmp_path):
    db = tmp_path / "dashcam.db"
    _copy_sqlite(card.root / "base.db", db)
    token = "watch-pages-token"
    proc, base = start_web(web_env(card, f"sqlite:///{db}", DASHCAM_WEB_TOKEN=token), host="0.0.0.0")
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/watchlists", follow_redirects=False).status_code == 303
            assert c.post("/watchlists", data={"name": "x"}).status_code == 401
            login = c.get("/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
            r = c.post(
                "/login", data={"token": token, "csrf_token": csrf, "next": "/watchlists"}, follow_redirects=True
            )
            assert r.status_code == 200 and "New watch list" in r.text
            assert (
                c.post("/watchlists", data={"name": "x", "csrf_token": csrf}, follow_redirects=False).status_code == 303
            )
    finally:
        stop(proc)


# --------------------------------------------------------------------------------------------
# the real browser (SQLite)


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = b.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
        pg.route("https://tile.openstreetmap.org/**", lambda route: route.abort("internetdisconnected"))
        try:
            yield pg
        finally:
            ctx.close()
            b.close()
        assert not errors, f"JavaScript errors: {errors}"


def _submit(pg, selector: str) -> None:
    """Click ``selector`` and wait for the page it loads (a form POST, a link)."""
    with pg.expect_navigation():
        pg.click(selector)


def _images_loaded(pg):
    wait_js(
        pg,
        "Array.from(document.images).filter(i => !i.closest('.leaflet-container'))"  # tiles are refused
        ".every(i => i.complete && i.naturalWidth > 0)",
        15,
    )


@needs_browser
@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_b_watch_list_hit_correction_note_in_the_browser(browser_page, site: Site):
    pg = browser_page
    pg.goto(site.base + "/")
    _submit(pg, "header nav >> text=Watch lists")
    assert pg.title() == "Watch lists · dashcam"
    pg.fill("#new-list input[name=name]", "hit and run")
    _submit(pg, "#new-list button")
    assert pg.title() == "Watch list hit and run · dashcam"

    # bad input: the error is one line above the form, the typed value kept
    pg.fill("#new-entry input[name=pattern]", "/XS[/")
    _submit(pg, "#new-entry button")
    assert "invalid regular expression" in pg.inner_text("#new-entry .alert")
    assert pg.input_value("#new-entry input[name=pattern]") == "/XS[/"
    pg.fill("#new-entry input[name=pattern]", "XS-NB-23")
    pg.evaluate("document.querySelector('#new-entry input[name=label]').value = 'x'.repeat(10240)")  # past maxlength
    _submit(pg, "#new-entry button")
    assert pg.inner_text("#new-entry .alert") == "Label is 10240 characters long; at most 200 are allowed."

    # an entry, and its hit on the real ingested event
    pg.fill("#new-entry input[name=label]", LABEL)
    pg.fill("#new-entry input[name=min_score]", "0.8")
    _submit(pg, "#new-entry button")
    assert pg.title().startswith("Watch entry")
    row = pg.locator("table.hits tbody tr").first
    assert row.locator(".plate").inner_text() == "XSNB23" and row.locator("code").inner_text() == "XSNB23"
    _images_loaded(pg)
    shot(pg, "watch-entry")
    _submit(pg, "nav.crumbs >> text=hit and run")
    pg.fill("#new-entry input[name=pattern]", "ZD*")
    pg.fill("#new-entry input[name=label]", "delivery van")
    _submit(pg, "#new-entry button")
    _submit(pg, "nav.crumbs >> text=hit and run")
    assert pg.locator("table.entries tbody tr").count() == 2
    _images_loaded(pg)
    shot(pg, "watchlist")

    # the hit on the dashboard and the drive page
    _submit(pg, "header nav >> text=Dashboard")
    assert pg.locator("table.hits tbody tr").count() == 2
    _submit(pg, "header nav >> text=Drives")
    with pg.expect_navigation():
        pg.locator("a.drive-card").filter(has_text="XSNB23").first.click()
    assert pg.locator("li.event a.hit").filter(has_text=LABEL).count() == 1
    pg.wait_for_selector("#map[data-ready='1']", timeout=15_000)
    pg.locator("li.event").filter(has_text=LABEL).scroll_into_view_if_needed()
    shot(pg, "drive-hit")

    # correct the plate from the plate page
    pg.goto(site.base + "/plates/XSNB23")
    with pg.expect_navigation():
        pg.locator("table.list td.actions >> text=correct").first.click()
    assert pg.title() == "Correct XSNB23 · dashcam"
    pg.fill("#correct input[name=text]", "XS-NB-2")
    pg.fill("#correct input[name=by]", "anna")
    pg.fill("#correct input[name=note]", "checked on the photo")
    _images_loaded(pg)
    shot(pg, "correct")
    _submit(pg, "#correct button")
    assert pg.title() == "Plate XSNB2 · dashcam"
    assert "OCR read XSNB23, corrected by anna" in pg.inner_text("table.list td.reading")
    pg.fill("form.quick input[name=q]", "=XSNB2")
    _submit(pg, "form.quick button")
    assert pg.locator("table.results tbody tr").count() == 1
    assert pg.locator("table.results tbody tr .plate").first.inner_text() == "XSNB2"

    # a note and a tag on the plate page
    pg.goto(site.base + "/plates/XSNB2")
    pg.select_option("#note-form select[name=kind]", "tag")
    pg.fill("#note-form input[name=text]", "two words")
    _submit(pg, "#note-form button")
    assert "use letters, digits, - and _ only" in pg.inner_text("#note-form .alert")
    pg.fill("#note-form input[name=text]", "hit-and-run")
    _submit(pg, "#note-form button")
    pg.select_option("#note-form select[name=kind]", "note")
    pg.fill("#note-form input[name=text]", "Witness: dark blue estate, dent on the left rear door.")
    pg.fill("#note-form input[name=by]", "anna")
    _submit(pg, "#note-form button")
    assert pg.locator(".plate-title .tag").inner_text() == "#hit-and-run"
    assert "dent on the left rear door" in pg.inner_text("ul.notes")
    pg.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    _images_loaded(pg)
    pg.evaluate("window.scrollTo(0, 0)")
    shot(pg, "plate-notes")

    # delete an entry from the list page
    pg.goto(site.base + "/watchlists")
    assert pg.locator("table.entries tbody tr").count() == 2
    _images_loaded(pg)
    shot(pg, "watchlists")
    with pg.expect_navigation():
        pg.locator("table.entries tr").filter(has_text="delivery van").locator("button:has-text('delete')").click()
    assert pg.locator("table.entries tbody tr").count() == 1
    assert pg.locator("table.entries").inner_text().count("delivery van") == 0
    assert site.count(WATCH_ENTRIES) == 1
