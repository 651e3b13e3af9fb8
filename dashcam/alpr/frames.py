"""The frame reader: one video frame in, its tracked objects and plate reads out.

:class:`FrameReader` owns the per-video state of the analyse stage: the vehicle tracker, the plate
detector, the OCR, the read scheduler and the close-up pass. The caller
(:func:`dashcam.pipeline.analyze`) feeds it consecutive analysed frames of **one** video and keeps
only the output (records, crops, thumbnails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dashcam.alpr.detections import Detections
from dashcam.alpr.geometry import box_area
from dashcam.alpr.ocr import PlateReader, PlateText, crop_plate, plate_sharpness
from dashcam.alpr.plates import CloseupPlateTracker, PlateDetector
from dashcam.alpr.schedule import PlateReadScheduler
from dashcam.alpr.vehicles import VehicleTracker
from dashcam.records import BBox, PlateRead

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.settings import Settings


def _plate_reads(
    frame_bgr: np.ndarray,
    owners: Detections,
    plates: list[tuple[BBox, float]],
    texts: list[PlateText],
    frame_idx: int,
    pts_s: float,
) -> list[PlateRead]:
    """PlateRead per (tracked owner ``i``, ``plates[i]``, ``texts[i]``) with non-empty OCR text."""
    out = []
    for i, ((pb, pc), t) in enumerate(zip(plates, texts, strict=True)):
        if not t.text:
            continue
        out.append(
            PlateRead(
                frame_idx=int(frame_idx),
                pts_s=float(pts_s),
                track_id=owners.track(i),
                car_bbox=owners.box(i),
                car_conf=float(owners.confidence[i]),
                plate_bbox=pb,
                plate_conf=pc,
                text=t.text,
                raw_text=t.raw_text,
                text_conf=t.conf,
                slot_probs=t.slots,
                plate_area=box_area(pb),
                sharpness=plate_sharpness(crop_plate(frame_bgr, pb)),
            )
        )
    return out


def read_tracked_frame(
    frame_bgr: np.ndarray,
    vehicles: Detections,
    detector: PlateDetector,
    reader: PlateReader,
    frame_idx: int,
    pts_s: float,
    detected: dict[int, BBox] | None = None,
    hints: list[BBox | None] | None = None,
) -> list[PlateRead]:
    """Plates of the tracked ``vehicles`` in one ``(H, W, 3)`` uint8 BGR frame -> one
    :class:`~dashcam.records.PlateRead` per vehicle with a detected plate and non-empty text (best
    plate per vehicle). All boxes in frame pixels; ``plate_area`` in px^2; ``sharpness`` from
    :func:`~dashcam.alpr.ocr.plate_sharpness` on the OCR crop. ``crop_path`` is left ``None`` (the
    caller writes crops). ``detected``, when given, receives ``track_id -> plate box`` of every
    vehicle whose plate was detected, read or not (what the privacy blur follows,
    :mod:`dashcam.blur`). ``hints``: per vehicle, the box where its plate is expected or ``None``
    (:meth:`PlateDetector.detect_in_vehicles`). Raises ``ValueError`` for untracked ``vehicles``."""
    per_vehicle = detector.detect_in_vehicles(frame_bgr, vehicles, hints=hints)
    keep = [i for i, p in enumerate(per_vehicle) if len(p)]
    plates = [next(iter(per_vehicle[i])) for i in keep]
    if detected is not None:
        for i, (pb, _) in zip(keep, plates, strict=True):
            detected[vehicles.track(i)] = pb
    texts = reader.read_boxes(frame_bgr, [pb for pb, _ in plates])  # every plate of the frame in one OCR call
    return _plate_reads(frame_bgr, vehicles[keep], plates, texts, frame_idx, pts_s)


def read_closeup_plates(
    frame_bgr: np.ndarray,
    plates: Detections,
    reader: PlateReader,
    frame_idx: int,
    pts_s: float,
) -> list[PlateRead]:
    """OCR tracked plate boxes (:meth:`CloseupPlateTracker.update`) in one frame: one
    :class:`~dashcam.records.PlateRead` per plate with non-empty text, ``car_bbox`` = ``plate_bbox``
    = the tracked plate box and ``car_conf`` = ``plate_conf`` = its detector score (there is no
    vehicle box). Raises ``ValueError`` for untracked ``plates``."""
    texts = reader.read_boxes(frame_bgr, plates.boxes())
    return _plate_reads(frame_bgr, plates, list(plates), texts, frame_idx, pts_s)


@dataclass
class FrameReads:
    """What :meth:`FrameReader.read` found in one frame.

    ``vehicles``: tracked vehicles (boxes in frame pixels); ``plates``: close-up plate tracks of a
    frame without vehicles (plate boxes; empty when no close-up pass ran); ``reads``: plate reads
    with non-empty text (vehicle reads first, then close-up reads); ``tries``: plate-detector
    tries spent (one per scheduled vehicle, one per close-up pass); ``plate_boxes``: ``track_id ->``
    plate box of every scheduled vehicle whose plate the detector found, read or not (frame pixels).
    """

    vehicles: Detections
    plates: Detections
    reads: list[PlateRead]
    tries: int
    plate_boxes: dict[int, BBox] = field(default_factory=dict)


def moved_with(plate: BBox, then: BBox, now: BBox) -> BBox:
    """``plate`` (frame pixels), seen inside vehicle box ``then``, moved and scaled as the vehicle
    box went from ``then`` to ``now``: the plate's position relative to its vehicle is kept (a
    plate does not move on its car)."""
    sx = (now[2] - now[0]) / max(then[2] - then[0], 1e-6)
    sy = (now[3] - now[1]) / max(then[3] - then[1], 1e-6)
    return (
        now[0] + (plate[0] - then[0]) * sx,
        now[1] + (plate[1] - then[1]) * sy,
        now[0] + (plate[2] - then[0]) * sx,
        now[1] + (plate[3] - then[1]) * sy,
    )


class FrameReader:
    """Track vehicles, schedule and read their plates, and run the close-up pass, frame by frame.

    One reader per video (its trackers and scheduler hold that video's state); frames must be
    consecutive analysed frames at ``settings.detect_fps``. Models are loaded (cached per process)
    at construction: raises :class:`dashcam.models.ModelNotFoundError` if one is missing. Frames
    without any tracked vehicle get a close-up pass (a plate filling the frame,
    :class:`~dashcam.alpr.plates.CloseupPlateTracker`) when ``settings.closeup_plates`` is on and the
    :class:`~dashcam.alpr.schedule.PlateReadScheduler` says it is due. Not thread-safe.

    With ``settings.plate_hint_imgsz`` a track's last plate box (detected at most ``HINT_MAX_AGE_S``
    earlier), moved with its vehicle box (:func:`moved_with`), is the detector's hint: a large
    vehicle crop (one that would run at 640) is first searched only around it at the
    ``plate_hint_imgsz`` input (192) (:meth:`PlateDetector.detect_in_vehicles`). A track whose hint region once gave nothing
    (measured: plates-video ``Video95_2``, a 228 px plate the detector finds only at 640) gets no
    more hints, so it pays one wasted small run, not one per read.
    """

    HINT_MAX_AGE_S = 2.0

    def __init__(self, settings: Settings):
        # construction order matters: ultralytics restarts its global track-id counter with every
        # new tracker, so the close-up tracker is made last, as it always was
        self.tracker = VehicleTracker(settings)
        self.tracker.reset()
        self.detector = PlateDetector(settings)
        self.reader = PlateReader(settings)
        self.schedule = PlateReadScheduler(settings)
        self.closeups = CloseupPlateTracker(settings, self.detector) if settings.closeup_plates else None
        self.use_hints = 0 < int(settings.plate_hint_imgsz) < int(settings.plate_crop_imgsz)
        self.last_plate: dict[int, tuple[BBox, BBox, float]] = {}  # track -> (vehicle box, plate box, pts s)
        self.no_hints: set[int] = set()  # tracks whose hint search found nothing once

    def _hints(self, vehicles: Detections, pts_s: float) -> list[BBox | None] | None:
        if not self.use_hints:
            return None
        out: list[BBox | None] = []
        for i in range(len(vehicles)):
            t = vehicles.track(i)
            last = None if t in self.no_hints else self.last_plate.get(t)
            fresh = last is not None and pts_s - last[2] <= self.HINT_MAX_AGE_S
            out.append(moved_with(last[1], last[0], vehicles.box(i)) if last is not None and fresh else None)
        return out

    def read(self, image: np.ndarray, frame_idx: int, pts_s: float) -> FrameReads:
        """One ``(H, W, 3)`` uint8 BGR frame (source resolution) at source index ``frame_idx`` and
        ``pts_s`` seconds -> :class:`FrameReads` (boxes in that frame's pixels)."""
        vehicles = self.tracker.update(image)
        due = self.schedule.due(vehicles, pts_s)
        plate_boxes: dict[int, BBox] = {}
        reads = (
            read_tracked_frame(
                image, due, self.detector, self.reader, frame_idx, pts_s, plate_boxes, self._hints(due, pts_s)
            )
            if len(due)
            else []
        )
        for i in range(len(due)):
            t = due.track(i)
            if i in self.detector.hint_misses:
                self.no_hints.add(t)  # its plate is not found at the hint input: whole crops from now on
            if t in plate_boxes:
                self.last_plate[t] = (due.box(i), plate_boxes[t], pts_s)
        self.schedule.record(reads)
        tries = len(due)
        plates = Detections.empty(tracked=True)
        if (
            self.closeups is not None
            and not len(vehicles)
            and self.schedule.frame_due(image.shape[1], image.shape[0], pts_s)
        ):
            plates = self.closeups.update(image)
            closeup_reads = read_closeup_plates(image, plates, self.reader, frame_idx, pts_s)
            self.schedule.record(closeup_reads, as_track=self.schedule.FRAME_TRACK)
            tries += 1
            reads = reads + closeup_reads
        return FrameReads(vehicles, plates, reads, tries, plate_boxes)
