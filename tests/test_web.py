"""The web UI over real data: real clips ingested by the real flow into SQLite and PostgreSQL,
``dashcam web`` (uvicorn) on 127.0.0.1 at a free port, real HTTP; then a real browser.

Browser tests (``test_b_*``, at the end): Debian's chromium driven by Playwright (its own browser
download does not work offline), against ``dashcam web`` over the SQLite data. Map tiles are
refused (as with no internet) so the maps must draw routes and markers on a plain background.
They save one screenshot per page under docs/img/. Skipped (with the reason) only when
/usr/bin/chromium is missing and ``CI`` is not ``true``; in CI a missing browser fails.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import gpxpy
import httpx
import pytest
import sqlalchemy as sa
import web_data
from helpers import shared_dir
from prefect_server import PrefectServer, free_port

from dashcam.db import VEHICLES, VIDEOS, make_engine
from dashcam.drives import group_drives

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shared_dir() / web_data.PLATES).is_dir(), reason="shared test data not found"),
]

HAS_SEARCH = True
try:
    import dashcam.search  # noqa: F401  (w1-search: alternative readings + fuzzy search)
except ImportError:
    HAS_SEARCH = False
needs_search = pytest.mark.skipif(
    not HAS_SEARCH and os.environ.get("CI") != "true", reason="dashcam.search not merged yet"
)


# --------------------------------------------------------------------------------------------
# session fixtures: Prefect API, ingested data (SQLite + PostgreSQL), running servers


@pytest.fixture(scope="session")
def web_prefect(tmp_path_factory):
    server = PrefectServer(tmp_path_factory.mktemp("web-prefect-home")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def web_data_set(web_prefect, tmp_path_factory) -> web_data.WebData:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = tmp_path_factory.mktemp("web")
    with temporary_settings({PREFECT_API_URL: web_prefect.api_url}):
        return web_data.build(root, f"sqlite:///{root / 'dashcam.db'}")


@pytest.fixture(scope="session")
def web_pg_url(web_data_set, web_prefect, pg_server) -> str:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = pg_server.url(pg_server.create_database())
    make_engine(url).dispose()  # migrate
    with temporary_settings({PREFECT_API_URL: web_prefect.api_url}):
        web_data.persist_into(web_data_set, url)
    return url


class WebServer:
    def __init__(self, base: str, proc: subprocess.Popen, db_url: str, data: web_data.WebData):
        self.base, self.proc, self.db_url, self.data = base, proc, db_url, data

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kw)


def _dashcam_exe() -> str:
    return str(Path(sys.executable).with_name("dashcam"))


def web_env(data: web_data.WebData, db_url: str, prefect: PrefectServer | None = None, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHCAM_", "PREFECT_"))}
    env.update(
        DASHCAM_DATA_DIR=str(data.settings.data_dir),
        DASHCAM_DATABASE_URL=db_url,
        DASHCAM_ARCHIVE_DIR=str(data.settings.archive_dir),
        DASHCAM_CAMERA_TZ="UTC",
    )
    if prefect is not None:
        env.update(PREFECT_API_URL=prefect.api_url, PREFECT_UI_URL=prefect.api_url.removesuffix("/api"))
    env.update(extra)
    return env


def start_web(env: dict, host: str = "127.0.0.1", timeout_s: float = 60) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [_dashcam_exe(), "web", "--host", host, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dashcam web exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("dashcam web did not answer in time")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(request, web_data_set, web_prefect) -> WebServer:
    url = web_data_set.settings.db_url if request.param == "sqlite" else request.getfixturevalue("web_pg_url")
    proc, base = start_web(web_env(web_data_set, url, web_prefect))
    try:
        yield WebServer(base, proc, url, web_data_set)
    finally:
        stop(proc)


def _ids(data: web_data.WebData) -> dict[str, str]:
    """File name -> video id."""
    eng = make_engine(data.settings.db_url, migrate_schema=False)
    with eng.connect() as c:
        rows = c.execute(sa.select(VIDEOS.c.id, VIDEOS.c.path)).all()
    eng.dispose()
    return {Path(p).name: i for i, p in rows}


def _events(server: WebServer) -> list[dict]:
    eng = make_engine(server.db_url, migrate_schema=False)
    with eng.connect() as c:
        rows = [dict(r) for r in c.execute(sa.select(VEHICLES).order_by(VEHICLES.c.ts)).mappings()]
    eng.dispose()
    return rows


def _title(html: str) -> str:
    m = re.search(r"<title>(.*?)</title>", html, re.S)
    return m.group(1).strip() if m else ""


# --------------------------------------------------------------------------------------------
# drives: the definition (pure logic over videos rows)


def _v(i, name, start, dur=60.0, folder="/card/DCIM/Movie"):
    return {"id": i, "path": f"{folder}/{name}", "recording_start": start, "duration_s": dur, "n_events": 1}


def test_drive_grouping_rule():
    t = lambda h, m, s=0: datetime(2024, 3, 15, h, m, s, tzinfo=UTC)  # noqa: E731
    vids = [
        _v("a", "2024_0315_140000_0001F.MP4", t(14, 0)),
        _v("ar", "2024_0315_140000_0001R.MP4", t(14, 0)),
        _v("b", "2024_0315_140100_0002F.MP4", t(14, 1)),
        _v("c", "2024_0315_141100_0003F.MP4", t(14, 11)),  # 9 min after b's end: same drive
        _v("d", "2024_0315_142300_0004F.MP4", t(14, 23)),  # 11 min after c's end: a new drive
        _v("x", "other.mp4", t(14, 0, 30), folder="/other-cam"),  # another camera, same time
    ]
    drives = group_drives(vids, gap_min=10)
    by_id = {d.id: d for d in drives}
    assert set(by_id) == {"a", "d", "x"}
    assert [s.stem for s in by_id["a"].segments] == [
        "2024_0315_140000_0001",
        "2024_0315_140100_0002",
        "2024_0315_141100_0003",
    ]
    assert set(by_id["a"].segments[0].channels) == {"F", "R"} and by_id["a"].segments[0].primary["id"] == "a"
    assert by_id["a"].video_ids == ["a", "ar", "b", "c"]
    assert by_id["a"].duration_s == 12 * 60 and by_id["a"].video_s == 3 * 60
    assert [d.id for d in drives] == ["d", "x", "a"]  # newest first
    assert {d.id for d in group_drives(vids, gap_min=12)} == {"a", "x"}
    with pytest.raises(ValueError):
        group_drives(vids, gap_min=-1)


def test_loopback_and_csp_helpers():
    from dashcam.web.exports import to_csv
    from dashcam.web.security import is_loopback, security_headers, tile_origin

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org", ""))
    assert tile_origin("https://{s}.tile.example.org/{z}/{x}/{y}.png") == "https://*.tile.example.org"
    assert tile_origin("/tiles/{z}/{x}/{y}.png") is None
    assert "img-src 'self' data: blob:;" in security_headers("/tiles/{z}/{x}/{y}.png")["Content-Security-Policy"]
    # a CSV cell that a spreadsheet would run as a formula is defused
    assert "'=HYPERLINK" in to_csv([{"id": "=HYPERLINK(1)", "final_plate": "AB12CD"}])


def test_web_database_connection_is_read_only(web_data_set):
    from dashcam.web.app import Web

    web = Web(web_data_set.settings, None, None)
    try:
        with web.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(VIDEOS)).scalar_one() >= 4
            with pytest.raises(sa.exc.OperationalError, match="readonly|read-only|read only"):
                conn.execute(sa.delete(VEHICLES))
    finally:
        web.engine.dispose()


def test_web_pg_connection_is_read_only(web_data_set, web_pg_url):
    from pydantic import SecretStr

    from dashcam.web.app import Web

    web = Web(web_data_set.settings.model_copy(update={"database_url": SecretStr(web_pg_url)}), None, None)
    try:
        with web.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="read-only"):
            conn.execute(sa.delete(VEHICLES))
    finally:
        web.engine.dispose()


# --------------------------------------------------------------------------------------------
# pages


def test_dashboard(server: WebServer):
    r = server.get("/")
    assert r.status_code == 200 and _title(r.text) == "Dashboard · dashcam"
    html = r.text
    inv = {
        lbl: num for num, lbl in re.findall(r'<span class="num">([^<]+)</span><span class="lbl">([^<]+)</span>', html)
    }
    assert inv["drives"] == "2"
    n = len(_events(server))
    assert inv["plate events"] == str(n) and n >= 4
    assert "km driven" in inv and float(inv["km driven"]) > 0
    for plate in ("XSNB23", "23GSX6", "ZDPB67"):
        assert f'href="/plates/{plate}"' in html
    # the failed ingest of notes.mp4, read from the Prefect API, linked to its run in the UI
    m = re.search(r'<a href="(http://127\.0\.0\.1:\d+/runs/flow-run/[0-9a-f-]{36})">notes\.mp4</a>', html)
    assert m, "failed ingest run not listed with a Prefect UI link"
    assert "not a readable video" in html


def test_dashboard_without_prefect_says_where_failures_are(web_data_set):
    proc, base = start_web(web_env(web_data_set, web_data_set.settings.db_url))
    try:
        html = httpx.get(base + "/", timeout=30).text
        assert "Failures are visible in the Prefect UI" in html
    finally:
        stop(proc)


def test_drives_page_and_date_filter(server: WebServer):
    ids = _ids(server.data)
    html = server.get("/drives").text
    assert f'href="/drives/{ids[web_data.FRONT1]}"' in html and f'href="/drives/{ids[web_data.PLAIN]}"' in html
    assert "Friday 18 December 2020" in html
    assert 'src="/media/thumb/' in html
    r = server.get("/drives?since=2020-12-18&until=2020-12-18")
    assert r.status_code == 200
    assert f'href="/drives/{ids[web_data.FRONT1]}"' in r.text and f'href="/drives/{ids[web_data.PLAIN]}"' not in r.text
    assert "1 drive<" in r.text
    r = server.get("/drives?since=2019-01-01&until=2019-01-02")
    assert "No drives in this date range." in r.text


def test_drive_page(server: WebServer):
    ids = _ids(server.data)
    did = ids[web_data.FRONT1]
    r = server.get(f"/drives/{did}")
    assert r.status_code == 200 and _title(r.text).startswith("Drive 2020-12-18 06:17")
    html = r.text
    assert f'src="/media/video/{did}#t=0.00"' in html
    assert f'href="/drives/{did}?v={ids[web_data.REAR1]}"' in html  # front/rear switch
    assert f'href="/drives/{did}?v={ids[web_data.FRONT2]}"' in html  # next segment
    assert '<svg class="speed"' in html and 'id="speed-cursor"' in html
    for plate in ("XSNB23", "24LBHT", "23GSX6"):
        assert f'<span class="plate">{plate}</span>' in html
    data = json.loads(re.search(r'<script type="application/json" id="map-data">(.*?)</script>', html, re.S).group(1))
    assert data["video"] == did and len(data["route"]) >= 3 and data["others"]
    assert all(45 < p[1] < 46 and 13 < p[2] < 14 for p in data["route"])  # near Visnjan, Croatia
    # the API gives the same, for another segment
    api = server.get(f"/api/drives/{did}", params={"v": ids[web_data.FRONT2]}).json()
    assert api["video"] == ids[web_data.FRONT2] and ids[web_data.REAR1] in api["videos"]
    assert sorted(e["plate"] for e in api["events"] if e["here"]) == ["23GSX6", "97FBFP", "99SZG5"] or {"23GSX6"} <= {
        e["plate"] for e in api["events"] if e["here"]
    }
    # a moment link redirects to the drive page at that time
    r = server.get(f"/videos/{ids[web_data.FRONT2]}?t=4.5", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/drives/{did}?v={ids[web_data.FRONT2]}&t=4.50"
    page = server.get(r.headers["location"]).text
    assert f'src="/media/video/{ids[web_data.FRONT2]}#t=4.50"' in page


def test_drive_without_gps(server: WebServer):
    ids = _ids(server.data)
    html = server.get(f"/drives/{ids[web_data.PLAIN]}").text
    assert "No GPS positions for this drive" in html and "ZDPB67" in html


def test_plate_page(server: WebServer):
    r = server.get("/plates/XSNB23")
    assert r.status_code == 200 and _title(r.text) == "Plate XSNB23 · dashcam"
    html = r.text
    assert "1 sighting on 1 drive" in html and "first seen 2020-12-18 06:17" in html
    assert re.search(r'src="/media/crop/[0-9a-f]+:\d+"', html) and re.search(r'src="/media/thumb/[0-9a-f]+:\d+"', html)
    assert 'class="timeline"' in html and "Fri 18 Dec 2020" in html
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["points"]) == 1 and data["points"][0]["url"].startswith("/videos/")
    # lower case and dashes are not plate texts in URLs: 400; an unknown plate: 404 with a search link
    assert server.get("/plates/xsnb23").status_code == 200
    r = server.get("/plates/XS-NB-23")
    assert r.status_code == 400 and "is not a plate text" in r.text
    r = server.get("/plates/QQ999Q")
    assert r.status_code == 404 and "No sightings of plate QQ999Q" in r.text and "/search?q=QQ999Q" in r.text


def test_map_page_and_sightings_api(server: WebServer):
    html = server.get("/map").text
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', html, re.S).group(1))
    plates = {p["plate"] for p in data["points"]}
    assert {"XSNB23", "24LBHT", "23GSX6"} <= plates and "ZDPB67" not in plates  # no GPS for that one
    api = server.get("/api/sightings", params={"since": "2020-12-18", "until": "2020-12-18"}).json()
    assert {p["plate"] for p in api["sightings"]} == plates
    assert server.get("/api/sightings", params={"since": "2021-01-01"}).json() == {"sightings": []}
    r = server.get("/api/sightings", params={"since": "18-12-2020"})
    assert r.status_code == 400 and r.json()["error"].startswith("since='18-12-2020' is not a date")


@needs_search
def test_search_page_fuzzy_and_exports(server: WebServer):
    r = server.get("/search", params={"q": "X5NB2S"})
    assert r.status_code == 200
    first = re.search(r'<a class="plate " href="/plates/([A-Z0-9]+)">', r.text)
    assert first and first.group(1) == "XSNB23"
    assert re.search(r"<strong>\d+</strong> results?", r.text)
    qs = {"q": "X5NB2S", "since": "2020-12-18", "until": "2020-12-18"}
    j = server.get("/search.json", params=qs).json()
    assert j["rows"][0]["final_plate"] == "XSNB23" and j["total"] >= 1 and j["query"]["q"] == "X5NB2S"
    rows = list(csv.DictReader(io.StringIO(server.get("/search.csv", params=qs).text)))
    assert rows[0]["final_plate"] == "XSNB23" and float(rows[0]["lat"]) > 45
    g = gpxpy.parse(server.get("/search.gpx", params=qs).text)
    assert g.waypoints[0].name == "XSNB23" and 45 < g.waypoints[0].latitude < 46
    # filters: a box around nothing, a min confidence above every event, one drive
    assert server.get("/search.json", params={"q": "X5NB2S", "box": "0,0,1,1"}).json()["total"] == 0
    ids = _ids(server.data)
    j = server.get("/search.json", params={"drive": ids[web_data.FRONT1]}).json()  # no q: every event of the drive
    assert j["total"] == 4 and j["kind"] == "all" and "ZDPB67" not in {x["final_plate"] for x in j["rows"]}
    assert server.get("/search.json", params={"min_conf": "0.999"}).json()["total"] == 0
    assert server.get("/search", params={"q": "X5NB2S", "min_conf": "0.999"}).text.count("Nothing matches") == 1
    # wildcard and regex
    assert {x["final_plate"] for x in server.get("/search.json", params={"q": "23*"}).json()["rows"]} >= {"23GSX6"}
    assert {x["final_plate"] for x in server.get("/search.json", params={"q": "/^ZD/"}).json()["rows"]} == {"ZDPB67"}


@needs_search
@pytest.mark.parametrize(
    "params, status, message",
    [
        ({"q": "/([A-Z/"}, 400, ""),  # broken regex
        ({"q": "A" * 10_000}, 400, "characters long"),  # 10 kB pattern
        ({"q": "AB", "since": "yesterday"}, 400, "is not a date"),
        ({"q": "AB", "min_conf": "high"}, 400, "is not a number"),
        ({"q": "AB", "min_conf": "2"}, 400, "out of range"),
        ({"q": "AB", "box": "1,2,3"}, 400, "min_lat,min_lon,max_lat,max_lon"),
        ({"q": "AB", "box": "1,,3,4"}, 400, "min_lon is empty"),  # was a 500 (None compared with a float)
        ({"q": "AB", "drive": "no-such-drive"}, 404, "There is no drive"),
        ({"q": "AB", "page_no": "x"}, 400, "page_no"),
    ],
)
def test_search_bad_input_is_a_plain_4xx(server: WebServer, params, status, message):
    r = server.get("/search", params=params)
    assert r.status_code == status
    assert "Traceback" not in r.text and "<h1>" in r.text
    assert message in r.text
    if "page_no" in params:  # exports have no pages
        return
    r = server.get("/search.json", params=params)
    assert r.status_code == status and "error" in r.json()


@pytest.mark.parametrize(
    "path, status",
    [
        ("/drives/nope", 404),
        ("/videos/nope", 404),
        ("/drives?since=2020-13-01", 400),
        ("/no/such/page", 404),
        ("/videos/x?t=-1", 404),
        ("/drives/x?t=abc", 400),
        ("/media/crop/nope:1", 404),
    ],
)
def test_bad_urls(server: WebServer, path, status):
    r = server.get(path)
    assert r.status_code == status and "Traceback" not in r.text


# --------------------------------------------------------------------------------------------
# media


def test_video_range_requests(server: WebServer):
    ids = _ids(server.data)
    url = f"/media/video/{ids[web_data.FRONT2]}"
    full = server.get(url)
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes" and "max-age" in full.headers["cache-control"]
    size = len(full.content)
    archive = Path(server.data.settings.archive_dir) / ids[web_data.FRONT2] / "video_720p.mp4"
    assert size == archive.stat().st_size
    r = server.get(url, headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.headers["content-range"] == f"bytes 1000-1999/{size}"
    assert r.content == archive.read_bytes()[1000:2000]
    r = server.get(url, headers={"Range": f"bytes={size - 100}-"})
    assert r.status_code == 206 and len(r.content) == 100
    assert server.get(url, headers={"Range": f"bytes={size + 10}-"}).status_code == 416
    # what the browser plays is H.264 (Debian's chromium plays no HEVC)
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,pix_fmt",
            "-of",
            "csv=p=0",
            str(archive),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert probe == "h264,yuv420p"


def test_crops_thumbs_posters_have_cache_headers(server: WebServer):
    ev = next(e for e in _events(server) if e["final_plate"] == "XSNB23")
    for kind in ("crop", "thumb"):
        r = server.get(f"/media/{kind}/{ev['id']}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
        assert r.headers["cache-control"] == "private, max-age=86400" and "etag" in r.headers
    r = server.get(f"/media/poster/{ev['video_id']}")
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"


def test_media_outside_the_archive_is_refused(server: WebServer, tmp_path):
    """DB paths that resolve outside the archive (``..``, absolute elsewhere, a symlink out) are not served."""
    archive = Path(server.data.settings.archive_dir)
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not for the web")
    link = archive / "evil" / "link.mp4"
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(secret)
    rel_out = os.path.relpath(secret, archive)  # ../../.../secret.mp4
    cases = {"trav1": str(archive / rel_out), "trav2": str(secret), "trav3": str(link), "trav4": rel_out}
    eng = make_engine(server.db_url, migrate_schema=False)
    now = datetime(2001, 1, 1, tzinfo=UTC)
    try:
        with eng.begin() as c:
            for vid, p in cases.items():
                c.execute(
                    sa.insert(VIDEOS).values(
                        id=vid,
                        path=f"/elsewhere/{vid}.mp4",
                        size_bytes=1,
                        duration_s=1.0,
                        fps=1.0,
                        width=2,
                        height=2,
                        codec="h264",
                        recording_start=now,
                        recording_start_source="test",
                        camera=None,
                        archive_path=p,
                        n_events=0,
                        ingested_at=now,
                    )
                )
        for vid in cases:
            r = server.get(f"/media/video/{vid}")
            assert r.status_code == 403, (vid, r.status_code)
            assert b"not for the web" not in r.content
            assert server.get(f"/media/poster/{vid}").status_code == 403
    finally:
        with eng.begin() as c:
            c.execute(sa.delete(VIDEOS).where(VIDEOS.c.id.in_(list(cases))))
        eng.dispose()
        link.unlink()
    # traversal in the URL itself never reaches the file system
    for path in (
        "/media/video/..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/%2Fetc%2Fpasswd",
        "/media/crop/%2Fetc%2Fpasswd",
    ):
        r = server.get(path)
        assert r.status_code in (403, 404) and "root:" not in r.text


def test_static_assets_are_local_with_licences(server: WebServer):
    for p in (
        "/static/vendor/leaflet/leaflet.js",
        "/static/vendor/htmx/htmx.min.js",
        "/static/vendor/markercluster/leaflet.markercluster.js",
        "/static/app.js",
        "/static/app.css",
    ):
        assert server.get(p).status_code == 200, p
    vendor = Path(__file__).resolve().parents[1] / "dashcam/web/static/vendor"
    for lic in ("leaflet/LICENSE", "htmx/LICENSE", "markercluster/MIT-LICENCE.txt"):
        assert (vendor / lic).stat().st_size > 200
    html = server.get("/drives/" + _ids(server.data)[web_data.FRONT1]).text
    assert not re.search(
        r'(src|href)="(https?:)?//', html.replace('href="https://www.openstreetmap.org/copyright"', "")
    )


def test_security_headers(server: WebServer):
    r = server.get("/")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp
    assert re.findall(r"https?://[^\s;]+", csp) == ["https://tile.openstreetmap.org"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"


def test_post_without_csrf_token_is_refused(server: WebServer):
    with httpx.Client(base_url=server.base) as c:
        c.get("/")  # gets the CSRF cookie
        assert c.post("/logout", data={}).status_code == 403
        assert c.post("/logout", data={"csrf_token": "forged"}).status_code == 403
        assert c.post("/logout", files={"csrf_token": ("t.txt", b"x")}).status_code == 403  # a file is no token
        html = c.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        assert c.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    # a token from another browser (another cookie) does not pass either
    assert httpx.post(server.base + "/logout", data={"csrf_token": token}).status_code == 403


# --------------------------------------------------------------------------------------------
# access token on a non-loopback bind


def test_non_loopback_bind_refuses_without_token(web_data_set):
    proc = subprocess.run(
        [_dashcam_exe(), "web", "--host", "0.0.0.0", "--port", str(free_port())],
        env=web_env(web_data_set, web_data_set.settings.db_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "DASHCAM_WEB_TOKEN" in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr


def test_token_login_on_non_loopback_bind(web_data_set):
    token = "s3cret-token-for-tests"
    proc, base = start_web(web_env(web_data_set, web_data_set.settings.db_url, DASHCAM_WEB_TOKEN=token), host="0.0.0.0")
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            r = c.get("/plates/XSNB23", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fplates%2FXSNB23"
            assert c.get("/media/video/x").status_code == 401
            assert c.get("/search.json?q=XS*").status_code == 401
            assert c.get("/static/app.css").status_code == 200
            login = c.get("/login?next=/plates/XSNB23").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
            assert c.post("/login", data={"token": "wrong", "csrf_token": csrf, "next": "/"}).status_code == 401
            assert c.post("/login", data={"token": token, "next": "/"}).status_code == 403  # no CSRF token
            r = c.post(
                "/login", data={"token": token, "csrf_token": csrf, "next": "/plates/XSNB23"}, follow_redirects=False
            )
            assert r.status_code == 303 and r.headers["location"] == "/plates/XSNB23"
            assert c.get("/plates/XSNB23").status_code == 200
            # an open redirect is not possible
            r = c.post(
                "/login", data={"token": token, "csrf_token": csrf, "next": "//evil.example/"}, follow_redirects=False
            )
            assert r.headers["location"] == "/"
        # scripts: a bearer token instead of the cookie
        assert httpx.get(base + "/api/sightings", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(base + "/api/sightings", headers={"Authorization": "Bearer nope"}).status_code == 401
    finally:
        stop(proc)


# --------------------------------------------------------------------------------------------
# the real browser


CHROMIUM = os.environ.get("DASHCAM_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
IN_CI = os.environ.get("CI") == "true"

needs_browser = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)) and not IN_CI,
    reason=f"no chromium at {CHROMIUM} (apt-get install chromium); required in CI",
)


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
    pg.on(
        "console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None
    )  # our pages obey the CSP
    pg.route("https://tile.openstreetmap.org/**", lambda route: route.abort("internetdisconnected"))
    pg.errors = errors
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors: {errors}"


def wait_js(pg, expr: str, timeout_s: float = 10.0):
    """Poll ``expr`` with page.evaluate until truthy (Playwright's wait_for_function evaluates
    strings with eval, which our CSP rightly refuses)."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = pg.evaluate(expr)
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expr}")
        time.sleep(0.1)


def shot(pg, name: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    pg.mouse.move(1, 1)  # no hover tooltip in the picture
    pg.evaluate("document.activeElement && document.activeElement.blur && document.activeElement.blur()")
    pg.wait_for_timeout(200)
    pg.screenshot(path=str(IMG / f"{name}.png"), full_page=True)


def _wait_map(pg):
    pg.wait_for_selector("#map[data-ready='1']", timeout=15_000)
    pg.wait_for_selector("#map.tiles-off", timeout=15_000)  # the tiles failed, the map still drew


@needs_browser
def test_b_dashboard_and_drives(page, site):
    page.goto(site.base + "/")
    assert page.title() == "Dashboard · dashcam"
    assert page.locator(".totals .num").first.inner_text() == "2"
    assert page.locator(".crops img").count() >= 4
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # lazy images load
    wait_js(
        page, "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)", 15
    )  # real crops and thumbnails
    page.evaluate("window.scrollTo(0, 0)")
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


@needs_browser
def test_b_drive_page_map_player_sync(page, site):
    ids = _ids(site.data)
    did = ids[web_data.FRONT1]
    page.goto(f"{site.base}/drives/{did}")
    _wait_map(page)
    assert page.locator("path.route-current").count() == 1
    assert page.locator("path.route-other").count() >= 1  # the other segments of the drive
    assert page.locator("path.ev-marker").count() >= 3
    assert page.locator("path.pos-marker").count() == 1
    wait_js(page, "document.getElementById('player').readyState >= 1", 15)
    assert page.evaluate("document.getElementById('player').duration") == pytest.approx(3.0, abs=0.2)

    # a click on the event in the list seeks the video to its pts
    ev = next(e for e in _events(site) if e["video_id"] == did)
    page.evaluate("document.getElementById('player').currentTime = 2.9")
    wait_js(page, "Math.abs(document.getElementById('player').currentTime - 2.9) < 0.2")
    page.click(f".event [data-event='{ev['id']}']")
    wait_js(page, f"Math.abs(document.getElementById('player').currentTime - {ev['pts_s']}) < 1.0", 10)
    ct = page.evaluate("document.getElementById('player').currentTime")
    assert abs(ct - ev["pts_s"]) < 1.0
    page.evaluate("document.getElementById('player').pause()")

    # the position marker follows playback: at the time of a route point it sits on that point
    route = page.evaluate("window.dashcam.data.route")
    t, lat, lon = route[-1]
    t = min(t, 2.95)
    page.evaluate(f"document.getElementById('player').currentTime = {t}")
    wait_js(page, f"Math.abs(document.getElementById('player').currentTime - {t}) < 0.05")
    page.wait_for_timeout(300)
    pos = page.evaluate("window.dashcam.position()")
    exp = page.evaluate(
        f"(function(){{var r=window.dashcam.data.route;for(var i=1;i<r.length;i++)if(r[i][0]>={t}){{var a=r[i-1],b=r[i],f=({t}-a[0])/(b[0]-a[0]);return [a[1]+f*(b[1]-a[1]),a[2]+f*(b[2]-a[2])];}}return [r[r.length-1][1],r[r.length-1][2]];}})()"
    )
    assert pos["lat"] == pytest.approx(exp[0], abs=1e-7) and pos["lng"] == pytest.approx(exp[1], abs=1e-7)
    assert page.get_attribute("#speed-cursor", "x1") != "34"  # the speed chart cursor moved too

    # a click on the route seeks the video to the nearest route point
    # (the spot on the route farthest from the plate markers and the position marker, which sit on top)
    page.evaluate("document.getElementById('player').currentTime = 0")
    wait_js(page, "document.getElementById('player').currentTime < 0.05")
    best = page.evaluate("""(function(){
      var m = window.dashcam.map, r = window.dashcam.data.route, pos = window.dashcam.position();
      var obst = window.dashcam.data.events.filter(function (e) { return e.lat !== null; })
        .map(function (e) { return m.latLngToContainerPoint([e.lat, e.lon]); });
      if (pos) obst.push(m.latLngToContainerPoint(pos));
      var best = null;
      for (var i = 1; i < r.length; i++) for (var k = 0; k <= 10; k++) {
        var f = k / 10, lat = r[i-1][1] + f * (r[i][1] - r[i-1][1]), lon = r[i-1][2] + f * (r[i][2] - r[i-1][2]);
        var p = m.latLngToContainerPoint([lat, lon]);
        var d = Math.min.apply(null, obst.map(function (o) { return o.distanceTo(p); }));
        if (r[i-1][0] + f * (r[i][0] - r[i-1][0]) < 0.8) continue;  // clearly away from where the video is now (0 s)
        if (!best || d > best.d) best = { d: d, x: p.x, y: p.y, t: r[i-1][0] + f * (r[i][0] - r[i-1][0]) };
      }
      var rc = document.getElementById('map').getBoundingClientRect();
      best.x += rc.left; best.y += rc.top; return best; })()""")
    assert best["d"] > 12 and best["t"] > 0.5, best
    page.mouse.click(best["x"], best["y"])
    wait_js(
        page,
        f"Math.abs(document.getElementById('player').currentTime - {best['t']}) < 1.0 && "
        "document.getElementById('player').currentTime > 0.2",
        10,
    )
    assert page.url.startswith(f"{site.base}/drives/{did}")  # seeked, did not navigate
    page.evaluate("document.getElementById('player').pause()")
    page.evaluate("document.getElementById('player').currentTime = 1.5")
    page.wait_for_timeout(400)
    shot(page, "drive")

    # front/rear switch keeps the playback time
    page.click(".switch a:has-text('Rear')")
    page.wait_for_url(f"**/drives/{did}?v={ids[web_data.REAR1]}&t=*")
    assert page.locator(".switch a.on").inner_text() == "Rear"
    wait_js(page, "document.getElementById('player').readyState >= 1", 15)
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(1.5, abs=0.5)


@needs_browser
def test_b_plate_page(page, site):
    page.goto(site.base + "/plates/XSNB23")
    _wait_map(page)
    assert page.title() == "Plate XSNB23 · dashcam"
    assert page.locator(".leaflet-marker-icon.pin").count() == 1
    assert page.locator(".crops.wide img").count() == 2
    shot(page, "plate")
    page.click("a:has-text('watch ▶')")
    page.wait_for_url("**/drives/*?v=*&t=*")
    wait_js(page, "document.getElementById('player').readyState >= 1", 15)
    ev = next(e for e in _events(site) if e["final_plate"] == "XSNB23")
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(ev["pts_s"], abs=0.5)


@needs_browser
def test_b_map_page_clusters_and_popups(page, site):
    page.goto(site.base + "/map?since=2020-12-18&until=2020-12-18")
    _wait_map(page)
    icons = page.locator(".leaflet-marker-icon")
    assert icons.count() >= 1  # clusters and/or pins
    n = len([e for e in _events(site) if e["lat"] is not None])
    assert page.evaluate("window.dashcam.layer.getLayers().length") == n  # every sighting is in the cluster layer
    shot(page, "map")
    # zoomed in, single pins appear (front and rear sightings of one moment stay one cluster), then open one
    page.evaluate("window.dashcam.map.setZoom(19)")
    wait_js(page, "document.querySelectorAll('.leaflet-marker-icon.pin').length >= 1", 10)
    page.wait_for_timeout(500)
    page.locator(".leaflet-marker-icon.pin").first.click(force=True)
    popup = page.locator(".leaflet-popup .pop")
    popup.wait_for(timeout=5000)
    assert popup.locator("a.plate").inner_text() in {e["final_plate"] for e in _events(site)}
    assert popup.locator("a:has-text('watch')").get_attribute("href").startswith("/videos/")


@needs_browser
@needs_search
def test_b_search_finds_labelled_plate_from_misread(page, site):
    page.goto(site.base + "/search")
    page.fill("#q", "X5NB2S")  # XS-NB-23 misread: S->5, 3->S
    wait_js(page, "document.querySelector('#results table.results') !== null", 10)  # htmx, live
    first = page.locator("#results table.results tbody tr").first.locator("a.plate").inner_text()
    assert first == "XSNB23"
    assert "q=X5NB2S" in page.url
    shot(page, "search")
    page.goto(site.base + "/search?q=%2F(%5BAB")  # a broken regex: a plain 400 page
    assert page.locator("h1").inner_text() == "400"


@needs_browser
def test_b_error_and_login_pages(page, site, web_data_set):
    page.goto(site.base + "/drives/does-not-exist")
    assert page.locator("h1").inner_text() == "404" and "There is no drive" in page.inner_text(".message")
    token = "browser-test-token"
    proc, base = start_web(web_env(web_data_set, web_data_set.settings.db_url, DASHCAM_WEB_TOKEN=token), host="0.0.0.0")
    try:
        page.goto(base + "/map")
        assert "/login?next=%2Fmap" in page.url
        shot(page, "login")
        page.fill("input[name=token]", token)
        page.click(".login form button[type=submit]")
        page.wait_for_url(base + "/map")
        _wait_map(page)
    finally:
        stop(proc)
