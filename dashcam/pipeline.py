"""The pipeline's stages as plain functions: no Prefect in here.

Order (see docs/architecture.md)::

    probe -> analyze (decode -> vehicles+track -> plates -> OCR) -> vote -> GPS -> archive -> persist

``analyze`` is the only stage that touches pixels. Decode, detection, tracking and OCR run as one
streaming loop because frames never leave the process: it writes small records (JSON lines) and
plate crops / thumbnails to the video's work folder and returns paths. Every later stage reads
those records, so it can run on another machine (issue 3: the heavy subflow on pool ``gpu``, the
rest on pool ``server``) and can be retried without redoing the heavy stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from dashcam.archive import atomic_write_bytes, verify_media
from dashcam.records import (
    AnalyzeResult,
    PlateEvent,
    PlateRead,
    TrackBox,
    TrackSummary,
    VideoInfo,
    read_jsonl,
    write_jsonl,
)
from dashcam.settings import Settings

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


def _clip_box(b, w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(round(v)) for v in b)
    return max(0, x1), max(0, y1), min(w, x2), min(h, y2)


def _thumbnail(frame: np.ndarray, car_bbox) -> np.ndarray:
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = _clip_box(car_bbox, w, h)
    crop = frame[y1:y2, x1:x2]
    scale = THUMB_MAX_SIDE / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return crop


@dataclass
class _TrackReads:
    last_try_pts: float | None = None  # pts (s) of the last plate-detector try, None = never tried
    last_try_area: float = 0.0  # vehicle bbox area (px^2) at that try
    last_found: bool = False  # that try gave a read
    agree: dict[str, int] = field(default_factory=dict)  # folded text -> confident reads of it


class _FrameTrack(NamedTuple):
    track_id: int
    bbox: tuple[float, float, float, float]


class PlateReadScheduler:
    """Decide, per analysed frame, which tracked vehicles get plate detection + OCR.

    The plate detector costs ~60 ms per vehicle crop at 320 px on 2 CPU cores (more than the
    vehicle detector per frame), so reading every vehicle in every analysed frame spends most of
    the time on vehicles that cannot give a readable plate or are already read. Rule, per track
    (``w`` = vehicle bbox width in source pixels, ``t`` = the frame's pts in seconds):

    1. **Too small**: ``w < settings.plate_min_vehicle_px`` -> never read. A plate is 0.2-0.4 of
       a vehicle's width (measured on plates-video/road-video), and OCR needs a plate >= ~35 px
       wide (the smallest labelled plate in plates-images is 50 px), so below ~96 px the detector
       finds nothing readable (road-video: 0 reads on 119 such crops).
    2. **First sight** -> read.
    3. **Last try found no plate** (rear plate hidden, side view, far): retry after
       ``plate_retry_s`` or as soon as the vehicle's area has grown 1.25x (it came closer).
    4. **Settled**: ``plate_settle_reads`` reads of the same text (O/0, I/1 folded) each at OCR
       confidence >= ``SETTLE_CONF`` -> re-read only every ``plate_retry_s`` (a later, closer
       view may still give a better crop); at 4 agreeing reads the vote
       (:mod:`dashcam.vote`) already reports ~0.9 confidence.
    5. Otherwise (a plate was found, text not settled yet) -> read at every analysed frame.

    This is a detection-rate policy applied per object instead of per frame (cf. the seeds'
    motion gating, which decides per frame); ``plate_settle_reads = 0`` turns it off (every
    vehicle of at least the minimum width in every analysed frame, the issue-2 behaviour).
    """

    SETTLE_CONF = 0.85
    GROWTH = 1.25
    FRAME_TRACK = 0  # pseudo track id of close-up passes over a whole frame (ByteTrack ids are >= 1)

    def __init__(self, settings: Settings):
        self.min_w = float(settings.plate_min_vehicle_px)
        self.retry_s = float(settings.plate_retry_s)
        self.settle = int(settings.plate_settle_reads)
        self.state: dict[int, _TrackReads] = {}

    def due(self, vehicles: list, pts_s: float) -> list:
        """The subset of ``vehicles`` (:class:`dashcam.alpr.TrackedVehicle`, bbox in source
        pixels) to read in the frame at ``pts_s`` seconds, in input order; marks them tried."""
        out = []
        for v in vehicles:
            w, h = v.bbox[2] - v.bbox[0], v.bbox[3] - v.bbox[1]
            if w < self.min_w:
                continue
            st = self.state.setdefault(v.track_id, _TrackReads())
            area = w * h
            if self.settle > 0 and st.last_try_pts is not None:
                waited = pts_s - st.last_try_pts >= self.retry_s
                settled = max(st.agree.values(), default=0) >= self.settle
                if settled and not waited:
                    continue
                if not settled and not st.last_found and not waited and area < self.GROWTH * st.last_try_area:
                    continue
            st.last_try_pts, st.last_try_area, st.last_found = pts_s, area, False
            out.append(v)
        return out

    def frame_due(self, width: float, height: float, pts_s: float) -> bool:
        """Should the frame at ``pts_s`` get a close-up plate pass
        (:class:`dashcam.alpr.CloseupPlateTracker`)? The whole frame (``width`` x ``height``
        source px) is scheduled as one pseudo track ``FRAME_TRACK`` by the same rule; feed its
        reads back with ``record(reads, as_track=FRAME_TRACK)``."""
        return bool(self.due([_FrameTrack(self.FRAME_TRACK, (0.0, 0.0, float(width), float(height)))], pts_s))

    def record(self, reads: list[PlateRead], as_track: int | None = None) -> None:
        """Feed back the reads of the vehicles returned by the last :meth:`due` call (or, with
        ``as_track``, reads that all count for that one scheduled track)."""
        from dashcam.vote import fold

        for r in reads:
            st = self.state.setdefault(r.track_id if as_track is None else as_track, _TrackReads())
            st.last_found = True
            if r.text_conf >= self.SETTLE_CONF:
                k = fold(r.text)
                st.agree[k] = st.agree.get(k, 0) + 1


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
            plate box where one was read; what the privacy blur follows, :mod:`dashcam.blur`).

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
    from dashcam.alpr import (
        CloseupPlateTracker,
        PlateDetector,
        PlateReader,
        VehicleTracker,
        crop_plate,
        read_closeup_plates,
        read_tracked_frame,
    )
    from dashcam.video import DecodeStats, iter_frames

    t0 = time.perf_counter()
    out = Path(work_dir) / info.video_id
    tracker = VehicleTracker(settings)
    tracker.reset()
    detector = PlateDetector(settings)
    reader = PlateReader(settings)
    schedule = PlateReadScheduler(settings)
    # frames without any tracked vehicle get a close-up plate pass (a plate filling the frame)
    closeups = CloseupPlateTracker(settings, detector) if settings.closeup_plates else None

    reads: list[PlateRead] = []
    tracks: dict[int, TrackSummary] = {}
    best_crop: dict[tuple[int, str], tuple[float, bytes]] = {}  # (track, text) -> (quality, jpeg)
    # track -> ((has_read, quality), jpeg): before any read the largest view of the vehicle wins,
    # after it the frame of the best plate read
    best_thumb: dict[int, tuple[tuple[int, float], bytes]] = {}
    n_frames = n_vehicles = n_plate_tries = 0
    last_idx = -1
    boxes: list[TrackBox] = []  # every track in every analysed frame (privacy blur, dashcam.blur)

    def seen(objs, frame) -> None:  # track summaries + largest-view thumbnails
        for v in objs:
            t = tracks.get(v.track_id)
            if t is None:
                t = tracks[v.track_id] = TrackSummary(
                    track_id=v.track_id, first_frame_idx=frame.frame_idx, last_frame_idx=frame.frame_idx,
                    n_frames=0, best_car_bbox=v.bbox, best_frame_idx=frame.frame_idx,
                )
            t.last_frame_idx = frame.frame_idx
            t.n_frames += 1
            area = (v.bbox[2] - v.bbox[0]) * (v.bbox[3] - v.bbox[1])
            boxes.append(TrackBox(frame_idx=frame.frame_idx, track_id=v.track_id, car_bbox=v.bbox,
                                  plate_bbox=v.bbox if v.cls == CloseupPlateTracker.CLS else None))
            _offer_thumb(best_thumb, t, (0, area), frame.image, v.bbox, frame.frame_idx)

    decode = DecodeStats()
    for frame in iter_frames(info, settings.detect_fps, settings.queue_size, stats=decode, damage_ok=True):
        n_frames += 1
        last_idx = frame.frame_idx
        first_box = len(boxes)
        image = frame.image
        vehicles = tracker.update(image)
        n_vehicles += len(vehicles)
        seen(vehicles, frame)
        due = schedule.due(vehicles, frame.pts_s)
        frame_reads = read_tracked_frame(image, due, detector, reader, frame.frame_idx, frame.pts_s) if due else []
        schedule.record(frame_reads)
        n_plate_tries += len(due)
        if closeups is not None and not vehicles and schedule.frame_due(image.shape[1], image.shape[0], frame.pts_s):
            plates = closeups.update(image)
            seen(plates, frame)
            cu_reads = read_closeup_plates(image, plates, reader, frame.frame_idx, frame.pts_s)
            schedule.record(cu_reads, as_track=schedule.FRAME_TRACK)
            n_plate_tries += 1
            frame_reads += cu_reads
        plate_at = {r.track_id: r.plate_bbox for r in frame_reads}
        for b in boxes[first_box:]:
            b.plate_bbox = plate_at.get(b.track_id, b.plate_bbox)
        for read in frame_reads:
            reads.append(read)
            quality = _crop_quality(read)
            key = (read.track_id, read.text)
            if key not in best_crop or quality > best_crop[key][0]:
                best_crop[key] = (quality, _jpeg(crop_plate(image, read.plate_bbox, CROP_MARGIN)))
            _offer_thumb(best_thumb, tracks[read.track_id], (1, quality), image, read.car_bbox, frame.frame_idx)
        _emit(Progress(info.video_id, last_idx + 1, info.frame_count, n_frames, len(reads),
                       len({r.track_id for r in reads})))

    # write heavy output: crops and thumbnails first, records last (the records are the manifest)
    crop_paths: dict[tuple[int, str], str] = {}
    for (track_id, text), (_, data) in best_crop.items():
        p = out / "crops" / f"{track_id}_{text}.jpg"
        atomic_write_bytes(p, data, verify=_verify_jpeg)
        crop_paths[(track_id, text)] = str(p)
    for r in reads:
        r.crop_path = crop_paths.get((r.track_id, r.text))
    for track_id, ts in tracks.items():
        entry = best_thumb.get(track_id)
        if entry is not None:
            p = out / "thumbs" / f"{track_id}.jpg"
            atomic_write_bytes(p, entry[1], verify=_verify_jpeg)
            ts.thumb_path = str(p)
    reads_path, tracks_path, boxes_path = out / "reads.jsonl", out / "tracks.jsonl", out / "boxes.jsonl"
    write_jsonl(boxes_path, boxes)
    write_jsonl(reads_path, reads)
    write_jsonl(tracks_path, sorted(tracks.values(), key=lambda t: t.track_id))
    return AnalyzeResult(
        video_id=info.video_id, work_dir=str(out), reads_path=str(reads_path), tracks_path=str(tracks_path),
        frames_decoded=last_idx + 1, frames_analyzed=n_frames, n_vehicle_detections=n_vehicles,
        n_plate_reads=len(reads), n_plate_tries=n_plate_tries, wall_s=time.perf_counter() - t0,
        damage=decode.damage, boxes_path=str(boxes_path),
    )


def _verify_jpeg(path: Path) -> None:
    verify_media(path, "image")


def _offer_thumb(best: dict, t: TrackSummary, quality: tuple[int, float], image: np.ndarray, car_bbox, frame_idx: int) -> None:
    """Keep the vehicle thumbnail of the best frame so far for track ``t`` (encodes only on improvement)."""
    cur = best.get(t.track_id)
    if cur is None or quality > cur[0]:
        best[t.track_id] = (quality, _jpeg(_thumbnail(image, car_bbox)))
        t.best_car_bbox, t.best_frame_idx = tuple(car_bbox), frame_idx


def _crop_quality(r: PlateRead) -> float:
    """Rank plate crops of one track: OCR confidence x detector confidence x sqrt(area) x sharpness.

    sqrt(area) and log-sharpness keep one huge or noisy crop from dominating; a bigger, sharper,
    more confidently read crop is the one a person wants to look at.
    """
    return r.text_conf * r.plate_conf * float(np.sqrt(r.plate_area)) * float(np.log1p(r.sharpness))


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
        events.append(PlateEvent(
            video_id=info.video_id, track_id=track_id, frame_idx=best.frame_idx, pts_s=best.pts_s,
            ts=info.recording_start + timedelta(seconds=best.pts_s), final_plate=vote.final_plate,
            plate_confidence=round(float(vote.confidence), 4), car_bbox=best.car_bbox, plate_bbox=best.plate_bbox,
            n_reads=vote.n_reads,
            first_frame_idx=t.first_frame_idx if t else min(r.frame_idx for r in track_reads),
            last_frame_idx=t.last_frame_idx if t else max(r.frame_idx for r in track_reads),
            crop_path=best.crop_path, thumb_path=t.thumb_path if t else None,
            alternatives=track_alternatives(track_reads, vote.final_plate),
        ))
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
            e = keep.model_copy(update={
                "n_reads": prev.n_reads + e.n_reads,
                "alternatives": _merge_alternatives(prev.alternatives, e.alternatives),
                "first_frame_idx": min(prev.first_frame_idx, e.first_frame_idx),
                "last_frame_idx": max(prev.last_frame_idx, e.last_frame_idx),
            })
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
