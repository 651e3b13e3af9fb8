"""Web storage page (issue 16 point 3) and media after retention (issue 16, web routes).

A real folder tree with real clips, archive copies and a SQLite results DB (tests/test_storage.py's
``Tree``), the real ``dashcam web`` in a subprocess, real retention, a real browser (Playwright
driving Chromium) for the page and its screenshot ``docs/img/storage.png``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import httpx
import pytest
import test_storage as ts
import test_web as tw

from dashcam.storage import storage_report


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    t = ts.Tree(tmp_path_factory.mktemp("webstore"), "sqlite:///" + str(tmp_path_factory.mktemp("db") / "d.db"))
    t.videos = {
        "old": t.add("DCIM/Movie/2024_0101_100000_0001F.MP4"),
        "young": t.add("DCIM/Movie/2024_0101_100100_0002F.MP4", age_days=2),
        "locked": t.add("DCIM/Movie/RO/2024_0101_100200_0003F.MP4"),
        "event": t.add("DCIM/Event/2024_0101_100300_0004F.MP4"),
    }
    yield t
    t.engine.dispose()


@pytest.fixture(scope="module")
def web(tree):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHCAM_", "PREFECT_"))}
    s = tree.settings
    env.update(
        DASHCAM_DATA_DIR=str(s.data_dir),
        DASHCAM_DATABASE_URL=s.db_url,
        DASHCAM_ARCHIVE_DIR=str(s.archive_dir),
        DASHCAM_RAW_DIR=str(tree.raw),
        DASHCAM_CAMERA_TZ="UTC",
    )
    proc, base = tw.start_web(env)
    try:
        yield base
    finally:
        tw.stop(proc)


def test_storage_page_and_api(tree, web):
    rep = storage_report(tree.settings, tree.engine)
    r = httpx.get(web + "/storage", timeout=30)
    assert r.status_code == 200 and "<title>Storage" in r.text
    assert 'href="/storage" aria-current="page"' in r.text
    for key in ("locked", "event"):
        assert str(tree.videos[key]["path"]) in r.text
    assert "camera folder RO/" in r.text and "camera folder Event/" in r.text
    assert str(tree.videos["old"]["path"]) in r.text.split('id="deletions"')[1].split("</table>")[0]
    assert str(tree.videos["young"]["path"]) not in r.text  # neither deleted nor protected
    api = httpx.get(web + "/api/storage", timeout=30).json()
    assert api["retention"]["would_free_bytes"] == rep["retention"]["would_free_bytes"]
    assert api["tiers"]["archive"]["bytes"] == rep["tiers"]["archive"]["bytes"] > 0
    assert [p["path"] for p in api["protected"]] == [p["path"] for p in rep["protected"]]


@tw.needs_browser
def test_b_storage_page(tree, web):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=tw.CHROMIUM, args=tw.ARGS)
        try:
            pg = b.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1).new_page()
            errors: list[str] = []
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(web + "/")
            pg.click("nav >> text=Storage")
            pg.wait_for_url(web + "/storage")
            assert pg.locator("nav a[aria-current=page]").inner_text() == "Storage"
            assert pg.locator("#protected tbody tr").count() == 2
            assert pg.locator("#deletions tbody tr").count() == 1
            assert (
                "MB" in pg.locator("#tier-archive .num").inner_text()
                or "kB" in pg.locator("#tier-archive .num").inner_text()
            )
            assert pg.locator("#would-free .num").inner_text() != "0 B"
            tw.shot(pg, "storage")
            assert not errors, errors
        finally:
            b.close()


def test_media_after_retention_deleted_the_raw_then_the_archive(tree, web):
    old = tree.videos["old"]
    tree.run()  # real retention: the old verified raw file goes
    assert not old["path"].exists() and tree.row(old["id"])["raw_deleted_at"] is not None
    r = httpx.get(f"{web}/media/video/{old['id']}", headers={"Range": "bytes=0-99"}, timeout=30)
    assert r.status_code == 206 and len(r.content) == 100 and r.headers["content-type"] == "video/mp4"
    assert httpx.get(f"{web}/media/poster/{old['id']}", timeout=30).status_code == 200  # from the archive copy
    full = httpx.get(f"{web}/media/video/{old['id']}", timeout=30)
    assert full.content == old["archive"].read_bytes()
    # the storage page now counts it as deleted
    assert httpx.get(web + "/api/storage", timeout=30).json()["videos"]["raw_deleted"] == 1
    # archive_keep_days removes the archive copy: 410 Gone with a one-line reason, crops still served
    t = (ts.NOW - timedelta(days=30)).timestamp()
    os.utime(old["archive"], (t, t))  # a 30-day-old archive copy
    tree.run(archive_keep_days=1)
    assert not old["archive"].exists()
    r = httpx.get(f"{web}/media/video/{old['id']}", timeout=30)
    assert r.status_code == 410 and "deleted by retention" in r.json()["error"]
    assert httpx.get(f"{web}/media/crop/{old['id']}:1", timeout=30).status_code == 200
