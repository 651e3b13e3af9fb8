"""The pipeline's stages as plain functions: no Prefect in here.

The event-merge rule (``_merge_duplicate_plates``) is the part to move into its own module next.

Order (see docs/architecture.md)::

    probe -> analyze (decode -> vehicles+track -> plates -> OCR) -> vote -> GPS -> archive -> persist

``analyze`` is the only stage that touches pixels. Decode, detection, tracking and OCR run as one
streaming loop because frames never leave the process: the loop feeds each decoded frame to a
:class:`dashcam.alpr.FrameReader` (tracking, read scheduling, plate detection, OCR, close-ups) and
hands what it found to an output collector (:class:`_AnalyzeOutput`: best plate crop per track and
text, best vehicle thumbnail per track, track summaries), which writes small records (JSON lines)
and the crops / thumbnails to the video's work folder. Every later stage reads those records, so it
can run on another machine (issue 3: the heavy subflow on pool ``gpu``, the rest on pool
``server``) and can be retried without redoing the heavy stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import cv2
import numpy as np
from pydantic import BaseModel

from dashcam.archive import atomic_write_bytes, verify_media
from dashcam.records import (
    AnalyzeResult,
    BBox,
    PlateEvent,
    PlateRead,
    TrackBox,
    TrackSummary,
    VideoInfo,
    read_jsonl,
    write_jsonl,
)
from dashcam.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.alpr import Detections

THUMB_MAX_SIDE = 320  # px, longest side of the best-frame vehicle thumbnail
JPEG_QUALITY = 92
CROP_MARGIN = (0.08, 0.08)  # the saved plate crop: the detector box plus a little context for a person


@dataclass
class Progress:
    """A progress tick from :func:`analyze`: counts so far for one video."""

    video_id: str
    frames_decoded: int  # source frames covered (frame_idx of the last analysed frame + 1)
    frame_count: int  # expected total source frames (estimate from probe)
    frames_analyzed: int
    plates_read: int  # OCR readings with non-empty text so far
    tracks_with_plates: int


ProgressListener = Callable[[Progress], None]
_listeners: list[ProgressListener] = []


def add_progress_listener(fn: ProgressListener) -> Callable[[], None]:
    """Register ``fn`` to receive :class:`Progress` ticks from analyze in this process.

    Progress is a process-local side channel (the CLI's Rich progress bar), kept out of task
    parameters so that it never affects Prefect cache keys. Returns a function that unregisters it.
    """
    _listeners.append(fn)
    return lambda: _listeners.remove(fn)


def _emit(p: Progress) -> None:
    for fn in list(_listeners):
        fn(p)


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def _thumbnail(frame: np.ndarray, car_bbox: BBox) -> np.ndarray:
    """The vehicle box (frame pixels) cut out of ``frame``, its longest side at most ``THUMB_MAX_SIDE``."""
    from dashcam.alpr.geometry import pixel_bounds

    h, w = frame.shape[:2]
    x1, y1, x2, y2 = pixel_bounds(car_bbox, w, h)
    crop = frame[y1:y2, x1:x2]
    scale = THUMB_MAX_SIDE / max(crop.shape[:2])
    if scale < 1:
        size = (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return crop


def _verify_jpeg(path: Path) -> None:
    verify_media(path, "image")


def _crop_quality(r: PlateRead) -> float:
    """Rank plate crops of one track: OCR confidence x detector confidence x sqrt(area) x sharpness.

    sqrt(area) and log-sharpness keep one huge or noisy crop from dominating; a bigger, sharper,
    more confidently read crop is the one a person wants to look at.
    """
    return r.text_conf * r.plate_conf * float(np.sqrt(r.plate_area)) * float(np.log1p(r.sharpness))


@dataclass
class _AnalyzeOutput:
    """What :func:`analyze` keeps of a video: reads, track summaries, the best plate crop per
    (track, text) and the best vehicle thumbnail per track (as JPEG bytes until :meth:`write`).

    Memory: one JPEG per (track, text) and one per track; nothing else grows but the records.
    """

    reads: list[PlateRead] = field(default_factory=list)
    tracks: dict[int, TrackSummary] = field(default_factory=dict)
    best_crop: dict[tuple[int, str], tuple[float, bytes]] = field(default_factory=dict)  # -> (quality, jpeg)
    # track -> ((has_read, quality), jpeg): before any read the largest view of the vehicle wins,
    # after it the frame of the best plate read
    best_thumb: dict[int, tuple[tuple[int, float], bytes]] = field(default_factory=dict)
    boxes: list[TrackBox] = field(default_factory=list)  # every track in every analysed frame (dashcam.blur)

    def seen(self, objs: Detections, image: np.ndarray, frame_idx: int, *, plates: bool = False) -> None:
        """Tracked objects (:class:`dashcam.alpr.Detections`, frame pixels) of one frame: track
        summaries, largest-view thumbnails and one :class:`TrackBox` each (``plates``: the objects
        are close-up plate tracks, so the tracked box is the plate box)."""
        for i in range(len(objs)):
            track_id, bbox = objs.track(i), objs.box(i)
            self.boxes.append(
                TrackBox(frame_idx=frame_idx, track_id=track_id, car_bbox=bbox, plate_bbox=bbox if plates else None)
            )
            t = self.tracks.get(track_id)
            if t is None:
                t = self.tracks[track_id] = TrackSummary(
                    track_id=track_id,
                    first_frame_idx=frame_idx,
                    last_frame_idx=frame_idx,
                    n_frames=0,
                    best_car_bbox=bbox,
                    best_frame_idx=frame_idx,
                )
            t.last_frame_idx = frame_idx
            t.n_frames += 1
            area = (bbox[2] - bbox[0]) * (bbox[3] - bbox[1])
            self._offer_thumb(t, (0, area), image, bbox, frame_idx)

    def add_plate_boxes(self, plate_boxes: dict[int, BBox], first_box: int) -> None:
        """Set the plate box (``track_id -> box``, frame pixels; detected, read or not) on this
        frame's :class:`TrackBox` entries, i.e. those from index ``first_box`` on."""
        for b in self.boxes[first_box:]:
            b.plate_bbox = plate_boxes.get(b.track_id, b.plate_bbox)

    def add_reads(self, reads: list[PlateRead], image: np.ndarray, frame_idx: int) -> None:
        """Plate reads of one frame: kept, and offered as best crop / best thumbnail."""
        from dashcam.alpr.ocr import crop_plate

        for read in reads:
            self.reads.append(read)
            quality = _crop_quality(read)
            key = (read.track_id, read.text)
            if key not in self.best_crop or quality > self.best_crop[key][0]:
                self.best_crop[key] = (quality, _jpeg(crop_plate(image, read.plate_bbox, CROP_MARGIN)))
            self._offer_thumb(self.tracks[read.track_id], (1, quality), image, read.car_bbox, frame_idx)

    def _offer_thumb(
        self, t: TrackSummary, quality: tuple[int, float], image: np.ndarray, car_bbox: BBox, frame_idx: int
    ) -> None:
        """Keep the vehicle thumbnail of the best frame so far for track ``t`` (encodes only on improvement)."""
        cur = self.best_thumb.get(t.track_id)
        if cur is None or quality > cur[0]:
            self.best_thumb[t.track_id] = (quality, _jpeg(_thumbnail(image, car_bbox)))
            t.best_car_bbox, t.best_frame_idx = car_bbox, frame_idx

    def write(self, out: Path) -> tuple[Path, Path, Path]:
        """Write crops and thumbnails first (each verified before it takes its name), the records
        last (the records are the manifest): returns ``(reads.jsonl, tracks.jsonl, boxes.jsonl)``
        under ``out``."""
        crop_paths: dict[tuple[int, str], str] = {}
        for (track_id, text), (_, data) in self.best_crop.items():
            p = out / "crops" / f"{track_id}_{text}.jpg"
            atomic_write_bytes(p, data, verify=_verify_jpeg)
            crop_paths[(track_id, text)] = str(p)
        for r in self.reads:
            r.crop_path = crop_paths.get((r.track_id, r.text))
        for track_id, ts in self.tracks.items():
            entry = self.best_thumb.get(track_id)
            if entry is not None:
                p = out / "thumbs" / f"{track_id}.jpg"
                atomic_write_bytes(p, entry[1], verify=_verify_jpeg)
                ts.thumb_path = str(p)
        reads_path, tracks_path, boxes_path = out / "reads.jsonl", out / "tracks.jsonl", out / "boxes.jsonl"
        tracks = [self.tracks[k] for k in sorted(self.tracks)]
        write_jsonl(boxes_path, cast("list[BaseModel]", self.boxes))
        write_jsonl(reads_path, cast("list[BaseModel]", self.reads))
        write_jsonl(tracks_path, cast("list[BaseModel]", tracks))
        return reads_path, tracks_path, boxes_path


def analyze(info: VideoInfo, settings: Settings, work_dir: Path) -> AnalyzeResult:
    """Stream the video through vehicle detection + tracking, plate detection and OCR.

    Args:
        info: the probed video.
        settings: detection rate, models, thresholds.
        work_dir: folder for heavy output; this video's records go to ``work_dir/<video_id>/``:
            ``reads.jsonl`` (:class:`PlateRead`), ``tracks.jsonl`` (:class:`TrackSummary`),
            ``crops/<track_id>_<text>.jpg`` (the sharpest, most confident full-resolution plate
            crop per track and text), ``thumbs/<track_id>.jpg`` (vehicle at its best read) and
            ``boxes.jsonl`` (:class:`TrackBox`: every track's box in every analysed frame, with its
            detected plate box; what the privacy blur follows, :mod:`dashcam.blur`).

    Memory is bounded by the decode queue (``settings.queue_size`` frames) plus one JPEG per
    (track, text): nothing grows with video length except the small records.

    A damaged video (frames lost after the first good ones, see :func:`dashcam.video.iter_frames`)
    is not an error: every frame that decoded is analysed, its reads and tracks are kept, and
    ``AnalyzeResult.damage`` holds one line saying where decoding failed and why. Every crop and
    thumbnail is verified (OpenCV decodes it) before it takes its final name.

    Raises:
        dashcam.video.VideoError: no frame of the video can be decoded (truncated, corrupt).
        dashcam.models.ModelNotFoundError: a model file cannot be found offline.
    """
    from dashcam.alpr import FrameReader
    from dashcam.video import DecodeStats, iter_frames

    t0 = time.perf_counter()
    reader = FrameReader(settings)
    output = _AnalyzeOutput()
    n_frames = n_vehicles = n_plate_tries = 0
    last_idx = -1
    decode = DecodeStats()
    frames = iter_frames(
        info,
        settings.detect_fps,
        settings.queue_size,
        stats=decode,
        damage_ok=True,
        threads=settings.decode_threads or None,
        hwaccel=settings.hwaccel,
        skip_loop_filter=settings.decode_skip_loop_filter,
    )
    for frame in frames:
        n_frames += 1
        last_idx = frame.frame_idx
        found = reader.read(frame.image, frame.frame_idx, frame.pts_s)
        n_vehicles += len(found.vehicles)
        n_plate_tries += found.tries
        first_box = len(output.boxes)
        output.seen(found.vehicles, frame.image, frame.frame_idx)
        output.seen(found.plates, frame.image, frame.frame_idx, plates=True)
        output.add_plate_boxes(found.plate_boxes | {r.track_id: r.plate_bbox for r in found.reads}, first_box)
        output.add_reads(found.reads, frame.image, frame.frame_idx)
        _emit(
            Progress(
                info.video_id,
                last_idx + 1,
                info.frame_count,
                n_frames,
                len(output.reads),
                len({r.track_id for r in output.reads}),
            )
        )
    reads_path, tracks_path, boxes_path = output.write(Path(work_dir) / info.video_id)
    return AnalyzeResult(
        video_id=info.video_id,
        work_dir=str(Path(work_dir) / info.video_id),
        reads_path=str(reads_path),
        tracks_path=str(tracks_path),
        frames_decoded=last_idx + 1,
        frames_analyzed=n_frames,
        n_vehicle_detections=n_vehicles,
        n_plate_reads=len(output.reads),
        n_plate_tries=n_plate_tries,
        wall_s=time.perf_counter() - t0,
        damage=decode.damage,
        boxes_path=str(boxes_path),
        decoder=decode.decoder,
        decode_wait_s=round(decode.wait_s, 3),
    )


def track_priors(info: VideoInfo, reads: list[PlateRead], settings: Settings, track=None) -> tuple[str, ...]:
    """The plate-format regions for one track's ``reads`` (:func:`dashcam.region.plate_priors`):
    an explicit ``settings.plate_formats``; else (``auto``) the country at the GPS position of
    ``track`` (a :class:`dashcam.gps.GpsTrack` or None) at the reads' median pts (video clock,
    corrected by the track's clock offset as :func:`dashcam.gps.align_gps` does); else the country of
    ``settings.camera_tz``; else ``()``."""
    from dashcam.region import plate_priors

    lat = lon = None
    if track is not None and reads and tuple(settings.plate_formats) == ("auto",):
        pts = sorted(r.pts_s for r in reads)[len(reads) // 2]
        fix = track.at_video(info.recording_start + timedelta(seconds=pts))
        if fix is not None:
            lat, lon = fix.lat, fix.lon
    return plate_priors(settings, lat, lon)


def build_events(info: VideoInfo, result: AnalyzeResult, settings: Settings, track=None) -> list[PlateEvent]:
    """Vote each track's reads into at most one :class:`PlateEvent`.

    A track yields an event only when :func:`dashcam.vote.vote_track` returns a reading with
    confidence >= ``settings.min_plate_confidence`` (see that module for the rule); ``ts`` is the
    recording start plus the best read's pts. The vote's plate-format prior is per track
    (:func:`track_priors`: explicit setting, else the country at the ``track``'s GPS position,
    else ``camera_tz``'s country, else none). The heavy flow votes once without GPS (stage
    ``vote``) and, when ``plate_formats`` is ``auto`` and a GPS track is found, again with it
    (stage ``gps``): re-voting reads only the small reads/tracks records, never frames.
    """
    from dashcam.vote import track_alternatives, vote_track

    reads: list[PlateRead] = read_jsonl(Path(result.reads_path), PlateRead)
    tracks = {t.track_id: t for t in read_jsonl(Path(result.tracks_path), TrackSummary)}
    by_track: dict[int, list[PlateRead]] = {}
    for r in reads:
        by_track.setdefault(r.track_id, []).append(r)
    events: list[PlateEvent] = []
    for track_id, track_reads in sorted(by_track.items()):
        priors = track_priors(info, track_reads, settings, track)
        vote = vote_track(track_reads, min_reads=settings.min_reads, priors=priors)
        if vote is None or vote.confidence < settings.min_plate_confidence:
            continue
        best = vote.best_read
        t = tracks.get(track_id)
        events.append(
            PlateEvent(
                video_id=info.video_id,
                track_id=track_id,
                frame_idx=best.frame_idx,
                pts_s=best.pts_s,
                ts=info.recording_start + timedelta(seconds=best.pts_s),
                final_plate=vote.final_plate,
                plate_confidence=round(float(vote.confidence), 4),
                car_bbox=best.car_bbox,
                plate_bbox=best.plate_bbox,
                n_reads=vote.n_reads,
                first_frame_idx=t.first_frame_idx if t else min(r.frame_idx for r in track_reads),
                last_frame_idx=t.last_frame_idx if t else max(r.frame_idx for r in track_reads),
                crop_path=best.crop_path,
                thumb_path=t.thumb_path if t else None,
                alternatives=track_alternatives(track_reads, vote.final_plate),
            )
        )
    return _merge_duplicate_plates(events, info.fps)


MERGE_GAP_S = 10.0  # the same plate again after the vehicle was out of view longer than this: a new event
NEAR_GAP_S = 1.0  # near-duplicate plates: their tracks overlap or touch (gap <= this)
NEAR_EDIT = 1  # near-duplicate: at most this many edits (rapidfuzz Levenshtein, O/0 I/1 folded)
MIN_SUBSTRING = 3  # a truncated reading: at least this many characters, inside the other reading


def similar_plates(a: str, b: str) -> bool:
    """Could plate texts ``a`` and ``b`` be readings of one plate? Equal after folding O/0, I/1;
    or one is a truncation of the other (``NB23`` in ``XSNB23``: a substring of at least
    ``MIN_SUBSTRING`` characters, from a plate box that cut off a group); or they are at most
    ``NEAR_EDIT`` edits apart (rapidfuzz Levenshtein) and both have at least 5 characters."""
    from rapidfuzz.distance import Levenshtein

    from dashcam.vote import fold

    fa, fb = fold(a), fold(b)
    if fa == fb:
        return True
    short, long_ = sorted((fa, fb), key=len)
    if len(short) >= MIN_SUBSTRING and short in long_:
        return True
    return len(short) >= 5 and Levenshtein.distance(fa, fb, score_cutoff=NEAR_EDIT) <= NEAR_EDIT


def _near_in_image(a: PlateEvent, b: PlateEvent) -> bool:
    """The two events' vehicle boxes (at their best reads, source pixels) overlap, or their
    centres are less than the wider box's width apart."""
    ax, ay = (a.car_bbox[0] + a.car_bbox[2]) / 2, (a.car_bbox[1] + a.car_bbox[3]) / 2
    bx, by = (b.car_bbox[0] + b.car_bbox[2]) / 2, (b.car_bbox[1] + b.car_bbox[3]) / 2
    w = max(a.car_bbox[2] - a.car_bbox[0], b.car_bbox[2] - b.car_bbox[0], 1.0)
    ix = min(a.car_bbox[2], b.car_bbox[2]) - max(a.car_bbox[0], b.car_bbox[0])
    iy = min(a.car_bbox[3], b.car_bbox[3]) - max(a.car_bbox[1], b.car_bbox[1])
    return (ix > 0 and iy > 0) or ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5 < w


def _support(e: PlateEvent) -> float:
    return e.plate_confidence * e.n_reads


def _merged_text(a: PlateEvent, b: PlateEvent) -> PlateEvent:
    """The event whose text is kept: of a truncation and the full reading, the longer one (a
    dropped character or group is the common error, as in :func:`dashcam.vote.vote_track`);
    otherwise the better supported (``plate_confidence x n_reads``)."""
    fa, fb = a.final_plate, b.final_plate
    if len(fa) != len(fb) and (fa in fb or fb in fa):
        return a if len(fa) > len(fb) else b
    return a if _support(a) >= _support(b) else b


def _merge_duplicate_plates(events: list[PlateEvent], fps: float) -> list[PlateEvent]:
    """One event per vehicle within a video. Two events are merged when

    * their plates are the same (O/0, I/1 folded) and their frame spans lie within
      ``MERGE_GAP_S`` seconds (a tracker that split one vehicle into two tracks: occlusion, a
      missed detection); the same plate after a longer absence is a new sighting (a new event);
    * or their plates are near-duplicates (:func:`similar_plates`: a truncation such as ``NB23``
      of ``XSNB23``, or one edit apart) **and** their tracks overlap or touch in time (gap <=
      ``NEAR_GAP_S``) **and** in the image (:func:`_near_in_image`): one vehicle read twice.

    The kept event is the one whose text wins (:func:`_merged_text`), with the union of the frame
    spans and the summed reads.
    """
    gap, near_gap = MERGE_GAP_S * fps, NEAR_GAP_S * fps
    merged: list[PlateEvent] = []
    for e in sorted(events, key=lambda e: e.first_frame_idx):
        while True:
            prev = next((m for m in reversed(merged) if _same_vehicle(m, e, gap, near_gap)), None)
            if prev is None:
                break
            merged.remove(prev)
            keep = _merged_text(prev, e)
            e = keep.model_copy(
                update={
                    "n_reads": prev.n_reads + e.n_reads,
                    "alternatives": _merge_alternatives(prev.alternatives, e.alternatives),
                    "first_frame_idx": min(prev.first_frame_idx, e.first_frame_idx),
                    "last_frame_idx": max(prev.last_frame_idx, e.last_frame_idx),
                }
            )
        merged.append(e)
    return sorted(merged, key=lambda e: (e.frame_idx, e.track_id))


def _same_vehicle(a: PlateEvent, b: PlateEvent, gap: float, near_gap: float) -> bool:
    from dashcam.vote import fold

    apart = max(a.first_frame_idx, b.first_frame_idx) - min(a.last_frame_idx, b.last_frame_idx)
    if fold(a.final_plate) == fold(b.final_plate):
        return apart <= gap
    return apart <= near_gap and similar_plates(a.final_plate, b.final_plate) and _near_in_image(a, b)


def _merge_alternatives(a: list, b: list) -> list:
    """Union of two events' alternative readings: counts summed, mean confidences weighted by
    count; ordered and capped as :func:`dashcam.vote.track_alternatives` does."""
    from dashcam.records import PlateAlternative
    from dashcam.vote import MAX_ALTERNATIVES

    acc: dict[str, tuple[int, float]] = {}
    for alt in [*a, *b]:
        n, s = acc.get(alt.text, (0, 0.0))
        acc[alt.text] = (n + alt.count, s + alt.mean_conf * alt.count)
    out = [PlateAlternative(text=t, count=n, mean_conf=round(s / n, 4)) for t, (n, s) in acc.items()]
    out.sort(key=lambda x: (-x.count, -x.mean_conf, x.text))
    return out[:MAX_ALTERNATIVES]
