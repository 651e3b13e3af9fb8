"""The ``ingest`` flow: dashcam videos in, plate events + archive copies out.

Per video, three subflows hand each other paths (never frames)::

    analyze-video   (pool gpu)    probe -> analyze -> vote -> gps   => <heavy_output>/<video_id>/manifest.json
    archive-video   (pool server) transcode + copy crops/thumbnails => <archive>/<video_id>/...
    finalize-video  (pool server) persist rows (one transaction)    => videos, vehicles
                                  watch lists: hits + Prefect events => watch_hits, dashcam.watchlist.hit

``ingest`` runs ``ingest-video`` once per file, up to ``max_parallel_videos`` at once (then from a
task ``video`` per file on a ThreadPoolTaskRunner). The same flow definitions serve both ways of
running:

* ``dashcam ingest`` (in-process): the subflows are called directly in this process.
* deployed (``prefect deployment run ingest/ingest``): the parent runs on pool ``server`` and
  starts each stage's deployment with ``run_deployment`` (linked as subflow runs in the UI),
  with an idempotency key per (parent ``ingest`` run, video, stage, attempt). A rerun of a crashed parent
  therefore re-attaches to the children it had started instead of starting them again, and a
  child that failed or crashed is started again up to ``CHILD_ATTEMPTS`` times. See
  docs/deploy.md for retry/resume.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.runtime import deployment, flow_run
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from dashcam.records import Manifest, PlateEvent, read_jsonl
from dashcam.settings import Settings, default_parallel_videos
from tasks import stages

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun, State
    from prefect.futures import PrefectFuture

CHILD_ATTEMPTS = 3  # runs of one stage's deployment per video before the video fails
MAX_PARENT_RUNS = 3  # a crashed parent is rescheduled by an automation at most this often
DEPLOYMENTS = {  # stage -> deployment name (flow name/deployment name), see deployments/prefect.yaml
    "analyze": "analyze-video/gpu",
    "archive": "archive-video/server",
    "finalize": "finalize-video/server",
}


class VideoSummary(BaseModel):
    """What :func:`ingest_video` returns: small and JSON-ready."""

    path: str
    video_id: str
    duration_s: float
    frames_analyzed: int
    wall_s: float
    n_events: int
    warnings: list[str] = []  # one line each: problems that did not fail the video (corrupt GPS sidecar)
    plates: list[tuple[str, float]]  # (final_plate, plate_confidence)
    archive_path: str | None
    damage: str | None = None  # the video decoded only in part (AnalyzeResult.damage)


def _name_from_path() -> str:
    params = flow_run.parameters
    return Path(params.get("path") or Manifest.model_validate_json(Path(params["manifest"]).read_text()).info.path).name


def _settings(settings: Settings | None) -> Settings:
    from blocks.config import run_settings

    return run_settings(settings)


@flow(name="analyze-video", flow_run_name=_name_from_path)
def analyze_video(path: str, gpx: str | None = None, settings: Settings | None = None) -> str:
    """Heavy stage (pool ``gpu``): probe, analyze, vote, GPS; returns the manifest path."""
    settings = _settings(settings)
    info = stages.probe(path, settings)
    result = stages.analyze(info, settings)
    events = stages.vote(info, result, settings)
    events, gps_source, warnings = stages.gps(info, events, gpx, settings, result)  # region-aware re-vote
    return stages.handover(info, result, events, gps_source, warnings)


@flow(name="archive-video", flow_run_name=_name_from_path)
def archive_video(manifest: str, settings: Settings | None = None) -> str:
    """Server stage: the archive copy, plate crops and thumbnails; returns the archive video path."""
    return stages.archive(manifest, _settings(settings))


@flow(name="finalize-video", flow_run_name=_name_from_path)
def finalize_video(manifest: str, archive_path: str | None = None, settings: Settings | None = None) -> int:
    """Server stage: replace the video's rows in the results DB, match them against the watch lists
    (new hits emit ``dashcam.watchlist.hit`` events); returns the number of events."""
    settings = _settings(settings)
    n = stages.persist(manifest, archive_path, settings)
    stages.watch_lists(manifest, settings)  # hits + one Prefect event per new hit (docs/alerts.md)
    stages.report(manifest, archive_path)
    return n


def _run_stage(stage: str, fn, params: dict, settings: Settings | None, video_key: str):
    """Run one stage: in-process, or through its deployment when this run is deployed."""
    if not deployment.id:
        return fn(**params, settings=settings)
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    for attempt in range(1, CHILD_ATTEMPTS + 1):
        child = cast(
            "FlowRun",
            run_deployment(  # a sync flow: async_dispatch runs the sync variant, a FlowRun
                DEPLOYMENTS[stage],
                parameters=params,
                timeout=None,
                poll_interval=2,
                # the root (the deployed ``ingest`` run, not this ``ingest-video`` subflow, which gets a
                # new id when a crashed parent is rerun): a rerun re-attaches to the children it started
                idempotency_key=f"{flow_run.root_flow_run_id}:{video_key}:{stage}:{attempt}",
            ),
        )
        if child.state is not None and child.state.is_completed():
            return child.state.result()
        logger.warning(
            "%s of %s ended %s (attempt %d of %d): %s",
            stage,
            video_key,
            child.state.name if child.state else "without state",
            attempt,
            CHILD_ATTEMPTS,
            (child.state.message if child.state else None) or "no message",
        )
    raise RuntimeError(f"{stage} of {video_key} did not complete after {CHILD_ATTEMPTS} attempts")


@flow(name="ingest-video", flow_run_name=_name_from_path)
def ingest_video(path: str, gpx: str | None = None, settings: Settings | None = None) -> VideoSummary:
    """Process one video through every stage. Raises the failing stage's error."""
    manifest_path = _run_stage("analyze", analyze_video, {"path": path, "gpx": gpx}, settings, path)
    archive_path = _run_stage("archive", archive_video, {"manifest": manifest_path}, settings, path)
    n = _run_stage(
        "finalize", finalize_video, {"manifest": manifest_path, "archive_path": archive_path}, settings, path
    )
    m = Manifest.model_validate_json(Path(manifest_path).read_text())
    events: list[PlateEvent] = read_jsonl(Path(m.events_path), PlateEvent)
    return VideoSummary(
        path=path,
        video_id=m.info.video_id,
        duration_s=m.info.duration_s,
        frames_analyzed=m.analyze.frames_analyzed,
        warnings=m.warnings,
        wall_s=m.analyze.wall_s,
        n_events=n,
        plates=[(e.final_plate, e.plate_confidence) for e in events],
        archive_path=archive_path,
        damage=m.analyze.damage,
    )


@task(name="video", cache_policy=NO_CACHE, task_run_name="{path}")
def video_task(path: str, gpx: str | None, settings: Settings | None) -> VideoSummary:
    """One video of a parallel ``ingest`` run, in a thread of its ThreadPoolTaskRunner: the
    ``ingest-video`` subflow (in-process stages, or the stage deployments when deployed). Not
    cached: a rerun of a crashed parent re-attaches to its children through their idempotency keys."""
    return ingest_video(path, gpx=gpx, settings=settings)


def _run_videos(videos: list[str], gpx: str | None, settings: Settings | None, run_settings: Settings) -> list[State]:
    """The final state of each video's run, in the order of VIDEOS; up to ``max_parallel_videos`` at once.

    One at a time: ``ingest-video`` subflows called in this thread (the models cached in it).
    Several: the task ``video`` per file on a ``ThreadPoolTaskRunner(max_workers=n)``; each worker
    thread loads its own models (ultralytics model objects are not thread-safe,
    :func:`dashcam.models.load_yolo`) and keeps them for the next video it takes.
    """
    n = min(run_settings.max_parallel_videos or default_parallel_videos(), len(videos))
    if n <= 1:
        return [ingest_video(path, gpx=gpx, settings=settings, return_state=True) for path in videos]
    get_run_logger().info("%d videos, %d at a time", len(videos), n)
    runner: ThreadPoolTaskRunner[VideoSummary] = ThreadPoolTaskRunner(max_workers=n)
    with runner:
        futures: list[PrefectFuture[VideoSummary]] = [
            runner.submit(video_task, {"path": p, "gpx": gpx, "settings": settings}) for p in videos
        ]
        wait(futures)
        return [f.state for f in futures]


class IngestError(RuntimeError):
    """Some videos of an ``ingest`` run failed. ``summaries``: the videos that succeeded;
    ``failures``: one ``"<path>: <why>"`` line per failed video."""

    def __init__(self, message: str, summaries: list[VideoSummary] | None = None, failures: list[str] | None = None):
        super().__init__(message)
        self.summaries = list(summaries or [])
        self.failures = list(failures or [])

    def __reduce__(self):  # keep the attributes through Prefect's result serialisation
        return (type(self), (str(self), self.summaries, self.failures))


def _ingest_run_name() -> str:
    videos = flow_run.parameters.get("videos") or []
    first = Path(videos[0]).name if videos else "no videos"
    return first if len(videos) <= 1 else f"{first} +{len(videos) - 1}"


@flow(name="ingest", flow_run_name=_ingest_run_name, log_prints=True)
def ingest(videos: list[str], gpx: str | None = None, settings: Settings | None = None) -> list[VideoSummary]:
    """Ingest each video; a failing video does not stop the others, but fails the run.

    Args:
        videos: paths of dashcam video files (MP4/MOV/AVI/TS) readable by ffmpeg; on deployed
            runs, paths on the NAS as every machine mounts it.
        gpx: a GPX track for all of them; default per video: a same-stem ``.gpx`` beside it.
        settings: run settings; default :class:`Settings` from the environment, or from the
            Prefect blocks on deployed runs (blocks/config.py).

    Before any video is analysed, the results database is checked (connect + migrate, seconds
    at most: :func:`dashcam.db.check_database`) and an explicit ``gpx`` is read, so an
    unreachable database or a bad track fails the run at once instead of after the analysis.

    Raises:
        DatabaseError: the results database cannot be reached or migrated (nothing analysed).
        GpsError: ``gpx`` is missing or unreadable (nothing analysed).
        IngestError: listing every video that failed and why, after all videos were tried
            (``.summaries`` holds the videos that succeeded).
        RuntimeError: when a crashed run has been rescheduled more than ``MAX_PARENT_RUNS`` times.
    """
    from dashcam.db import check_database
    from dashcam.gps import load_track_file

    logger = get_run_logger()
    if deployment.id and (flow_run.run_count or 1) > MAX_PARENT_RUNS:
        raise RuntimeError(
            f"this run has started {flow_run.run_count} times (crashes?): giving up after {MAX_PARENT_RUNS}"
        )
    run_settings = _settings(settings)
    check_database(run_settings.db_url)
    if gpx:  # readable with timed points? (the date hint only stands in for date-less NMEA here)
        load_track_file(gpx, run_settings.gps_max_gap_s, date_hint=date.today())
    summaries, failures = [], []
    if deployment.id:
        states = _run_videos(videos, gpx, settings, run_settings)
    else:
        # in-process, the subflows need no heartbeats (a dead `dashcam ingest` is found by its owner
        # tag, dashcam.prefect_local.crash_orphaned_runs) and each run's heartbeat thread costs up to
        # 1 s at its end (Prefect joins it; it sleeps in 1 s steps): 4 subflow runs per video
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            states = _run_videos(videos, gpx, settings, run_settings)
    for path, state in zip(videos, states, strict=True):
        if state.is_completed():
            summaries.append(state.result())
            for w in summaries[-1].warnings:
                logger.warning("%s: %s", Path(path).name, w)
        else:
            try:
                state.result()
            except Exception as exc:  # noqa: BLE001 - reported below, the run fails
                failures.append(f"{path}: {exc}")
                logger.error("failed: %s: %s", path, exc)
    if failures:
        raise IngestError(
            f"{len(failures)} of {len(videos)} videos failed:\n" + "\n".join(failures), summaries, failures
        )
    return summaries
