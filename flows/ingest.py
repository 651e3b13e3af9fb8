"""The ``ingest`` flow: one dashcam video in, plate events + archive copy out.

Stages in order (each a task in :mod:`tasks.stages`)::

    probe -> analyze -> vote -> gps -> archive -> persist

``ingest`` takes one or more video paths and runs :func:`ingest_video` as a subflow per file, so
the Prefect UI shows one run per video, named after the file. The same flows serve
``dashcam ingest`` (in-process, Prefect's ephemeral API unless ``PREFECT_API_URL`` is set) and
deployed runs.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel

from dashcam.settings import Settings
from tasks import stages


class VideoSummary(BaseModel):
    """What :func:`ingest_video` returns: small and JSON-ready."""

    path: str
    video_id: str
    duration_s: float
    frames_analyzed: int
    wall_s: float
    n_events: int
    plates: list[tuple[str, float]]  # (final_plate, plate_confidence)
    archive_path: str | None


def _video_run_name() -> str:
    return Path(flow_run.parameters["path"]).name


@flow(name="ingest-video", flow_run_name=_video_run_name, log_prints=True)
def ingest_video(path: str, gpx: str | None = None, settings: Settings | None = None) -> VideoSummary:
    """Process one video through every stage. Raises the failing stage's error."""
    settings = settings or Settings()
    info = stages.probe(path, settings)
    result = stages.analyze(info, settings)
    events = stages.vote(info, result, settings)
    events = stages.gps(info, events, gpx, settings)
    archive_path, events = stages.archive(info, events, settings)
    n = stages.persist(info, events, archive_path, settings)
    return VideoSummary(
        path=path, video_id=info.video_id, duration_s=info.duration_s, frames_analyzed=result.frames_analyzed,
        wall_s=result.wall_s, n_events=n, plates=[(e.final_plate, e.plate_confidence) for e in events],
        archive_path=archive_path,
    )


@flow(name="ingest", log_prints=True)
def ingest(videos: list[str], gpx: str | None = None, settings: Settings | None = None) -> list[VideoSummary]:
    """Ingest each video; a failing video does not stop the others, but fails the run.

    Args:
        videos: paths of dashcam video files (MP4/MOV/AVI/TS) readable by ffmpeg.
        gpx: a GPX track for all of them; default per video: a same-stem ``.gpx`` beside it.
        settings: run settings; default :class:`Settings` from the environment.

    Raises:
        RuntimeError: listing every video that failed and why, after all videos were tried.
    """
    settings = settings or Settings()
    logger = get_run_logger()
    summaries, failures = [], []
    for path in videos:
        state = ingest_video(path, gpx=gpx, settings=settings, return_state=True)
        if state.is_completed():
            summaries.append(state.result())
        else:
            try:
                state.result()
            except Exception as exc:  # noqa: BLE001 - reported below, the run fails
                failures.append(f"{path}: {exc}")
                logger.error("failed: %s: %s", path, exc)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(videos)} videos failed:\n" + "\n".join(failures))
    return summaries
