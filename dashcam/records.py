"""Small records that stages hand each other (never frames).

All bboxes are ``(x1, y1, x2, y2)`` floats in **source-frame pixels** (the decoded video's full
resolution, origin top-left). Times: ``pts_s`` is seconds from the start of the video stream;
``ts`` is a timezone-aware UTC ``datetime``. Lat/lon are WGS84 degrees, speed m/s, heading degrees
clockwise from true north.

Records are pydantic models so that they serialise to JSON lines on the heavy-output path and
travel through Prefect as small parameters/results.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field

from dashcam.media.files import atomic_write_text

BBox = tuple[float, float, float, float]
M = TypeVar("M", bound=BaseModel)


class VideoInfo(BaseModel):
    """What ffprobe and the file name say about one video."""

    path: str
    video_id: str  # stable, content-derived (see dashcam.video.compute_video_id)
    size_bytes: int
    duration_s: float
    fps: float
    frame_count: int  # estimated: duration_s * fps when the container does not say
    width: int
    height: int
    codec: str
    creation_time: datetime | None = None  # container tag, UTC
    recording_start: datetime  # UTC; see dashcam.video.recording_start
    recording_start_source: str  # "filename" | "creation_time" | "mtime"
    camera: str | None = None  # "F" front, "R" rear (Viofo naming), else None
    # pts (s) of the video stream's first frame on ffmpeg's output timeline (stream start_time -
    # container start_time): frame_idx = round((pts - start_s) * fps)
    start_s: float = 0.0


class PlateRead(BaseModel):
    """One OCR reading of one plate of one tracked vehicle in one decoded frame."""

    frame_idx: int  # index of the frame in the source stream (0-based)
    pts_s: float
    track_id: int
    car_bbox: BBox
    car_conf: float
    plate_bbox: BBox
    plate_conf: float  # plate detector confidence
    text: str  # normalised: [A-Z0-9] only
    raw_text: str  # what the OCR engine returned
    text_conf: float  # OCR confidence in [0, 1]
    plate_area: float  # plate bbox area in source pixels (crop quality signal)
    sharpness: float  # variance of Laplacian of the grey plate crop
    crop_path: str | None = None  # full-resolution plate crop written by analyze (best per track)
    # plate recogniser only: per-slot probabilities, [{char: p}] with the pad as "" (dashcam.platerec)
    slot_probs: list[dict[str, float]] | None = None


class TrackSummary(BaseModel):
    """Per-track facts from analyze, kept even for tracks without any plate read."""

    track_id: int
    first_frame_idx: int
    last_frame_idx: int
    n_frames: int  # frames in which the vehicle was detected (at the detection rate)
    best_car_bbox: BBox
    best_frame_idx: int
    thumb_path: str | None = None  # best-frame vehicle thumbnail written by analyze


class TrackBox(BaseModel):
    """Where one tracked object was in one analysed frame (issue 16: what the privacy blur follows).

    ``car_bbox``: the tracked box (a vehicle, or for a close-up plate track, the plate itself);
    ``plate_bbox``: the plate box read in this frame (a :class:`PlateRead`'s), or for a close-up
    plate track the tracked box; None when no plate was read in this frame. Source-frame pixels."""

    frame_idx: int
    track_id: int
    car_bbox: BBox
    plate_bbox: BBox | None = None


class PlateAlternative(BaseModel):
    """One distinct reading of a track other than its voted plate (for misread-tolerant search).

    ``text``: normalised ``[A-Z0-9]``; ``count``: plausible per-frame reads with exactly this
    text; ``mean_conf``: their mean OCR ``text_conf`` in [0, 1]. See
    :func:`dashcam.vote.track_alternatives`."""

    text: str
    count: int
    mean_conf: float


class PlateEvent(BaseModel):
    """One vehicle that passed with a confident plate: the unit stored in table ``vehicles``."""

    video_id: str
    track_id: int
    frame_idx: int  # frame of the best read
    pts_s: float
    ts: datetime
    final_plate: str
    plate_confidence: float  # in [0, 1]; see dashcam.vote
    car_bbox: BBox
    plate_bbox: BBox
    n_reads: int
    first_frame_idx: int
    last_frame_idx: int
    crop_path: str | None = None  # set by analyze (work dir), re-pointed by archive
    thumb_path: str | None = None
    lat: float | None = None
    lon: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    # distinct other readings of the track, most reads first (empty in manifests written before)
    alternatives: list[PlateAlternative] = Field(default_factory=list)


class AnalyzeResult(BaseModel):
    """What the heavy stage leaves on disk for one video (paths only)."""

    video_id: str
    work_dir: str
    reads_path: str  # JSON lines of PlateRead
    tracks_path: str  # JSON lines of TrackSummary
    frames_decoded: int
    frames_analyzed: int
    n_vehicle_detections: int
    n_plate_reads: int  # plates detected inside tracked vehicles that OCR read as non-empty text
    n_plate_tries: int = 0  # vehicle crops sent to the plate detector (PlateReadScheduler.due)
    wall_s: float
    # None: decoded cleanly. Else one line: where decoding failed and why (dashcam.video
    # DecodeStats.damage); the reads/tracks of every frame that did decode are kept
    damage: str | None = None
    # JSON lines of TrackBox, every track in every analysed frame (issue 16, dashcam.blur); None in
    # results written before
    boxes_path: str | None = None
    # what decoded the frames, e.g. "ffmpeg-pipe hwaccel=none threads=auto" (issue 17,
    # dashcam.media.decode DecodeStats.decoder); None in results written before
    decoder: str | None = None
    # seconds the frame loop waited for decoded frames (DecodeStats.wait_s): how much of wall_s the
    # decoder was the limit; None in results written before
    decode_wait_s: float | None = None


def write_jsonl(path: Path, records: Sequence[BaseModel]) -> None:
    """Write records as JSON lines (one ``model_dump_json()`` per line, UTF-8) atomically
    (:func:`dashcam.media.files.atomic_write_text`: temp file + fsync + rename).

    Raises:
        OSError: the write failed (e.g. a full disk); no partial file is left.
    """
    atomic_write_text(path, "".join(r.model_dump_json() + "\n" for r in records))


def read_jsonl(path: Path, model: type[M]) -> list[M]:
    """Read JSON lines written by :func:`write_jsonl` into ``model`` instances (blank lines skipped).

    Raises:
        FileNotFoundError: ``path`` is missing; ``pydantic.ValidationError``: a line is not a ``model``.
    """
    with open(path, encoding="utf-8") as f:
        return [model.model_validate_json(line) for line in f if line.strip()]


class Manifest(BaseModel):
    """The handover of one video from the heavy stage (pool ``gpu``) to the server stages.

    Lives at ``<heavy_output>/<video_id>/manifest.json`` beside the records it names; written
    atomically and last, so its presence means everything it points to is complete.
    """

    info: VideoInfo
    analyze: AnalyzeResult
    events_path: str  # JSON lines of PlateEvent (voted, GPS-aligned; crops in the work dir)
    gps_source: str | None = None
    # one line each: problems that did not fail the video (e.g. an unreadable GPS sidecar)
    warnings: list[str] = []

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read ``manifest.json`` at ``path``.

        Raises:
            FileNotFoundError: it is missing (one line: the heavy_output folder was cleaned?).
            pydantic.ValidationError: it is not a manifest.
        """
        try:
            return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"handover manifest {path} is missing: was the heavy_output folder cleaned?"
            ) from exc

    @property
    def dir(self) -> Path:
        return Path(self.analyze.work_dir)

    @property
    def archived_events_path(self) -> Path:
        """Events re-pointed at the archive copies of crops/thumbnails (written by archive)."""
        return self.dir / "events.archived.jsonl"

    @property
    def route_path(self) -> Path:
        """The simplified GPS route of the video (written by the ``gps`` stage, absent without GPS;
        :func:`dashcam.gps.write_route`)."""
        return self.dir / "route.json"

    @property
    def archive_check_path(self) -> Path:
        """The archive stage's verification result (written after ``verify_archive`` passed)."""
        return self.dir / "archive_check.json"

    @property
    def archive_min_duration_s(self) -> float | None:
        """For a damaged video, the span analyze decoded (s): the archive copy must be at least
        that long (it transcodes only as far as the source decodes); None for a clean video."""
        return self.analyze.frames_decoded / self.info.fps if self.analyze.damage else None

    def read_archive_check(self, archive_path: str | None) -> dict | None:
        """The archive check of ``archive_path`` (``archive_verified_at`` as an aware datetime),
        or None when there is none or it is of another archive copy (stored unverified then).

        Raises:
            ValueError: the check file is not JSON.
        """
        import json

        p = self.archive_check_path
        check = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None
        if not (check and archive_path and check.get("archive_path") == archive_path):
            return None
        check["archive_verified_at"] = datetime.fromisoformat(check["archive_verified_at"])
        return check

    def read_events(self) -> list[PlateEvent]:
        """The video's events as the server stages store them: re-pointed at the archive copies
        (:attr:`archived_events_path`) when the archive stage has run, else the work-dir events
        (:attr:`events_path`).

        Raises:
            FileNotFoundError: neither file exists (the work dir was cleaned).
        """
        path = self.archived_events_path if self.archived_events_path.exists() else Path(self.events_path)
        return read_jsonl(path, PlateEvent)
