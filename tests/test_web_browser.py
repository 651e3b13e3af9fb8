"""The web UI in a real browser: Debian's chromium driven by Playwright (its own browser download
does not work offline), against ``dashcam web`` over the real ingested data (SQLite). Map tiles
are refused (as with no internet) so the maps must draw routes and markers on a plain
background. Saves one screenshot per page under docs/img/.

Skipped (with the reason) only when /usr/bin/chromium is missing and ``CI`` is not ``true``;
in CI a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import web_data
from test_web import HAS_SEARCH, WebServer, _events, _ids, start_web, stop, web_env  # noqa: F401 - fixtures below

CHROMIUM = os.environ.get("DASHCAM_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
IN_CI = os.environ.get("CI") == "true"

pytestmark = [pytest.mark.slow]
if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)) and not IN_CI:
    pytestmark.append(pytest.mark.skip(reason=f"no chromium at {CHROMIUM} (apt-get install chromium); required in CI"))


@pytest.fixture(scope="module")
def site(web_data_set, web_prefect):
    proc, base = start_web(web_env(web_data_set, web_data_set.settings.db_url, web_prefect))
    try:
        yield WebServer(base, proc, web_data_set.settings.db_url, web_data_set)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.route("https://tile.openstreetmap.org/**", lambda route: route.abort("internetdisconnected"))
    pg.errors = errors
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(pg, name: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(IMG / f"{name}.png"), full_page=True)


def _wait_map(pg):
    pg.wait_for_selector("#map[data-ready='1']", timeout=15_000)
    pg.wait_for_selector("#map.tiles-off", timeout=15_000)  # the tiles failed, the map still drew


def test_dashboard_and_drives(page, site):
    page.goto(site.base + "/")
    assert page.title() == "Dashboard · dashcam"
    assert page.locator(".totals .num").first.inner_text() == "2"
    assert page.locator(".crops img").count() >= 4
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "dashboard")
    page.goto(site.base + "/drives")
    assert page.locator(".drive-card").count() == 2
    page.fill("input[name=since]", "2020-12-18")
    page.fill("input[name=until]", "2020-12-18")
    page.click("form.filters button")
    page.wait_for_url("**/drives?since=2020-12-18&until=2020-12-18")
    assert page.locator(".drive-card").count() == 1
    page.goto(site.base + "/drives")
    shot(page, "drives")


def test_drive_page_map_player_sync(page, site):
    ids = _ids(site.data)
    did = ids[web_data.FRONT1]
    page.goto(f"{site.base}/drives/{did}")
    _wait_map(page)
    assert page.locator("path.route-current").count() == 1
    assert page.locator("path.route-other").count() >= 1  # the other segments of the drive
    assert page.locator("path.ev-marker").count() >= 3
    assert page.locator("path.pos-marker").count() == 1
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15_000)
    assert page.evaluate("document.getElementById('player').duration") == pytest.approx(3.0, abs=0.2)

    # a click on the event in the list seeks the video to its pts
    ev = next(e for e in _events(site) if e["video_id"] == did)
    page.evaluate("document.getElementById('player').currentTime = 2.9")
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 2.9) < 0.2")
    page.click(f".event [data-event='{ev['id']}']")
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {ev['pts_s']}) < 1.0", timeout=10_000)
    ct = page.evaluate("document.getElementById('player').currentTime")
    assert abs(ct - ev["pts_s"]) < 1.0
    page.evaluate("document.getElementById('player').pause()")

    # the position marker follows playback: at the time of a route point it sits on that point
    route = page.evaluate("window.dashcam.data.route")
    t, lat, lon = route[-1]
    t = min(t, 2.95)
    page.evaluate(f"document.getElementById('player').currentTime = {t}")
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {t}) < 0.05")
    page.wait_for_timeout(300)
    pos = page.evaluate("window.dashcam.position()")
    exp = page.evaluate(f"(function(){{var r=window.dashcam.data.route;for(var i=1;i<r.length;i++)if(r[i][0]>={t}){{var a=r[i-1],b=r[i],f=({t}-a[0])/(b[0]-a[0]);return [a[1]+f*(b[1]-a[1]),a[2]+f*(b[2]-a[2])];}}return [r[r.length-1][1],r[r.length-1][2]];}})()")
    assert pos["lat"] == pytest.approx(exp[0], abs=1e-7) and pos["lng"] == pytest.approx(exp[1], abs=1e-7)
    assert page.get_attribute("#speed-cursor", "x1") != "34"  # the speed chart cursor moved too

    # a click on the route seeks the video to the nearest route point
    t1, lat1, lon1 = route[1]
    page.evaluate("document.getElementById('player').currentTime = 0")
    xy = page.evaluate(f"(function(){{var p=window.dashcam.map.latLngToContainerPoint([{lat1},{lon1}]);"
                       f"var r=document.getElementById('map').getBoundingClientRect();return [r.left+p.x, r.top+p.y];}})()")
    page.mouse.click(xy[0], xy[1])
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {t1}) < 1.0", timeout=10_000)
    page.evaluate("document.getElementById('player').pause()")
    page.evaluate("document.getElementById('player').currentTime = 1.5")
    page.wait_for_timeout(400)
    shot(page, "drive")

    # front/rear switch keeps the playback time
    page.click(".switch a:has-text('Rear')")
    page.wait_for_url(f"**/drives/{did}?v={ids[web_data.REAR1]}&t=*")
    assert page.locator(".switch a.on").inner_text() == "Rear"
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15_000)
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(1.5, abs=0.5)


def test_plate_page(page, site):
    page.goto(site.base + "/plates/XSNB23")
    _wait_map(page)
    assert page.title() == "Plate XSNB23 · dashcam"
    assert page.locator(".leaflet-marker-icon.pin").count() == 1
    assert page.locator(".crops.wide img").count() == 2
    shot(page, "plate")
    page.click("a:has-text('watch ▶')")
    page.wait_for_url("**/drives/*?v=*&t=*")
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15_000)
    ev = next(e for e in _events(site) if e["final_plate"] == "XSNB23")
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(ev["pts_s"], abs=0.5)


def test_map_page_clusters_and_popups(page, site):
    page.goto(site.base + "/map?since=2020-12-18&until=2020-12-18")
    _wait_map(page)
    icons = page.locator(".leaflet-marker-icon")
    assert icons.count() >= 1  # clusters and/or pins
    # zoom in until every sighting is its own pin, then open one
    page.evaluate("window.dashcam.map.setZoom(22)")
    page.wait_for_timeout(800)
    n = len([e for e in _events(site) if e["lat"] is not None])
    page.wait_for_function(f"document.querySelectorAll('.leaflet-marker-icon.pin').length == {n}", timeout=10_000)
    page.evaluate("window.dashcam.map.setZoom(18)")
    page.wait_for_timeout(800)
    shot(page, "map")
    page.evaluate("window.dashcam.map.setZoom(22)")
    page.wait_for_timeout(800)
    page.locator(".leaflet-marker-icon.pin").first.click(force=True)
    popup = page.locator(".leaflet-popup .pop")
    popup.wait_for(timeout=5000)
    assert popup.locator("a.plate").inner_text() in {e["final_plate"] for e in _events(site)}
    assert popup.locator("a:has-text('watch')").get_attribute("href").startswith("/videos/")


@pytest.mark.skipif(not HAS_SEARCH and not IN_CI, reason="dashcam.search not merged yet")
def test_search_finds_labelled_plate_from_misread(page, site):
    page.goto(site.base + "/search")
    page.fill("#q", "X5NB2S")  # XS-NB-23 misread: S->5, 3->S
    page.wait_for_function("document.querySelector('#results table.results') !== null", timeout=10_000)  # htmx, live
    first = page.locator("#results table.results tbody tr").first.locator("a.plate").inner_text()
    assert first == "XSNB23"
    assert "q=X5NB2S" in page.url
    shot(page, "search")
    page.goto(site.base + "/search?q=%2F(%5BAB")  # a broken regex: a plain 400 page
    assert page.locator("h1").inner_text() == "400"


def test_error_and_login_pages(page, site, web_data_set):
    page.goto(site.base + "/drives/does-not-exist")
    assert page.locator("h1").inner_text() == "404" and "There is no drive" in page.inner_text(".message")
    token = "browser-test-token"
    proc, base = start_web(web_env(web_data_set, web_data_set.settings.db_url, DASHCAM_WEB_TOKEN=token), host="0.0.0.0")
    try:
        page.goto(base + "/map")
        assert "/login?next=%2Fmap" in page.url
        shot(page, "login")
        page.fill("input[name=token]", token)
        page.click("form button[type=submit]")
        page.wait_for_url(base + "/map")
        _wait_map(page)
    finally:
        stop(proc)
