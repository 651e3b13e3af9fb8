"""Prefect tasks: thin, real wrappers around :mod:`dashcam.pipeline` stages, in pipeline order.

Each task takes and returns paths and small records (:mod:`dashcam.records`), never frames, so
that any stage can run on another machine and be retried on its own. The heavy ``analyze`` stage
is the only one that decodes video; it leaves its records in the work folder.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from dashcam import pipeline
from dashcam.records import AnalyzeResult, PlateEvent, VideoInfo
from dashcam.settings import Settings


@task(name="probe", retries=0)
def probe(path: str, settings: Settings) -> VideoInfo:
    """ffprobe the file, derive its stable ``video_id`` and recording start (UTC)."""
    from dashcam.video import probe as probe_video

    info = probe_video(Path(path), camera_tz=settings.camera_tz)
    get_run_logger().info(
        "%s: id %s, %.1f s, %dx%d @ %.2f fps %s, recording start %s (%s)",
        Path(path).name, info.video_id, info.duration_s, info.width, info.height, info.fps,
        info.codec, info.recording_start.isoformat(), info.recording_start_source,
    )
    return info


@task(name="analyze")
def analyze(info: VideoInfo, settings: Settings) -> AnalyzeResult:
    """Decode (streaming) -> vehicles + tracking -> plates -> OCR; records land in the work dir."""
    result = pipeline.analyze(info, settings, Path(settings.work_dir))
    get_run_logger().info(
        "analyzed %d of %d frames in %.1f s (%.2fx real time): %d vehicle detections, %d plates, %d OCR calls",
        result.frames_analyzed, result.frames_decoded, result.wall_s,
        info.duration_s / result.wall_s if result.wall_s else 0.0,
        result.n_vehicle_detections, result.n_plate_detections, result.n_ocr_calls,
    )
    return result


@task(name="vote")
def vote(info: VideoInfo, result: AnalyzeResult, settings: Settings) -> list[PlateEvent]:
    """Vote each track's plate reads into at most one confident event."""
    events = pipeline.build_events(info, result, settings)
    get_run_logger().info("%d plate events: %s", len(events), ", ".join(e.final_plate for e in events) or "-")
    return events


@task(name="gps")
def gps(info: VideoInfo, events: list[PlateEvent], gpx: str | None, settings: Settings) -> list[PlateEvent]:
    """Interpolate WGS84 lat/lon, speed and heading at each event's ts from a GPX track."""
    from dashcam.gps import find_gpx

    path = find_gpx(Path(info.path), Path(gpx) if gpx else None)
    logger = get_run_logger()
    if path is None:
        logger.info("no GPX track for %s: positions stay empty", Path(info.path).name)
        return events
    aligned = pipeline.align_gps(events, path, settings)
    logger.info("GPS from %s: %d of %d events positioned", path.name, sum(e.lat is not None for e in aligned), len(aligned))
    return aligned


@task(name="archive", retries=2, retry_delay_seconds=[5, 30])
def archive(info: VideoInfo, events: list[PlateEvent], settings: Settings) -> tuple[str, list[PlateEvent]]:
    """Transcode the archive copy and copy plate crops and thumbnails next to it (atomic writes)."""
    from dashcam.archive import archive_video

    video_path, archived = archive_video(
        info, events, Path(settings.archive_dir), height=settings.archive_height,
        crf=settings.archive_crf, preset=settings.archive_preset,
    )
    get_run_logger().info("archived to %s", video_path)
    return str(video_path), archived


@task(name="persist", retries=3, retry_delay_seconds=[2, 10, 30])
def persist(info: VideoInfo, events: list[PlateEvent], archive_path: str | None, settings: Settings) -> int:
    """Replace this video's rows in ``videos``/``vehicles`` in one transaction (idempotent)."""
    from dashcam.db import make_engine, save_video

    engine = make_engine(settings.database_url)
    try:
        n = save_video(engine, info, events, archive_path)
    finally:
        engine.dispose()
    get_run_logger().info("stored %d plate events for video %s", n, info.video_id)
    return n
