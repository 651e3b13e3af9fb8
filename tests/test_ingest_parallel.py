"""``ingest`` with several videos at once (issue 17): ``max_parallel_videos``, the per-thread
model instances, and the guarantees of the one-at-a-time flow kept (a failing video does not stop
the others; the run fails with ``IngestError`` naming it; the rows are those of the clips)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers import model_dir, shared_dir
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

from dashcam.db import make_engine, query_events
from dashcam.models import load_yolo
from dashcam.settings import Settings, SettingsError, default_parallel_videos
from flows.ingest import IngestError, ingest

PLATES = "data/plates-video/TrainingSet/Categorie I"


@pytest.fixture(scope="session")
def prefect_api(prefect_session_server):
    return prefect_session_server


def test_default_parallel_videos_from_the_machine():
    assert default_parallel_videos(cores=1, gpu=False) == 1
    assert default_parallel_videos(cores=2, gpu=False) == 1
    assert default_parallel_videos(cores=4, gpu=False) == 2
    assert default_parallel_videos(cores=16, gpu=False) == 4
    assert default_parallel_videos(cores=2, gpu=True) == 2
    assert default_parallel_videos(cores=16, gpu=True) == 4
    assert 1 <= default_parallel_videos() <= 4  # this machine, as looked up
    assert Settings(max_parallel_videos=3).max_parallel_videos == 3
    with pytest.raises(SettingsError, match="max_parallel_videos"):
        Settings(max_parallel_videos=0)


def test_each_thread_gets_its_own_model_instance():
    """ultralytics model objects hold a predictor with mutable state: one instance per thread,
    the same one again in the same thread."""
    path = str(model_dir() / "yolov8n-coco-int8-320.onnx")
    mine = load_yolo(path)
    assert load_yolo(path) is mine
    other: list[object] = []
    t = threading.Thread(target=lambda: other.extend([load_yolo(path), load_yolo(path)]))
    t.start()
    t.join()
    assert other[0] is other[1]
    assert other[0] is not mine


def test_parallel_ingest_fails_only_the_bad_video(prefect_api, sqlite_url, tmp_path):
    good = [shared_dir() / f"{PLATES}/Video10_2.avi", shared_dir() / f"{PLATES}/Video13_2.avi"]
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 100)
    videos = [str(good[0]), str(bad), str(good[1])]
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        model_dir=model_dir(),
        camera_tz="UTC",
        max_parallel_videos=2,
    )
    with pytest.raises(IngestError) as info:
        ingest(videos, settings=settings)
    err = info.value
    assert len(err.failures) == 1 and err.failures[0].startswith(f"{bad}: ")
    assert "1 of 3 videos failed" in str(err)
    assert [s.path for s in err.summaries] == [str(good[0]), str(good[1])]  # the order given
    assert {p for s in err.summaries for p, _ in s.plates} >= {"XSNB23", "23GSX6"}
    engine = make_engine(sqlite_url)
    try:
        plates = {r["final_plate"] for r in query_events(engine)}
    finally:
        engine.dispose()
    assert {"XSNB23", "23GSX6"} <= plates

    # they ran at once: the task runs `video` of the two good clips overlap in time
    async def video_runs():
        async with get_client() as client:
            return await client.read_task_runs(
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[str(v) for v in good]))
            )

    from prefect.utilities.asyncutils import run_coro_as_sync

    runs = [r for r in run_coro_as_sync(video_runs()) or [] if r.state_name == "Completed"]
    runs = sorted(runs, key=lambda r: r.start_time)[-2:]  # this test's (the session server is shared)
    assert len(runs) == 2 and {Path(r.name).name for r in runs} == {g.name for g in good}
    first, second = runs
    assert second.start_time < first.end_time, "the two videos did not run concurrently"
