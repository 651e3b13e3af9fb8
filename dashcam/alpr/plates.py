"""Plates: boxes from the YOLOv8s-seg plate model, in vehicle crops or whole frames, and the
close-up plate tracker for frames whose vehicle is not detected.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dashcam.alpr.detections import NO_CLASS, Detections
from dashcam.alpr.geometry import check_image, expand_bbox
from dashcam.alpr.vehicles import new_tracker, tracker_cfg
from dashcam.models import ModelRetargetError, load_yolo, resolve_device, resolve_model, yolo_onnx_at_imgsz
from dashcam.records import BBox

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.settings import Settings

PLATE_IMGSZ = 640  # plate detector input for whole images (the platedet export's own size)
VEHICLE_MARGIN = 0.04  # fraction of vehicle w/h added on each side before plate detection
# vehicle crops up to this x the small plate-detector input run at that size, larger ones at 640
CROP_SIZE_SLACK = 1.25
MIN_VEHICLE_WIDTH_PX = 32  # narrower vehicles cannot carry a readable plate: skipped
MIN_PLATE_SIDE_PX = 2  # plate boxes narrower or lower than this (after clipping) are dropped
# the region searched around a track's expected plate (a hint, see detect_in_vehicles): the hint box
# grown by these fractions of its width / height on each side, so the plate spans about a third of
# the region's width and comes to ~60-70 px at the 192 hint input, a scale the detector finds plates at
HINT_MARGIN = (1.0, 2.5)
HINT_EDGE_PX = 2.0  # a plate box this close to a region edge inside the vehicle crop may be cut off

log = logging.getLogger(__name__)


class PlateDetector:
    """Licence-plate boxes from the YOLOv8-seg plate model (masks are never used).

    Two input sizes of the same weights: whole images at ``PLATE_IMGSZ`` (640) and vehicle crops
    whose longer side is at most ``CROP_SIZE_SLACK`` x ``Settings.plate_crop_imgsz`` (320) at
    that small size: such a crop loses (almost) no pixels there and costs ~1/4 of a 640 run,
    while larger crops keep 640 (downscaling them to 320 missed large plates and cost exact reads
    in bench/accuracy.py). A third size, ``Settings.plate_hint_imgsz`` (192, ~1/3 of a 320 run),
    searches the region around where a track's plate was last seen (``hints`` of
    :meth:`detect_in_vehicles`); it is loaded on first use. ONNX exports are re-targeted to each
    size and cut to their box output once, cached on disk
    (:func:`dashcam.models.retarget_yolo_onnx`). The ONNX export has a fixed
    batch of 1: a list of crops goes to ultralytics in one ``predict`` call, which runs them one by
    one. Not thread-safe. Raises ``ModelNotFoundError`` at construction if the model is missing,
    :class:`dashcam.models.InferenceDeviceError` for a GPU ``settings.device`` this machine lacks.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.calls: Counter[str] = Counter()  # detector runs by kind (see detect_in_vehicles)
        self.hint_misses: set[int] = set()  # vehicles (indices) whose hint found nothing in the last call
        self.device = resolve_device(settings.device).torch_device  # what ultralytics' predict gets
        path = resolve_model(settings.plate_model, settings.model_dir)
        self.image_model, self.image_imgsz = self._load(path, PLATE_IMGSZ)
        crop_imgsz = int(settings.plate_crop_imgsz)
        if crop_imgsz == self.image_imgsz:
            self.crop_model, self.crop_imgsz = self.image_model, self.image_imgsz
        else:
            self.crop_model, self.crop_imgsz = self._load(path, crop_imgsz)
        self._path = path
        self.hint_imgsz = int(settings.plate_hint_imgsz)  # 0: no hint search
        self._hint_model: Any = None  # loaded on the first hint search (photos never need it)

    def _load(self, path: str, imgsz: int) -> tuple[Any, int]:
        """(model, imgsz) for one input size: an ONNX export is re-targeted to ``imgsz`` and
        cut to boxes only (:func:`dashcam.models.yolo_onnx_at_imgsz`); a ``.pt`` model runs at
        ``imgsz`` natively; an ONNX file that cannot be re-targeted runs as it is, at its export
        size (with a warning)."""
        s = self.settings
        if path.lower().endswith(".onnx"):
            try:
                return load_yolo(yolo_onnx_at_imgsz(path, imgsz), "detect", None, s.device), imgsz
            except ModelRetargetError as e:
                log.warning("plate model runs at its export size: %s", e)
                return load_yolo(path, "segment", None, s.device), PLATE_IMGSZ
        return load_yolo(path, "segment", None, s.device), imgsz

    def _predict(self, images: list[np.ndarray], crops: bool = False, hint: bool = False) -> Any:
        if hint:
            if self._hint_model is None:
                self._hint_model, self.hint_imgsz = self._load(self._path, self.hint_imgsz)
            model, imgsz = self._hint_model, self.hint_imgsz
        elif crops:
            model, imgsz = self.crop_model, self.crop_imgsz
        else:
            model, imgsz = self.image_model, self.image_imgsz
        return model.predict(
            images,
            imgsz=imgsz,
            conf=float(self.settings.plate_conf),
            device=self.device,
            retina_masks=False,
            verbose=False,
        )

    def detect(self, image_bgr: np.ndarray, small: bool = False) -> Detections:
        """Plates in a whole ``(H, W, 3)`` uint8 BGR image: untracked :class:`Detections` in that
        image's pixels (clipped, sides >= ``MIN_PLATE_SIDE_PX``), best first, ``class_id`` 0. The
        image runs at ``PLATE_IMGSZ`` (640), or with ``small`` at the crop input size
        (``Settings.plate_crop_imgsz``, 320): ~1/4 the cost, and the size at which a plate that
        spans most of the image is found whole (see :class:`CloseupPlateTracker`). Raises
        ``ValueError`` for a non-image."""
        check_image(image_bgr, "image_bgr")
        h, w = image_bgr.shape[:2]
        return Detections.from_ultralytics(self._predict([image_bgr], crops=small)[0], w, h, min_side=MIN_PLATE_SIDE_PX)

    def detect_in_vehicles(
        self,
        frame_bgr: np.ndarray,
        vehicles: Detections | Sequence[BBox] | np.ndarray,
        max_per_vehicle: int = 1,
        hints: Sequence[BBox | None] | None = None,
    ) -> list[Detections]:
        """Plates inside each vehicle box, detected on the vehicle crop (grown by
        ``VEHICLE_MARGIN``, clipped) and mapped back to **frame** pixels.

        ``vehicles``: :class:`Detections` or ``(N, 4)`` xyxy boxes in frame pixels. Returns one
        :class:`Detections` per vehicle (same order), best first, at most ``max_per_vehicle``
        (default 1: a vehicle carries one plate visible from one side; extra boxes are mostly
        another car's plate seen through the crop margin). Vehicles narrower than
        ``MIN_VEHICLE_WIDTH_PX`` (or lower than 8 px) get an empty one without running the detector.

        ``hints``: per vehicle, where its plate is expected (a box in frame pixels, e.g. the track's
        last plate box moved with its vehicle box: :meth:`dashcam.alpr.FrameReader.read`) or
        ``None``. A vehicle whose crop would run at 640 and that has a hint is first searched in
        the region around the hint only (the hint grown by ``HINT_MARGIN``, clipped to the vehicle
        crop) at ``Settings.plate_hint_imgsz`` (192, ~1/10 the cost of 640); when that finds no plate, or one
        touching a region edge that is not the crop's (it may be cut off), the whole crop runs at
        640 as without a hint. ``self.calls`` counts detector runs by kind (``"320"``, ``"640"``,
        ``"hint"``, ``"hint_miss"``); ``self.hint_misses`` holds the indices of this call's
        vehicles whose hint region gave nothing.
        """
        check_image(frame_bgr, "frame_bgr")
        h, w = frame_bgr.shape[:2]
        boxes = (
            vehicles.xyxy if isinstance(vehicles, Detections) else np.asarray(vehicles, dtype=np.float64).reshape(-1, 4)
        )
        results = [Detections.empty() for _ in range(len(boxes))]
        self.hint_misses = set()
        crops, where = [], []
        for i, vb in enumerate(boxes):
            if vb[2] - vb[0] < MIN_VEHICLE_WIDTH_PX or vb[3] - vb[1] < 8:
                continue
            x1, y1, x2, y2 = expand_bbox(vb, VEHICLE_MARGIN, VEHICLE_MARGIN, w, h)
            crops.append(frame_bgr[y1:y2, x1:x2])
            where.append((i, x1, y1, x2, y2))
        if not crops:
            return results
        # a crop that fits the small input (with CROP_SIZE_SLACK) goes there; a larger one would be
        # downscaled and lose plate pixels (measured: big plates missed at 320), so it runs at 640,
        # unless the region around its hint finds the plate at the hint input. Small crops take no
        # hint: zoomed in, the hint region finds plate-like boxes on road clips' small cars that the
        # crop does not, and their tracks are then read every frame (measured: vehdet 7 -> 13 tries)
        fits = [max(c.shape[:2]) <= CROP_SIZE_SLACK * self.crop_imgsz for c in crops]
        small = [k for k, f in enumerate(fits) if f]
        large = [k for k, f in enumerate(fits) if not f]
        if hints is not None and large and 0 < self.hint_imgsz < self.crop_imgsz:
            large = self._search_hints(frame_bgr, large, where, hints, results, max_per_vehicle)
        for group, use_crop_model in ((small, True), (large, False)):
            if not group:
                continue
            self.calls[str(self.crop_imgsz if use_crop_model else self.image_imgsz)] += len(group)
            for res, k in zip(self._predict([crops[k] for k in group], crops=use_crop_model), group, strict=True):
                i, ox, oy = where[k][:3]
                found = Detections.from_ultralytics(res, w, h, offset=(ox, oy), min_side=MIN_PLATE_SIDE_PX)
                results[i] = found[:max_per_vehicle]
        return results

    def _search_hints(
        self,
        frame_bgr: np.ndarray,
        ks: list[int],
        where: list[tuple[int, int, int, int, int]],
        hints: Sequence[BBox | None],
        results: list[Detections],
        max_per_vehicle: int,
    ) -> list[int]:
        """Search the hint regions of the crops ``ks`` (indices into ``where``: vehicle index and
        crop bounds in frame pixels) at the hint input; fill ``results`` for those found and
        return the crops that still need their whole-crop run."""
        h, w = frame_bgr.shape[:2]
        regions, todo, rest = [], [], []
        for k in ks:
            i, cx1, cy1, cx2, cy2 = where[k]
            hint = hints[i]
            if hint is None:
                rest.append(k)
                continue
            rx1, ry1, rx2, ry2 = expand_bbox(hint, HINT_MARGIN[0], HINT_MARGIN[1], w, h)
            rx1, ry1, rx2, ry2 = max(rx1, cx1), max(ry1, cy1), min(rx2, cx2), min(ry2, cy2)
            if rx2 - rx1 < 8 or ry2 - ry1 < 8:
                rest.append(k)
                continue
            regions.append(frame_bgr[ry1:ry2, rx1:rx2])
            todo.append((k, (rx1, ry1, rx2, ry2), (cx1, cy1, cx2, cy2)))
        if not regions:
            return rest
        self.calls["hint"] += len(regions)
        for res, (k, (rx1, ry1, rx2, ry2), crop) in zip(self._predict(regions, hint=True), todo, strict=True):
            found = Detections.from_ultralytics(res, w, h, offset=(rx1, ry1), min_side=MIN_PLATE_SIDE_PX)
            if len(found) and not _cut_by_region(found.box(0), (rx1, ry1, rx2, ry2), crop):
                results[where[k][0]] = found[:max_per_vehicle]
            else:
                self.calls["hint_miss"] += 1
                self.hint_misses.add(where[k][0])
                rest.append(k)
        return sorted(rest)


def _cut_by_region(box: BBox, region: tuple[int, int, int, int], crop: tuple[int, int, int, int]) -> bool:
    """Does plate ``box`` touch (within ``HINT_EDGE_PX``) an edge of the hint ``region`` that is not
    also an edge of the vehicle ``crop`` (all frame pixels)? Then the plate may go on outside the
    region and its box be cut off."""
    for side in range(4):
        if region[side] == crop[side]:
            continue
        if abs(box[side] - region[side]) <= HINT_EDGE_PX:
            return True
    return False


class CloseupPlateTracker:
    """Plates whose vehicle the vehicle detector does not see, tracked over frames.

    When a car stands right in front of the camera its plate and bumper fill the frame and the
    COCO vehicle model (320 px input) finds no vehicle, so the vehicle-crop path reads nothing
    (plates-video ``Video171_2``: a 530 px plate on a 640 px frame, no vehicle in any frame). For
    such frames :meth:`update` runs the plate detector on the **whole frame at its small input
    size** (``Settings.plate_crop_imgsz``, 320; :meth:`PlateDetector.detect` with ``small``): the
    plate model boxes only part of a plate that is ~500 px wide at its 640 input
    (``96-LKH-9`` -> ``LKH9``, IoU ~0.5) but the whole plate at 320 (IoU 0.84-0.89, conf ~0.77),
    at ~60 ms instead of ~220 ms. Plates that small at 320 are read by the vehicle-crop path.
    Plate boxes are associated over frames by ultralytics' ByteTrack (same configuration as
    :class:`~dashcam.alpr.vehicles.VehicleTracker`); ids are ``TRACK_ID_BASE + n`` so they never
    collide with vehicle track ids of the same video. Which frames get a pass is decided by the
    caller (:class:`dashcam.alpr.schedule.PlateReadScheduler`). Not thread-safe.
    """

    TRACK_ID_BASE = 1_000_000
    CLS = NO_CLASS  # "no vehicle class": class_id of close-up plate tracks

    def __init__(self, settings: Settings, detector: PlateDetector):
        self.detector = detector
        self._cfg = tracker_cfg(settings)
        self.tracker: Any = None
        self.reset()

    def reset(self) -> None:
        """Fresh ByteTrack state for a new video."""
        self.tracker = new_tracker(self._cfg)

    def update(self, frame_bgr: np.ndarray) -> Detections:
        """Detect (whole frame, small input) and track plates in one ``(H, W, 3)`` uint8 BGR frame.
        Returns confirmed plate tracks as tracked :class:`Detections` of **plate** boxes (frame
        pixels), ``class_id`` ``CLS``."""
        from ultralytics.engine.results import Boxes

        h, w = frame_bgr.shape[:2]
        found = self.detector.detect(frame_bgr, small=True)
        data = np.column_stack([found.xyxy, found.confidence, np.zeros(len(found))]).astype(np.float32).reshape(-1, 6)
        rows = self.tracker.update(Boxes(data, (h, w)), frame_bgr)
        return Detections.from_tracks(rows, w, h, self.TRACK_ID_BASE, self.CLS)
