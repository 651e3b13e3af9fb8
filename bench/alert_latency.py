"""Benchmark: from the end of a video's ingest to the watch-list notification arriving (issue 15).

    PYTHONPATH=$PWD DASHCAM_SHARED_DIR=/work/shared .venv/bin/python bench/alert_latency.py [--runs 3]

What it does:

1. a real ``prefect server start`` on 127.0.0.1 (temporary PREFECT_HOME, SQLite, its default
   services: triggers and actions included; tests/prefect_server.py);
2. an HTTP server on 127.0.0.1 here standing in for ntfy, a ``CustomWebhookNotificationBlock``
   pointed at it, and the automation made by the real CLI, ``dashcam alerts add --block
   custom-webhook/bench`` (a subprocess);
3. a fresh SQLite results DB with one watch-list entry, ``XS-NB-23``;
4. ``--runs`` times: a new copy of the labelled clip Video10_2 (a distinct ``-metadata comment``
   makes a distinct file, so a new video id and new hits) as a Viofo front file with the GPX
   track, through the real ``ingest`` flow in this process; then it waits for the notification.

Times, all on this machine's clock (``time.time()``): *persisted* = the video row's
``ingested_at`` (the finalize task's commit: the end of the video's ingest as far as the data
goes), *hit* = the ``watch_hits.created_at`` (the watch-lists task, right after), *returned* =
``ingest()`` returned in this process (after the report task and flow teardown), *arrived* =
the webhook POST reached the HTTP server. The table prints arrived minus each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import model_dir, shared_dir  # noqa: E402
from prefect_server import PrefectServer  # noqa: E402

CLIP = "data/plates-video/TrainingSet/Categorie I/Video10_2.avi"  # labelled XS-NB-23
TRACK = "data/gps/tracks/gpxpy/around-visnjan-with-car.gpx"
BIN = Path(sys.executable).parent


class Hook:
    """HTTP server on 127.0.0.1 recording (arrival time, JSON body) of each POST."""

    def __init__(self):
        self.received: list[tuple[float, dict]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.received.append((time.time(), json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/ntfy/dashcam"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.received) < n:
            time.sleep(0.05)
        return len(self.received) >= n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout-s", type=float, default=180, help="wait this long for each notification")
    args = ap.parse_args()

    import sqlalchemy as sa
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from pydantic import SecretStr

    from dashcam.db import VIDEOS, WATCH_HITS, make_engine
    from dashcam.settings import Settings
    from dashcam.watch_lists import add_entry
    from flows.ingest import ingest

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="alert-latency-"))
    server = PrefectServer(work / "prefect-home", ui=False).start()
    hook = Hook()
    rows = []
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            CustomWebhookNotificationBlock(
                name="dashcam",
                url=hook.url,
                headers=None,
                cookies=None,
                json_data={"title": "{{subject}}", "message": "{{body}}"},
            ).save("bench", overwrite=True)
            subprocess.run(
                [str(BIN / "dashcam"), "alerts", "add", "--block", "custom-webhook/bench", "--name", "bench"],
                env=server.env(),
                check=True,
                capture_output=True,
                text=True,
            )
            db_url = f"sqlite:///{work / 'dashcam.db'}"
            engine = make_engine(db_url)
            add_entry(engine, "XS-NB-23", label="bench")
            settings = Settings(
                data_dir=work / "data", database_url=SecretStr(db_url), model_dir=model_dir(), camera_tz="UTC"
            )
            for i in range(args.runs):
                cam = work / f"card{i}"
                cam.mkdir()
                video = cam / "2020_1218_061709_0001F.MP4"
                subprocess.run(
                    [
                        "ffmpeg",
                        "-v",
                        "error",
                        "-i",
                        str(shared_dir() / CLIP),
                        "-c",
                        "copy",
                        "-metadata",
                        f"comment=alert-latency run {i}",
                        "-f",
                        "mp4",
                        str(video),
                    ],
                    check=True,
                )
                (cam / video.with_suffix(".gpx").name).write_bytes((shared_dir() / TRACK).read_bytes())
                n_before = len(hook.received)
                t0 = time.time()
                [summary] = ingest([str(video)], settings=settings)
                returned = time.time()
                ok = hook.wait(n_before + 1, args.timeout_s)
                if not ok:
                    console.print(f"run {i}: no notification within {args.timeout_s:.0f} s")
                    continue
                arrived = hook.received[n_before][0]
                with engine.connect() as conn:
                    persisted = conn.execute(
                        sa.select(VIDEOS.c.ingested_at).where(VIDEOS.c.id == summary.video_id)
                    ).scalar_one()
                    hit = conn.execute(
                        sa.select(sa.func.min(WATCH_HITS.c.created_at)).where(WATCH_HITS.c.video_id == summary.video_id)
                    ).scalar_one()
                persisted_t = (
                    datetime.fromisoformat(persisted) if isinstance(persisted, str) else persisted
                ).timestamp()
                hit_t = (datetime.fromisoformat(hit) if isinstance(hit, str) else hit).timestamp()
                rows.append(
                    {
                        "run": i,
                        "ingest_s": returned - t0,
                        "persisted": arrived - persisted_t,
                        "hit": arrived - hit_t,
                        "returned": arrived - returned,
                    }
                )
            engine.dispose()
    finally:
        hook.server.shutdown()
        server.stop()

    t = Table(title=f"watch-list alert latency ({len(rows)} of {args.runs} runs; seconds)")
    for col in (
        "run",
        "ingest() took",
        "persisted -> arrived",
        "hit stored -> arrived",
        "ingest() returned -> arrived",
    ):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(
            str(r["run"]), f"{r['ingest_s']:.1f}", f"{r['persisted']:.2f}", f"{r['hit']:.2f}", f"{r['returned']:.2f}"
        )
    if len(rows) > 1:
        t.add_row(
            "median",
            f"{statistics.median(r['ingest_s'] for r in rows):.1f}",
            *(f"{statistics.median(r[k] for r in rows):.2f}" for k in ("persisted", "hit", "returned")),
        )
    console.print(t)
    console.print(
        "negative 'returned': the notification arrived before ingest() returned (its report task and "
        "flow teardown run after the watch-lists task)."
    )


if __name__ == "__main__":
    main()
