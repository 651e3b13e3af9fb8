"""The ``ingest`` flow end to end: real clips, real models, real ffmpeg, real Prefect API, real DBs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, timedelta
from pathlib import Path

import gpxpy
import pytest
from helpers import model_dir, shared_dir
from prefect_server import PrefectServer

from dashcam.db import make_engine, query_events
from dashcam.settings import Settings

pytestmark = pytest.mark.slow

PLATES = "data/plates-video/TrainingSet/Categorie I"
CLIP = f"{PLATES}/Video10_2.avi"  # labelled XS-NB-23
ROAD = "data/road-video/udacity_solidWhiteRight.mp4"  # highway, plates unreadable at 960x540
TRACK = "data/gps/tracks/gpxpy/around-visnjan-with-car.gpx"


@pytest.fixture(scope="session")
def prefect_api(prefect_session_server):
    """The session's one in-process Prefect server (tests/conftest.py)."""
    return prefect_session_server


def _settings(tmp_path: Path, db_url: str, **kw) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, model_dir=model_dir(), camera_tz="UTC", **kw)


def _rows(db_url: str, **filters) -> list[dict]:
    engine = make_engine(db_url)
    try:
        return query_events(engine, **filters)
    finally:
        engine.dispose()


def _stable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "created_at"} for r in rows]


def _ffprobe_height(path: Path) -> int:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=height",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip())


def test_ingest_reads_labelled_plate_and_reingest_is_idempotent(prefect_api, db_url, tmp_path):
    from flows.ingest import ingest

    settings = _settings(tmp_path, db_url)
    clip = shared_dir() / CLIP
    [summary] = ingest([str(clip)], settings=settings)

    rows = _rows(db_url, video_id=summary.video_id)
    assert [r["final_plate"] for r in rows] == ["XSNB23"]
    row = rows[0]
    assert row["plate_confidence"] >= settings.min_plate_confidence
    assert row["n_reads"] >= settings.min_reads
    assert row["video_path"] == str(clip)
    x1, y1, x2, y2 = row["plate_bbox"]
    assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480  # source-frame pixels of a 640x480 clip
    cx1, cy1, cx2, cy2 = row["car_bbox"]
    assert cx1 <= x1 and cy1 <= y1 and x2 <= cx2 and y2 <= cy2  # the plate lies inside its vehicle
    assert row["lat"] is None  # no GPX beside the clip

    # the archive: small copy, plate crop, thumbnail, all under ARCHIVE/<video_id>/
    archive = Path(settings.archive_dir) / summary.video_id
    assert Path(summary.archive_path).parent == archive
    assert _ffprobe_height(Path(summary.archive_path)) == 480  # never upscaled past the source
    assert Path(row["crop_path"]).is_file() and Path(row["crop_path"]).parent.parent == archive
    assert Path(row["thumb_path"]).is_file()
    assert not [p for p in archive.rglob("*") if ".tmp" in p.name]

    # re-ingest: the same rows, not more
    [again] = ingest([str(clip)], settings=settings)
    assert again.video_id == summary.video_id
    assert _stable(_rows(db_url, video_id=summary.video_id)) == _stable(rows)
    assert len(_rows(db_url)) == 1


def test_road_clip_gives_no_confident_plates(prefect_api, sqlite_url, tmp_path):
    """Highway footage at 960x540: vehicles are tracked, but no plate is readable, so nothing is stored.

    The rule that keeps it empty: an event needs >= min_reads plausible reads of one track that
    agree (dashcam.vote), and a confidence >= min_plate_confidence.
    """
    from flows.ingest import ingest

    settings = _settings(tmp_path, sqlite_url)
    [summary] = ingest([str(shared_dir() / ROAD)], settings=settings)
    assert summary.frames_analyzed > 40
    assert summary.n_events == 0
    assert _rows(sqlite_url) == []


def test_gps_aligned_from_viofo_named_clip(prefect_api, sqlite_url, tmp_path):
    """A real clip under a Viofo name whose (UTC) time falls inside a real car GPX track."""
    from flows.ingest import ingest

    name = "2020_1218_061709_0001F.MP4"
    video = tmp_path / name
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(shared_dir() / CLIP), "-c", "copy", "-f", "mp4", str(video)], check=True
    )
    shutil.copy(shared_dir() / TRACK, video.with_suffix(".gpx"))  # same-stem sidecar
    settings = _settings(tmp_path, sqlite_url)
    ingest([str(video)], settings=settings)

    [row] = _rows(sqlite_url)
    assert row["final_plate"] == "XSNB23"
    ts = row["ts"]
    from datetime import datetime

    ts = datetime.fromisoformat(ts)
    start = datetime(2020, 12, 18, 6, 17, 9, tzinfo=UTC)
    assert start <= ts <= start + timedelta(seconds=4)
    # expected: linear interpolation between the bracketing track points, computed here from gpxpy
    points = [p for t in gpxpy.parse((shared_dir() / TRACK).read_text()).tracks for s in t.segments for p in s.points]
    before = max((p for p in points if p.time <= ts), key=lambda p: p.time)
    after = min((p for p in points if p.time > ts), key=lambda p: p.time)
    f = (ts - before.time).total_seconds() / (after.time - before.time).total_seconds()
    assert row["lat"] == pytest.approx(before.latitude + f * (after.latitude - before.latitude), abs=1e-7)
    assert row["lon"] == pytest.approx(before.longitude + f * (after.longitude - before.longitude), abs=1e-7)
    assert row["speed_mps"] is not None and 0 <= row["speed_mps"] < 60


def _dashcam(args: list[str], server: PrefectServer, tmp_path: Path, db_url: str) -> subprocess.CompletedProcess:
    env = server.env()
    env.update(
        {
            "DASHCAM_DATA_DIR": str(tmp_path / "data"),
            "DASHCAM_DATABASE_URL": db_url,
            "DASHCAM_MODEL_DIR": str(model_dir()),
        }
    )
    exe = Path(sys.executable).with_name("dashcam")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("case", ["truncated", "not-a-video", "missing"])
def test_bad_input_fails_clearly_and_writes_nothing(case, prefect_api, sqlite_url, tmp_path):
    if case == "truncated":
        src = (shared_dir() / f"{PLATES}/ZVideo44.mp4").read_bytes()
        bad = tmp_path / "2024_0315_143022_0001F.MP4"
        bad.write_bytes(src[: len(src) * 6 // 10])
    elif case == "not-a-video":
        bad = tmp_path / "notes.mp4"
        bad.write_text("this is not a video\n" * 100)
    else:
        bad = tmp_path / "gone.mp4"
    proc = _dashcam(["ingest", str(bad)], prefect_api, tmp_path, sqlite_url)
    assert proc.returncode != 0
    assert bad.name in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _rows(sqlite_url) == []
    archive = tmp_path / "data" / "archive"
    assert not archive.exists() or not any(archive.iterdir())


def test_cli_ingest_then_plates_json(prefect_api, sqlite_url, tmp_path):
    clip = shared_dir() / f"{PLATES}/Video13_2.avi"  # labelled 23-GSX-6
    proc = _dashcam(["ingest", str(clip)], prefect_api, tmp_path, sqlite_url)
    assert proc.returncode == 0, proc.stderr
    assert "23GSX6" in proc.stdout  # the summary table
    proc = _dashcam(["plates", "--plate", "23gsx*", "--json"], prefect_api, tmp_path, sqlite_url)
    assert proc.returncode == 0, proc.stderr
    [event] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert event["final_plate"] == "23GSX6"
    assert set(event) >= {
        "id",
        "track_id",
        "video_id",
        "frame_idx",
        "ts",
        "final_plate",
        "plate_confidence",
        "car_bbox",
        "plate_bbox",
        "created_at",
        "lat",
        "lon",
        "crop_path",
        "n_reads",
    }


def test_archived_plate_crops_read_back_to_their_plate(prefect_api, sqlite_url, tmp_path):
    """``dashcam read`` on the plate crops that ingest archived (tight crops: the plate fills the
    image, where the plate detector alone finds nothing) returns each event's plate."""
    from dashcam.alpr import read_image
    from flows.ingest import ingest

    settings = _settings(tmp_path, sqlite_url)
    clips = [shared_dir() / CLIP, shared_dir() / "data/plates-video/TrainingSet/Categorie III/Video100_2.avi"]
    ingest([str(c) for c in clips], settings=settings)
    rows = _rows(sqlite_url)
    assert len(rows) >= 3  # XSNB23 and the two plates of Video100_2
    for row in rows:
        crop = Path(row["crop_path"])
        assert crop.is_file() and crop.parent.parent.parent == Path(settings.archive_dir)
        assert [d["text"] for d in read_image(crop, settings)] == [row["final_plate"]], crop.name
    # and through the CLI, as a user would
    env = {**os.environ, "DASHCAM_MODEL_DIR": str(model_dir()), "DASHCAM_CAMERA_TZ": "UTC"}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dashcam"), "read", str(rows[0]["crop_path"])],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0 and rows[0]["final_plate"] in out.stdout, out.stderr[-500:]
