"""Watch-list alerts the Prefect way, end to end: a real clip ingested through the real flow, its
plate on watch lists (exact, wildcard, a misread-only form), hit rows, ``dashcam.watchlist.hit``
events on a real ``prefect server`` (its triggers and actions services), an automation made by
``dashcam alerts add`` sending through a ``CustomWebhookNotificationBlock`` to an HTTP server on
127.0.0.1 here; then a correction that survives re-ingesting the clip."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from helpers import shared_dir
from test_ingest import CLIP, TRACK, _settings, prefect_api  # noqa: F401  (the session's Prefect server)
from typer.testing import CliRunner

from dashcam.db import WATCH_HITS, make_engine, query_events
from dashcam.watch_lists import add_entry, correct_event, list_corrections, list_hits

pytestmark = pytest.mark.slow

NOTIFY_TIMEOUT_S = 180  # the triggers/actions services on a loaded 2-core machine


class _Hook:
    """An HTTP server on 127.0.0.1 recording each POST body (JSON) with its arrival time."""

    def __init__(self):
        self.received: list[tuple[float, dict]] = []  # (time.time() at arrival, JSON body)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.received.append((time.time(), json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/ntfy/dashcam"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout_s: float) -> list[tuple[float, dict]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.received) < n:
            time.sleep(0.2)
        return list(self.received)


def test_watchlist_hit_alerts_through_prefect_and_correction_survives_reingest(prefect_api, sqlite_url, tmp_path):  # noqa: F811
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from dashcam.cli import app
    from flows.ingest import ingest

    hook = _Hook()
    try:
        CustomWebhookNotificationBlock(
            name="dashcam",
            url=hook.url,
            json_data={"title": "{{subject}}", "message": "{{body}}"},
        ).save("test-hook", overwrite=True)
        res = CliRunner().invoke(app, ["alerts", "add", "--block", "custom-webhook/test-hook", "--name", "phone"])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(app, ["alerts", "list", "--json"])
        assert res.exit_code == 0 and [a["name"] for a in json.loads(res.stdout)] == ["phone"], res.output
        bad = CliRunner().invoke(app, ["alerts", "add", "--block", "custom-webhook/nope"])
        assert bad.exit_code == 2 and "no Prefect block custom-webhook/nope" in bad.output

        engine = make_engine(sqlite_url)
        e_exact = add_entry(engine, "XS-NB-23", label="hit and run 2026-11-02")
        e_wild = add_entry(engine, "XS*2?", watchlist="neighbourhood")
        e_misread = add_entry(engine, "X5N8Z3", label="as the witness read it")  # look-alikes only, fuzzy
        add_entry(engine, "ZZ*", label="never")

        # the labelled clip under a Viofo name with a same-stem GPX sidecar (a position for the map link)
        video = tmp_path / "2020_1218_061709_0001F.MP4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(shared_dir() / CLIP), "-c", "copy", "-f", "mp4", str(video)], check=True
        )
        shutil.copy(shared_dir() / TRACK, video.with_suffix(".gpx"))
        settings = _settings(tmp_path, sqlite_url)
        [summary] = ingest([str(video)], settings=settings)
        ingest_done = time.time()

        [row] = query_events(engine, video_id=summary.video_id)
        assert row["final_plate"] == "XSNB23" and row["lat"] is not None
        hits = list_hits(engine)
        assert {(h["entry_id"], h["event_id"]) for h in hits} == {
            (e_exact["id"], row["id"]),
            (e_wild["id"], row["id"]),
            (e_misread["id"], row["id"]),
        }
        assert 0.75 <= {h["entry_id"]: h["score"] for h in hits}[e_misread["id"]] < 1.0

        got = hook.wait(3, NOTIFY_TIMEOUT_S)
        assert len(got) >= 3, f"{len(got)} notifications within {NOTIFY_TIMEOUT_S} s"
        latencies = sorted(t - ingest_done for t, _ in got)
        stored = min(datetime.fromisoformat(h["created_at"]) for h in hits).timestamp()  # the watch-lists task
        from_hit = sorted(t - stored for t, _ in got)
        messages = [m for _, m in got]
        assert all(m["title"].startswith("dashcam: XSNB23 seen") for m in messages)
        labelled = [m for m in messages if "hit and run 2026-11-02" in m["message"]]
        assert labelled, messages
        body = labelled[0]["message"]
        assert "Plate XSNB23" in body and f"Time: {row['ts']}" in body
        assert f"https://www.openstreetmap.org/?mlat={row['lat']}&mlon={row['lon']}" in body
        assert "Crop: file://" in body and row["id"] in body
        # printed (pytest -s) for the closing note; no capsys: Prefect may set up its console
        # log handler during this test, and a capsys stream closes with the test.
        # negative "end of ingest()": the message arrived before ingest() returned (report task, teardown)
        print(
            f"\nalert latency ({len(got)} notifications): hit stored -> notification first {from_hit[0]:.2f} s, "
            f"last {from_hit[-1]:.2f} s; end of ingest() -> notification first {latencies[0]:.2f} s, "
            f"last {latencies[-1]:.2f} s"
        )

        # a correction survives re-ingesting the clip through the real flow
        corr = correct_event(engine, row["id"], "XSNB28", note="checked on the photo", by="anna")
        assert (corr["ocr_text"], corr["text"]) == ("XSNB23", "XSNB28")
        n_hits = len(list_hits(engine))
        ingest([str(video)], settings=settings)
        [again] = query_events(engine, video_id=summary.video_id)
        assert again["id"] == row["id"] and again["final_plate"] == "XSNB28"
        [c] = list_corrections(engine, video_id=summary.video_id)
        assert (c["ocr_text"], c["text"], c["by"], c["note"], c["attached"]) == (
            "XSNB23",
            "XSNB28",
            "anna",
            "checked on the photo",
            True,
        )
        with engine.connect() as conn:  # no duplicated hits from the re-ingest
            assert conn.execute(sa.select(sa.func.count()).select_from(WATCH_HITS)).scalar_one() == n_hits
        time.sleep(5)
        assert len(hook.received) == len(got)  # and no second alert for the same hits

        res = CliRunner().invoke(app, ["alerts", "remove", "phone"])
        assert res.exit_code == 0, res.output
        engine.dispose()
    finally:
        hook.server.shutdown()
