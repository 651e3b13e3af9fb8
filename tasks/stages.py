"""Prefect tasks: thin, real wrappers around :mod:`dashcam.pipeline` stages, in pipeline order.

Each task takes and returns paths and small records (:mod:`dashcam.records`), never frames, so
that any stage can run on another machine and be retried on its own. The heavy ``analyze`` stage
is the only one that decodes video; it leaves its records in the work folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CacheKeyFnPolicy

from dashcam.media.files import atomic_write_text
from dashcam.records import AnalyzeResult, Manifest, PlateEvent, VideoInfo, read_jsonl, write_jsonl
from dashcam.settings import Settings


def _dir(p: Path | None) -> Path:
    """A folder setting that ``Settings`` always fills in (``work_dir``, ``archive_dir``)."""
    if p is None:
        raise ValueError("Settings.work_dir/archive_dir is not set (Settings() fills in the defaults)")
    return Path(p)


def _file_state(context, parameters) -> str:
    """Cache-key part: the video file's identity as the OS sees it (path, size, mtime)."""
    st = os.stat(parameters["path"])
    return f"{parameters['path']}:{st.st_size}:{st.st_mtime_ns}"


#: Settings that change what ``analyze`` computes (detection rate, models, thresholds, the
#: tracker) or where its records live (``work_dir``). Everything else (database, archive, GPS,
#: voting, ``model_dir``/``device``: where a model is found and runs, not which model) does
#: not, so changing it keeps the analysis cached. A model file replaced under the same name is
#: not detected: give it a new name (or run with ``PREFECT_TASKS_REFRESH_CACHE=true``).
ANALYSIS_SETTINGS = (
    "detect_fps",
    "vehicle_model",
    "plate_model",
    "vehicle_fp32",
    "ocr_engine",
    "vehicle_conf",
    "plate_conf",
    "plate_crop_imgsz",
    "plate_min_vehicle_px",
    "plate_retry_s",
    "plate_settle_reads",
    "closeup_plates",
    "tracker",
    "work_dir",
)


def _analysis_key(context, parameters) -> str:
    """Cache-key part of ``analyze``: the content-derived ``video_id`` plus the analysis settings.

    Not the path, size or mtime: the same file under another path (a deployed run on the NAS
    mount, a copy) has the same ``video_id`` and the same analysis.
    """
    import dashcam

    s: Settings = parameters["settings"]
    # the package version stands for the pipeline code behind the task (TASK_SOURCE covers the
    # task body only)
    return f"{parameters['info'].video_id}:dashcam={dashcam.__version__}:" + ",".join(
        f"{k}={getattr(s, k)!r}" for k in ANALYSIS_SETTINGS
    )


def analysis_on_disk(info: VideoInfo, settings: Settings) -> bool:
    """True while the records a cached ``analyze`` result points to are still in the work dir."""
    d = _dir(settings.work_dir) / info.video_id
    return (d / "reads.jsonl").is_file() and (d / "tracks.jsonl").is_file()


# Heavy or input-determined stages are cached with results persisted (on deployed machines to
# the shared result storage block, see docs/deploy.md), so a resumed or re-run flow shows them
# as Cached instead of redoing them. probe: task source + inputs + the file's path/size/mtime
# (cheap; a changed file is re-probed). analyze: task source + video_id + ANALYSIS_SETTINGS.
CACHED_ON_FILE = INPUTS + TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_file_state)
CACHED_ON_ANALYSIS = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_analysis_key)


def _retry_unless_bad_video(task, task_run, state) -> bool:
    """retry_condition_fn: retry transient failures, never a video that cannot be decoded."""
    from dashcam.video import VideoError

    try:
        state.result()
    except VideoError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return True


@task(name="probe", cache_policy=CACHED_ON_FILE, persist_result=True)
def probe(path: str, settings: Settings) -> VideoInfo:
    """ffprobe the file, derive its stable ``video_id`` and recording start (UTC)."""
    from dashcam.video import probe as probe_video

    info = probe_video(Path(path), camera_tz=settings.camera_tz)
    get_run_logger().info(
        "%s: id %s, %.1f s, %dx%d @ %.2f fps %s, recording start %s (%s)",
        Path(path).name,
        info.video_id,
        info.duration_s,
        info.width,
        info.height,
        info.fps,
        info.codec,
        info.recording_start.isoformat(),
        info.recording_start_source,
    )
    return info


@task(
    name="analyze",
    cache_policy=CACHED_ON_ANALYSIS,
    persist_result=True,
    retries=1,
    retry_delay_seconds=10,
    retry_condition_fn=_retry_unless_bad_video,
)
def analyze_task(info: VideoInfo, settings: Settings) -> AnalyzeResult:
    """Decode (streaming) -> vehicles + tracking -> plates -> OCR; records land in the work dir.

    A damaged video is analysed up to the damage and completes with ``result.damage`` set: no
    retry. A video with no decodable frame fails without a retry.
    """
    from dashcam import pipeline  # here, not at import: the archive/finalize processes never need it

    result = pipeline.analyze(info, settings, _dir(settings.work_dir))
    logger = get_run_logger()
    logger.info(
        "analyzed %d of %d frames in %.1f s (%.2fx real time): %d vehicle detections, %d plate reads",
        result.frames_analyzed,
        result.frames_decoded,
        result.wall_s,
        info.duration_s / result.wall_s if result.wall_s else 0.0,
        result.n_vehicle_detections,
        result.n_plate_reads,
    )
    if result.damage:
        logger.warning("%s is %s; the reads of the frames that decoded are kept", Path(info.path).name, result.damage)
    return result


def analyze(info: VideoInfo, settings: Settings) -> AnalyzeResult:
    """Run the ``analyze`` task, reusing its cached result only while its records are on disk.

    Prefect 3 has no hook that validates a cached result, so the validity check is made here,
    outside the cache key: the key (:data:`CACHED_ON_ANALYSIS`) stays the same whether or not
    the records exist, and when they are gone the task runs with ``refresh_cache=True``, which
    recomputes and overwrites the stale record under that same key. So the first rerun after a
    crash that followed a finished analyze is Cached, and a rerun after the work dir was
    cleaned recomputes instead of pointing at missing files.
    """
    if analysis_on_disk(info, settings):
        return analyze_task(info, settings)
    return analyze_task.with_options(refresh_cache=True)(info, settings)


@task(name="vote")
def vote(info: VideoInfo, result: AnalyzeResult, settings: Settings) -> list[PlateEvent]:
    """Vote each track's plate reads into at most one confident event."""
    from dashcam import pipeline

    events = pipeline.build_events(info, result, settings)
    get_run_logger().info("%d plate events: %s", len(events), ", ".join(e.final_plate for e in events) or "-")
    return events


@task(name="gps")
def gps(
    info: VideoInfo, events: list[PlateEvent], gpx: str | None, settings: Settings, result: AnalyzeResult | None = None
) -> tuple[list[PlateEvent], str | None, list[str]]:
    """Find the video's GPS track (embedded -> sidecar -> track dir, see dashcam.gps.sources),
    interpolate WGS84 lat/lon, speed and heading at each event's ts, and write the simplified
    route (1 point/s) to ``<work_dir>/<video_id>/route.json`` for persist. Returns the events,
    the track's source label (None without GPS) and one-line warnings (a corrupt sidecar: logged
    as a warning of the run and shown in the summary). Damaged GPS never fails the video.

    With ``result`` (the analyze records) and ``plate_formats`` ``auto``, the events are first
    voted again with the plate formats of the country where each vehicle was seen
    (:func:`dashcam.pipeline.build_events` with the track): the region-aware final reading.
    """
    from dashcam import pipeline
    from dashcam.gps import align_gps, find_track, write_route

    logger = get_run_logger()
    if gpx:
        settings = settings.model_copy(update={"gpx": Path(gpx)})
    problems: list[str] = []
    found = find_track(Path(info.path), info, settings, problems=problems)
    for p in problems:
        logger.warning("%s: %s", Path(info.path).name, p)
    route_path = _dir(settings.work_dir) / info.video_id / "route.json"  # Manifest.route_path
    if found is None:
        logger.info("no GPS track for %s: positions stay empty", Path(info.path).name)
        write_route(route_path, None, None, info.recording_start, info.duration_s)
        return events, None, problems
    track, source = found
    if result is not None and tuple(settings.plate_formats) == ("auto",):
        events = pipeline.build_events(info, result, settings, track=track)
    aligned = align_gps(events, track, settings)
    points = write_route(route_path, track, source, info.recording_start, info.duration_s, step_s=1.0)
    logger.info(
        "GPS from %s (%d points, clock offset %.1f s): %d of %d events positioned, route %d points",
        source,
        len(track),
        track.clock_offset_s,
        sum(e.lat is not None for e in aligned),
        len(aligned),
        len(points),
    )
    return aligned, source, problems


@task(name="handover")
def handover(
    info: VideoInfo,
    result: AnalyzeResult,
    events: list[PlateEvent],
    gps_source: str | None = None,
    warnings: list[str] | None = None,
) -> str:
    """Write ``events.jsonl`` and then ``manifest.json`` (atomically, manifest last) to the work dir."""
    out = Path(result.work_dir)
    events_path = out / "events.jsonl"
    write_jsonl(events_path, events)
    manifest = Manifest(
        info=info, analyze=result, events_path=str(events_path), gps_source=gps_source, warnings=list(warnings or [])
    )
    path = out / "manifest.json"
    atomic_write_text(path, manifest.model_dump_json(indent=1))
    return str(path)


def _manifest(path: str) -> Manifest:
    return Manifest.load(path)


def _retry_unless_disk_full(task, task_run, state) -> bool:
    """retry_condition_fn: a full disk needs a person (retrying in seconds does not free space;
    the rerun after freeing it is idempotent), anything else may be transient."""
    import errno

    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classify the failure
        e: BaseException | None = exc
        for _ in range(10):  # the exception and what it was raised from
            if e is None:
                break
            if (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or "No space left" in str(e):
                return False
            e = e.__cause__ or e.__context__
    return True


@task(name="archive", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_retry_unless_disk_full)
def archive(manifest_path: str, settings: Settings) -> str:
    """Transcode the archive copy and copy plate crops and thumbnails next to it (atomic writes).

    Idempotent: complete archive files are kept, so a retry or rerun redoes only what is missing.
    Writes the events re-pointed at the archive copies to ``events.archived.jsonl``.
    """
    from dashcam.archive import ArchiveError, archive_video, sweep_stale_tmp

    m = _manifest(manifest_path)
    archive_dir = _dir(settings.archive_dir)
    for p in sweep_stale_tmp(archive_dir / m.info.video_id):  # left by a killed attempt (any machine)
        get_run_logger().info("removed stale temp file %s", p)
    events = read_jsonl(Path(m.events_path), PlateEvent)
    # a damaged source transcodes only as far as it decodes: at least the span analyze decoded
    min_duration = m.archive_min_duration_s
    from dashcam.blur import archive_plan  # issue 16: privacy blur (None: archive_blur="none")

    video_path, archived = archive_video(
        m.info,
        events,
        archive_dir,
        height=settings.archive_height,
        crf=settings.archive_crf,
        preset=settings.archive_preset,
        min_duration_s=min_duration,
        blur=archive_plan(m, settings),
    )
    write_jsonl(m.archived_events_path, archived)
    # issue 16: verify the finished copy (0.5 s duration, frame size, crops/thumbnails decode) and
    # hand the result to persist, which records it on the video (retention needs it)
    from dashcam.storage import verify_archive

    check_path = m.archive_check_path
    check_path.unlink(missing_ok=True)
    try:
        check = verify_archive(
            m.info, video_path, archived, height=settings.archive_height, min_duration_s=min_duration
        )
    except ArchiveError as exc:
        raise ArchiveError(
            f"archive verification of video {m.info.video_id} failed: {exc}; the raw file is kept"
        ) from exc
    atomic_write_text(check_path, json.dumps({"archive_path": str(video_path), **check}, default=str))
    get_run_logger().info(
        "archived to %s (verified: %d bytes video, %d bytes crops/thumbnails)",
        video_path,
        check["archive_bytes"],
        check["archive_images_bytes"],
    )
    return str(video_path)


@task(name="persist", retries=3, retry_delay_seconds=[2, 10, 30])
def persist(manifest_path: str, archive_path: str | None, settings: Settings) -> int:
    """Replace this video's rows in ``videos``/``vehicles`` in one transaction (idempotent)."""
    from dashcam.db import make_engine, save_video
    from dashcam.gps import read_route

    m = _manifest(manifest_path)
    events = m.read_events()
    route = read_route(m.route_path)  # written by the gps task ({}: no GPS, drops a stale route)
    # written by archive after verify_archive passed; None: stored unverified, the raw file stays
    check = m.read_archive_check(archive_path)
    engine = make_engine(settings.db_url)
    try:
        n = save_video(engine, m.info, events, archive_path, route=route, damage=m.analyze.damage, archive_check=check)
    finally:
        engine.dispose()
    get_run_logger().info("stored %d plate events for video %s", n, m.info.video_id)
    return n


@task(name="watch-lists", retries=2, retry_delay_seconds=[2, 10])
def watch_lists(manifest_path: str, settings: Settings) -> int:
    """Match this video's stored events against the watch lists, store the hits, and emit one
    Prefect event ``dashcam.watchlist.hit`` per NEW hit (automations send the alerts; see
    dashcam.watch_lists and docs/alerts.md). Returns the number of new hits."""
    from prefect.events import emit_event
    from prefect.runtime import flow_run

    from dashcam.db import make_engine
    from dashcam.watch_lists import hit_event, match_video

    m = _manifest(manifest_path)
    engine = make_engine(settings.db_url)
    try:
        hits = match_video(engine, m.info.video_id, default_min_score=settings.watch_min_score)
    finally:
        engine.dispose()
    for hit in hits:
        emit_event(
            **hit_event(
                hit, flow_run_id=flow_run.id, media_base_url=settings.media_base_url, archive_dir=settings.archive_dir
            )
        )
    if hits:
        get_run_logger().info(
            "%d watch-list hit(s) in video %s: %s",
            len(hits),
            m.info.video_id,
            ", ".join(sorted({f"{h['plate']} ({h['label'] or h['watchlist']})" for h in hits})),
        )
    return len(hits)


@task(name="report")
def report(manifest_path: str, archive_path: str | None) -> str:
    """Publish a per-video Prefect artifact (key ``video-<video_id>``): plates, counts, timings, links."""
    from prefect.artifacts import create_markdown_artifact

    from dashcam.report import video_report_markdown

    m = _manifest(manifest_path)
    markdown = video_report_markdown(m, m.read_events(), archive_path)
    return str(
        create_markdown_artifact(
            key=f"video-{m.info.video_id}", markdown=markdown, description=f"plates of {Path(m.info.path).name}"
        )
    )
