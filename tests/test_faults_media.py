"""Issue 11, points 1, 3 and 4, with real faults through the real ``ingest`` flow.

* A full archive disk (a real, small tmpfs): the run fails with a one-line error naming the file
  and the cause, no broken file under a final name, no DB row; after freeing space a rerun works.
* Resume: the analyze task is Cached on the FIRST rerun after a SIGKILL, and for the same file
  under another path; recomputed when its records are gone or an analysis setting changed.
* A partly corrupt AVI: the plates read before the damage are stored, ``videos.damage`` is set,
  the video is decoded once (no task retry).

Real parts only: real clips, models, ffmpeg, a Prefect API server on 127.0.0.1, SQLite.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import model_dir, shared_dir
from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH, temporary_settings

from dashcam.archive import verify_media
from dashcam.db import get_video, make_engine, query_events
from dashcam.settings import Settings
from dashcam.video import compute_video_id

pytestmark = pytest.mark.slow

PLATES = "data/plates-video/TrainingSet/Categorie I"
CLIP = f"{PLATES}/Video10_2.avi"  # labelled XS-NB-23, 640x480 MJPEG, 3 s at 12 fps
ROAD = "data/road-video/udacity_solidWhiteRight.mp4"  # highway 960x540: no readable plate


@pytest.fixture(scope="module")
def prefect_api(prefect_session_server, tmp_path_factory):
    """The session's one Prefect server (tests/conftest.py) and one result store for in-process
    runs and CLI subprocesses."""
    storage = tmp_path_factory.mktemp("prefect-results")
    with temporary_settings(
        {PREFECT_API_URL: prefect_session_server.api_url, PREFECT_LOCAL_STORAGE_PATH: str(storage)}
    ):
        yield prefect_session_server, storage


def _env(api, tmp_path: Path, db_url: str, **extra: str) -> dict[str, str]:
    server, storage = api
    env = server.env()
    env.update(
        {
            "DASHCAM_DATA_DIR": str(tmp_path / "data"),
            "DASHCAM_DATABASE_URL": db_url,
            "DASHCAM_MODEL_DIR": str(model_dir()),
            "DASHCAM_CAMERA_TZ": "UTC",
            "PREFECT_LOCAL_STORAGE_PATH": str(storage),
            **extra,
        }
    )
    return env


def _dashcam(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("dashcam")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=600)


def _settings(tmp_path: Path, db_url: str, **kw) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, model_dir=model_dir(), camera_tz="UTC", **kw)


def _video_row(db_url: str, video_id: str) -> dict | None:
    engine = make_engine(db_url)
    try:
        return get_video(engine, video_id)
    finally:
        engine.dispose()


def _events(db_url: str, video_id: str) -> list[dict]:
    engine = make_engine(db_url)
    try:
        return query_events(engine, video_id=video_id)
    finally:
        engine.dispose()


def _latest_analyze_run():
    """The newest task run of the ``analyze`` task on the API (state name, run_count)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="analyze-")),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    assert runs, "no analyze task run on the API"
    return runs[0]


class _Ticks:
    """Progress ticks of dashcam.pipeline.analyze in this process: a decode shows up here."""

    def __enter__(self):
        from dashcam.pipeline import add_progress_listener

        self.ticks: list = []
        self._remove = add_progress_listener(self.ticks.append)
        return self

    def __exit__(self, *exc):
        self._remove()


# --- point 1: a full archive disk ----------------------------------------------------------


def _fill(mnt: Path, leave_bytes: int) -> Path:
    st = os.statvfs(mnt)
    filler = mnt / "filler.bin"
    with open(filler, "wb") as f:
        f.write(b"\0" * (st.f_bavail * st.f_frsize - leave_bytes))
    return filler


def test_full_archive_disk_fails_clearly_and_leaves_no_broken_archive(prefect_api, small_disk, sqlite_url, tmp_path):
    """The issue's reproduction: archive dir on a small tmpfs with ~40 KB free; a clip with no
    confident plate (ffmpeg exits 0 after "Error writing trailer: No space left on device", the
    ingest exited 0 with a broken archive) and one with plates (failed on the crop copy with
    "nothing was written" while the broken MP4 stayed), each through ``dashcam ingest``."""
    archive = small_disk / "archive"
    filler = _fill(small_disk, 40 * 1024)
    # the real highway clip, first 3 s at 640x360: no confident plate, and small enough that
    # ffmpeg's packets fit and only its trailer hits the full disk: exit status 0 (measured; the
    # full-size clip fails earlier with exit status 1)
    no_plate = tmp_path / "highway_640x360.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(shared_dir() / ROAD),
            "-t",
            "3",
            "-vf",
            "scale=640:360",
            "-an",
            "-c:v",
            "libx264",
            "-crf",
            "23",
            "-preset",
            "veryfast",
            str(no_plate),
        ],
        check=True,
    )
    clips = [no_plate, shared_dir() / CLIP]
    ids = [compute_video_id(c) for c in clips]
    env = _env(prefect_api, tmp_path, sqlite_url, DASHCAM_ARCHIVE_DIR=str(archive))

    for clip, vid in zip(clips, ids, strict=True):  # each alone, as the issue ran them
        proc = _dashcam(["ingest", str(clip)], env)
        assert proc.returncode != 0, proc.stdout  # before the fix: the no-plate clip exited 0
        err = " ".join(proc.stderr.split())  # Rich wraps long lines
        assert "Traceback" not in proc.stderr
        assert "1 of 1 videos failed" in err and clip.name in err
        assert f"{vid}/video_720p.mp4" in err and "No space left on device" in err  # the file, the cause
        assert "nothing was written" not in err
        # nothing broken under a final name, no temp file, no row pointing at a broken archive
        assert not list(archive.rglob("video_*.mp4"))
        assert not [p for p in archive.rglob("*") if p.name.endswith(".tmp")]
        assert _video_row(sqlite_url, vid) is None

    filler.unlink()  # free the space: the rerun completes
    proc = _dashcam(["ingest", *map(str, clips)], env)
    assert proc.returncode == 0, proc.stderr
    for vid in ids:
        row = _video_row(sqlite_url, vid)
        assert row is not None and row["archive_path"] and row["damage"] is None
        assert Path(row["archive_path"]).parent == archive / vid
        verify_media(row["archive_path"], "video", codec="h264", duration_s=row["duration_s"], fps=row["fps"])
    [event] = _events(sqlite_url, ids[1])
    assert event["final_plate"] == "XSNB23"
    verify_media(event["crop_path"], "image")
    verify_media(event["thumb_path"], "image")
    assert _events(sqlite_url, ids[0]) == []


# --- point 3: resume does not redo the heavy stage -----------------------------------------


def test_analyze_is_cached_on_first_resume_and_for_another_path(prefect_api, sqlite_url, tmp_path):
    from flows.ingest import ingest

    clip = tmp_path / "in" / "Video10_2.avi"
    clip.parent.mkdir()
    shutil.copy(shared_dir() / CLIP, clip)
    vid = compute_video_id(clip)
    work = tmp_path / "data" / "work" / vid

    # 1. `dashcam ingest` SIGKILLed after analyze finished (its manifest is written), before the end
    exe = Path(sys.executable).with_name("dashcam")
    proc = subprocess.Popen(
        [str(exe), "ingest", str(clip)],
        env=_env(prefect_api, tmp_path, sqlite_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (work / "manifest.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (work / "manifest.json").exists(), "analyze never finished"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # it really died mid-run
    assert _video_row(sqlite_url, vid) is None  # before persist

    # 2. the FIRST rerun: analyze is Cached, nothing decoded
    settings = _settings(tmp_path, sqlite_url)
    with _Ticks() as t:
        [s1] = ingest([str(clip)], settings=settings)
    assert _latest_analyze_run().state.name == "Cached"
    assert t.ticks == []
    rows = _events(sqlite_url, vid)
    assert [r["final_plate"] for r in rows] == ["XSNB23"] and s1.video_id == vid

    # 3. the same file under another path (another folder, another name): Cached
    moved = tmp_path / "nas" / "mount" / "2024_0315_143022_0001F.avi"
    moved.parent.mkdir(parents=True)
    shutil.copy(clip, moved)
    with _Ticks() as t:
        [s2] = ingest([str(moved)], settings=settings)
    assert _latest_analyze_run().state.name == "Cached"
    assert t.ticks == [] and s2.video_id == vid

    # 4. its records deleted: recomputed (not a cache hit pointing at missing files), then cached again
    (work / "reads.jsonl").unlink()
    with _Ticks() as t:
        ingest([str(clip)], settings=settings)
    assert _latest_analyze_run().state.name == "Completed"
    assert t.ticks and (work / "reads.jsonl").is_file()
    assert [r["final_plate"] for r in _events(sqlite_url, vid)] == ["XSNB23"]
    with _Ticks() as t:
        ingest([str(clip)], settings=settings)
    assert _latest_analyze_run().state.name == "Cached" and t.ticks == []

    # 5. a setting that changes the analysis: recomputed; one that does not (archive CRF): cached
    with _Ticks() as t:
        ingest([str(clip)], settings=_settings(tmp_path, sqlite_url, detect_fps=4.0))
    assert _latest_analyze_run().state.name == "Completed" and t.ticks
    with _Ticks() as t:
        ingest([str(clip)], settings=_settings(tmp_path, sqlite_url, detect_fps=4.0, archive_crf=30))
    assert _latest_analyze_run().state.name == "Cached" and t.ticks == []


# --- point 4: a partly corrupt video keeps what was read before the damage ------------------


def _damage_middle(src: Path, dst: Path, n_bytes: int = 400_000) -> None:
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n_bytes] = random.Random(11).randbytes(n_bytes)  # about 12 of the 36 MJPEG frames
    dst.write_bytes(bytes(data))


def test_damaged_avi_keeps_plates_read_before_the_damage(prefect_api, sqlite_url, tmp_path):
    clip = tmp_path / "Video10_2.avi"
    _damage_middle(shared_dir() / CLIP, clip)
    vid = compute_video_id(clip)
    proc = _dashcam(["ingest", str(clip)], _env(prefect_api, tmp_path, sqlite_url))
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "XSNB23" in out and "is damaged" in out  # the summary says so

    row = _video_row(sqlite_url, vid)
    assert row["damage"] and row["damage"].startswith("damaged:") and "\n" not in row["damage"]
    assert "frame" in row["damage"]  # where it stopped
    [event] = _events(sqlite_url, vid)
    assert event["final_plate"] == "XSNB23"
    assert event["last_frame_idx"] < 36
    verify_media(row["archive_path"], "video", codec="h264")

    run = _latest_analyze_run()  # decoded once: the analyze task ran once and completed
    assert run.state.name == "Completed" and run.run_count == 1
