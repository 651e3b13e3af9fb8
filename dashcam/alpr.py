"""ALPR core: vehicle detection + tracking, plate detection, plate OCR.

Coordinate frames and units
---------------------------
* Images/frames are ``numpy.ndarray`` of shape ``(H, W, 3)``, dtype ``uint8``, **BGR** (OpenCV
  order), as decoded from the video at its full resolution.
* Every :data:`~dashcam.records.BBox` returned here is ``(x1, y1, x2, y2)`` ``float`` in pixels of
  the image passed in (for video: the source frame), origin top-left, ``x2 > x1``, clipped to the
  image. Confidences are floats in ``[0, 1]``.

Stages and models (see :mod:`dashcam.models` for how files are found)
--------------------------------------------------------------------
1. :class:`VehicleTracker` - COCO YOLO (``Settings.vehicle_model``, imgsz 320) keeps car,
   motorcycle, bus, truck (COCO 2, 3, 5, 7); detections are associated over frames by
   **ultralytics' own ByteTrack implementation** (``ultralytics.trackers.BYTETracker``, Zhang et al.
   2022, "ByteTrack: Multi-Object Tracking by Associating Every Detection Box"), configured by the
   ultralytics tracker YAML named in ``Settings.tracker``. The tracker object is owned by the
   :class:`VehicleTracker` (not by the cached model's predictor), so the shared model can also
   serve :func:`read_image` and other trackers; :meth:`VehicleTracker.reset` starts a fresh
   tracker for a new video. A dynamic-int8 ONNX model runs as its fp32 copy
   (``Settings.vehicle_fp32``, :func:`dashcam.models.dequantize_dynamic_onnx`, ~3x faster on CPU).
2. :class:`PlateDetector` - YOLOv8s-seg plate model (``Settings.plate_model``) used for boxes
   only. In video, it runs on each *vehicle crop* (so a 60 px plate on a 1920 px frame reaches
   the detector at useful size) at 320 px input for small crops and 640 for large ones (see the
   class), boxes are mapped back to frame pixels, and the best plate per vehicle is kept. Which
   vehicles are tried in a frame is decided by :class:`dashcam.pipeline.PlateReadScheduler`.
   Frames with no tracked vehicle get a whole-frame pass instead (:class:`CloseupPlateTracker`:
   a plate filling the frame, its car not detected), its plates tracked by their own ByteTrack.
3. :class:`PlateReader` - by default (``Settings.ocr_engine = "plate"``) the fast-plate-ocr plate
   recogniser of :mod:`dashcam.platerec` (CCT-XS v1 global, per-slot softmax over ``0-9A-Z``),
   two crops per plate with their slot probabilities averaged, region plate formats applied over
   those probabilities (constrained decoding). ``"rapidocr"``: PaddleOCR PP-OCRv6 text recogniser
   (CTC) as shipped in the ``rapidocr`` wheel (ONNX on onnxruntime), run by us and decoded with
   the alphabet **restricted to [A-Z0-9]** (lower-case letter probability folded into the
   upper-case letter; separators ``-``, space, ``·``, ``.`` act as blanks): a "constrained CTC
   greedy decode" (Graves et al. 2006 CTC; alphabet restriction as in OpenALPR/fast-plate-ocr
   plate-specific alphabets), with 4 trimmed crop variants, the most confident kept.

Measured (``bench/accuracy.py images``, 165 openalpr photos, 2 shared CPU cores, default settings:
no region known, no prior): plate capture 98.2%, exact end-to-end read EU 92.6% / US 91.0% (EU
100% when ``O``=``0`` and ``I``=``1``: the labels themselves disagree on those glyphs); PP-OCR read
EU 90.7% / US 82.0% with per-region priors. OCR cost per plate read 18.6x lower than PP-OCR's 4
variants (``bench/accuracy.py ocr``). docs/performance.md has what was tried.

Thread safety: the model objects are cached per process and are **not** thread-safe; use one
:class:`VehicleTracker` / :class:`PlateDetector` / :class:`PlateReader` per worker thread, or
serialise calls.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import sys

import numpy as np

from dashcam.models import (
    ModelRetargetError,
    cpu_session,
    load_rapidocr,
    load_yolo,
    onnx_fp32,
    release_freed_memory,
    resolve_model,
    yolo_onnx_at_imgsz,
)
from dashcam.records import BBox
from dashcam.vote import apply_format_prior, plausible_plate

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.records import PlateRead
    from dashcam.settings import Settings

VEHICLE_CLASSES = (2, 3, 5, 7)  # COCO car, motorcycle, bus, truck
VEHICLE_IMGSZ = 320  # the int8 YOLOv8n export is fixed 1x3x320x320
PLATE_IMGSZ = 640  # plate detector input for whole images (the platedet export's own size)
VEHICLE_MARGIN = 0.04  # fraction of vehicle w/h added on each side before plate detection
# vehicle crops up to this x the small plate-detector input run at that size, larger ones at 640
CROP_SIZE_SLACK = 1.25
MIN_VEHICLE_WIDTH_PX = 32  # narrower vehicles cannot carry a readable plate: skipped
# OCR crops: (x, y) fractions of the plate box w/h added on each side (negative = trim). Measured
# on the 161 captured plates of plates-images (bench/accuracy.py): trimming 10% top and bottom
# cuts the US state name / slogan and frame (+3 pt US vs the raw box, +14 pt vs +12% margin);
# reading 4 variants and keeping the most confident gains another ~2 pt (EU folded 96 -> 100%).
PLATE_CROP_MARGIN = (0.03, -0.10)
PLATE_CROP_VARIANTS = ((0.03, -0.10), (0.05, -0.05), (0.03, -0.15), (0.08, -0.10))
# The plate recogniser (ocr_engine "plate") wants context instead: of 8 margins and 20 variant sets
# measured on the 162 captured plates-images plates, the slot probabilities of these two crops
# averaged read best (US 93.5% exact vs 81.5% for PP-OCR's 4 variants; docs/performance.md)
PLATE_MODEL_VARIANTS = ((0.08, 0.10), (0.15, 0.30))

log = logging.getLogger(__name__)

_NON_ALNUM = re.compile(r"[^A-Z0-9]")


class ImageReadError(ValueError):
    """A file given to :func:`read_image` is missing, unreadable, or not a decodable image."""


def normalize_plate(raw: str) -> str:
    """Upper-case ``raw`` and keep only ``[A-Z0-9]`` (ASCII); ``"xs-nb 23"`` -> ``"XSNB23"``."""
    return _NON_ALNUM.sub("", (raw or "").upper())


def plate_sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop (Pech-Pacheco et al. 2000 focus measure).

    ``crop``: ``(H, W, 3)`` BGR or ``(H, W)`` grey uint8. Returns a float >= 0 (0 for an empty
    crop); higher is sharper. Scale-dependent: compare crops of similar size only.
    """
    if crop is None or crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def clip_bbox(bbox, width: int, height: int) -> BBox:
    """Clip ``(x1, y1, x2, y2)`` to ``[0, width] x [0, height]``; returns floats."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return (
        min(max(x1, 0.0), float(width)),
        min(max(y1, 0.0), float(height)),
        min(max(x2, 0.0), float(width)),
        min(max(y2, 0.0), float(height)),
    )


def expand_bbox(bbox, mx: float, my: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow ``bbox`` by fractions ``mx``, ``my`` of its width/height on each side, clip, round to
    integer pixel bounds usable as ``image[y1:y2, x1:x2]``."""
    x1, y1, x2, y2 = bbox
    w, h = x2 - x1, y2 - y1
    ex1 = int(np.floor(max(0.0, x1 - mx * w)))
    ey1 = int(np.floor(max(0.0, y1 - my * h)))
    ex2 = int(np.ceil(min(float(width), x2 + mx * w)))
    ey2 = int(np.ceil(min(float(height), y2 + my * h)))
    return ex1, ey1, ex2, ey2


def crop_plate(image: np.ndarray, plate_bbox, margin: tuple[float, float] = PLATE_CROP_MARGIN):
    """The plate crop used for OCR: ``plate_bbox`` grown by ``margin`` (x, y fractions), clipped.

    Detector boxes are often tight and can shave the first/last character; the margin is what
    the recogniser was trained on (text lines with some background). Returns a view
    ``(h, w, 3)`` uint8 (may be empty for a degenerate box).
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = expand_bbox(plate_bbox, margin[0], margin[1], w, h)
    return image[y1:y2, x1:x2]


def _check_image(image: np.ndarray, what: str = "image") -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must be an HxWx3 uint8 BGR array, got {getattr(image, 'shape', type(image))}")


# --------------------------------------------------------------------------------------------
# Vehicles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackedVehicle:
    """One vehicle in one frame: ByteTrack id (>= 1, unique within one video / tracker reset),
    bbox in frame pixels, detector confidence, COCO class id (2, 3, 5 or 7)."""

    track_id: int
    bbox: BBox
    conf: float
    cls: int


def _tracker_cfg(settings: "Settings"):
    """Load the ultralytics tracker YAML and adapt it to our detection rate and thresholds.

    * ``track_buffer`` is counted in *tracker updates* (frames fed), and the stock YAMLs assume
      ~30 fps. We feed ``settings.detect_fps`` frames per second, so it is rescaled to keep the
      same lost-track time in seconds (30 frames -> 1 s), floored at 3 updates.
    * ``settings.vehicle_conf`` becomes the high-score / new-track threshold (never below the
      YAML's); lower-score boxes (down to ``track_low_thresh``) still feed ByteTrack's second
      association stage, which is the point of ByteTrack.
    """
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    cfg = IterableSimpleNamespace(**YAML.load(check_yaml(settings.tracker)))
    # Other ultralytics trackers (botsort.yaml, ...) also load through TRACKER_MAP; only
    # ByteTrack is tested here (BoT-SORT adds GMC/ReID cost per frame).
    fps = max(float(settings.detect_fps), 0.1)
    cfg.track_buffer = max(3, int(round(cfg.track_buffer * fps / 30.0)))
    cfg.track_high_thresh = max(float(cfg.track_high_thresh), float(settings.vehicle_conf))
    cfg.new_track_thresh = max(float(cfg.new_track_thresh), float(settings.vehicle_conf))
    cfg.device = settings.device
    return cfg


def _new_tracker(cfg):
    """A fresh ultralytics tracker (ByteTrack for ``bytetrack.yaml``) from :func:`_tracker_cfg`."""
    from ultralytics.trackers.track import TRACKER_MAP

    return TRACKER_MAP[cfg.tracker_type](args=cfg)


def _tracked(tracks, w: int, h: int, id_base: int = 0, cls: int | None = None) -> list["TrackedVehicle"]:
    """ByteTrack's output rows ``(x1, y1, x2, y2, track_id, score, cls, det_idx)`` ->
    :class:`TrackedVehicle` (box clipped to the ``w`` x ``h`` frame; ``id_base`` added to the id;
    ``cls`` overrides the row's class when given)."""
    tracks = np.asarray(tracks, dtype=np.float64)
    return [
        TrackedVehicle(id_base + int(r[4]), clip_bbox(r[:4], w, h), float(r[5]), int(r[6]) if cls is None else cls)
        for r in (tracks.reshape(-1, tracks.shape[-1]) if tracks.size else ())
    ]


class VehicleTracker:
    """Detect vehicles per frame and give them stable ids with ultralytics' ByteTrack.

    ``update(frame)`` must be called with consecutive analysed frames of **one** video (at
    ``settings.detect_fps``); call :meth:`reset` before the next video. Not thread-safe.
    Raises :class:`dashcam.models.ModelNotFoundError` at construction if the model is missing.
    """

    def __init__(self, settings: "Settings"):
        self.settings = settings
        path = resolve_model(settings.vehicle_model, settings.model_dir)
        if settings.vehicle_fp32:
            # dynamic-int8 ONNX -> fp32 copy with the same weights: ~3x faster on onnxruntime's CPU
            # kernels (dashcam.models.dequantize_dynamic_onnx); other models are used as they are
            try:
                path = onnx_fp32(path)
            except ModelRetargetError as e:
                log.warning("vehicle model runs as it is: %s", e)
        self.model = load_yolo(path, "detect", None, settings.device)
        self._cfg = _tracker_cfg(settings)
        self._det_conf = min(float(settings.vehicle_conf), float(self._cfg.track_low_thresh))
        self.tracker = None
        self.n_detections = 0  # detections >= vehicle_conf seen since reset (for run stats)
        self.reset()

    def reset(self) -> None:
        """Fresh ByteTrack state (ids restart at 1) for a new video."""
        self.tracker = _new_tracker(self._cfg)
        self.n_detections = 0

    def _predict(self, frame_bgr: np.ndarray, conf: float):
        _check_image(frame_bgr, "frame_bgr")
        return self.model.predict(
            frame_bgr,
            imgsz=VEHICLE_IMGSZ,
            classes=list(VEHICLE_CLASSES),
            conf=conf,
            device=self.settings.device,
            verbose=False,
        )[0]

    def detect(self, frame_bgr: np.ndarray) -> list[tuple[BBox, float, int]]:
        """Vehicles in one image without tracking: ``[(bbox, conf, cls)]``, conf >=
        ``settings.vehicle_conf``, sorted by confidence (descending). Does not touch tracker state."""
        res = self._predict(frame_bgr, float(self.settings.vehicle_conf))
        h, w = frame_bgr.shape[:2]
        out = [
            (clip_bbox(b, w, h), float(c), int(k))
            for b, c, k in zip(res.boxes.xyxy.tolist(), res.boxes.conf.tolist(), res.boxes.cls.tolist())
        ]
        return sorted(out, key=lambda t: -t[1])

    def update(self, frame_bgr: np.ndarray) -> list[TrackedVehicle]:
        """Detect + track one frame (``(H, W, 3)`` uint8 BGR). Returns confirmed tracks only
        (ByteTrack hides a new track until it is activated; detections without a track id are
        dropped). Boxes are ByteTrack's (Kalman-smoothed) boxes in frame pixels, clipped."""
        res = self._predict(frame_bgr, self._det_conf)
        boxes = res.boxes.cpu().numpy()
        self.n_detections += int((boxes.conf >= self.settings.vehicle_conf).sum())
        h, w = frame_bgr.shape[:2]
        return _tracked(self.tracker.update(boxes, frame_bgr), w, h)


# --------------------------------------------------------------------------------------------
# Plates
# --------------------------------------------------------------------------------------------


class PlateDetector:
    """Licence-plate boxes from the YOLOv8-seg plate model (masks are never used).

    Two input sizes of the same weights: whole images at ``PLATE_IMGSZ`` (640) and vehicle crops
    whose longer side is at most ``CROP_SIZE_SLACK`` x ``Settings.plate_crop_imgsz`` (320) at
    that small size: such a crop loses (almost) no pixels there and costs ~1/4 of a 640 run,
    while larger crops keep 640 (downscaling them to 320 missed large plates and cost exact reads
    in bench/accuracy.py). ONNX exports are re-targeted to each size and cut to their box output
    once, cached on disk (:func:`dashcam.models.retarget_yolo_onnx`). The ONNX export has a fixed batch of 1: a
    list of crops goes to ultralytics in one ``predict`` call, which runs them one by one. Not
    thread-safe. Raises ``ModelNotFoundError`` at construction if the model is missing.
    """

    def __init__(self, settings: "Settings"):
        self.settings = settings
        path = resolve_model(settings.plate_model, settings.model_dir)
        self.image_model, self.image_imgsz = self._load(path, PLATE_IMGSZ)
        crop_imgsz = int(settings.plate_crop_imgsz)
        if crop_imgsz == self.image_imgsz:
            self.crop_model, self.crop_imgsz = self.image_model, self.image_imgsz
        else:
            self.crop_model, self.crop_imgsz = self._load(path, crop_imgsz)

    def _load(self, path: str, imgsz: int):
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

    def _predict(self, images: list[np.ndarray], crops: bool = False):
        model, imgsz = (self.crop_model, self.crop_imgsz) if crops else (self.image_model, self.image_imgsz)
        return model.predict(
            images,
            imgsz=imgsz,
            conf=float(self.settings.plate_conf),
            device=self.settings.device,
            retina_masks=False,
            verbose=False,
        )

    @staticmethod
    def _boxes(res, ox: float, oy: float, w: int, h: int) -> list[tuple[BBox, float]]:
        out = []
        for b, c in zip(res.boxes.xyxy.tolist(), res.boxes.conf.tolist()):
            bb = clip_bbox((b[0] + ox, b[1] + oy, b[2] + ox, b[3] + oy), w, h)
            if bb[2] - bb[0] >= 2 and bb[3] - bb[1] >= 2:
                out.append((bb, float(c)))
        return sorted(out, key=lambda t: -t[1])

    def detect(self, image_bgr: np.ndarray, small: bool = False) -> list[tuple[BBox, float]]:
        """Plates in a whole image: ``[(bbox, conf)]`` in that image's pixels, best first. The
        image runs at ``PLATE_IMGSZ`` (640), or with ``small`` at the crop input size
        (``Settings.plate_crop_imgsz``, 320): ~1/4 the cost, and the size at which a plate that
        spans most of the image is found whole (see :class:`CloseupPlateTracker`)."""
        _check_image(image_bgr, "image_bgr")
        h, w = image_bgr.shape[:2]
        return self._boxes(self._predict([image_bgr], crops=small)[0], 0.0, 0.0, w, h)

    def detect_in_vehicles(
        self,
        frame_bgr: np.ndarray,
        vehicle_bboxes: list[BBox],
        max_per_vehicle: int = 1,
    ) -> list[list[tuple[BBox, float]]]:
        """Plates inside each vehicle box, detected on the vehicle crop (grown by
        ``VEHICLE_MARGIN``, clipped) and mapped back to **frame** pixels.

        Returns one list per input box (same order), best first, at most ``max_per_vehicle``
        (default 1: a vehicle carries one plate visible from one side; extra boxes are mostly
        another car's plate seen through the crop margin). Vehicles narrower than
        ``MIN_VEHICLE_WIDTH_PX`` get ``[]`` without running the detector.
        """
        _check_image(frame_bgr, "frame_bgr")
        h, w = frame_bgr.shape[:2]
        results: list[list[tuple[BBox, float]]] = [[] for _ in vehicle_bboxes]
        crops, where = [], []
        for i, vb in enumerate(vehicle_bboxes):
            if vb[2] - vb[0] < MIN_VEHICLE_WIDTH_PX or vb[3] - vb[1] < 8:
                continue
            x1, y1, x2, y2 = expand_bbox(vb, VEHICLE_MARGIN, VEHICLE_MARGIN, w, h)
            crops.append(frame_bgr[y1:y2, x1:x2])
            where.append((i, x1, y1))
        if not crops:
            return results
        # a crop that fits the small input (with CROP_SIZE_SLACK) goes there; a larger one would be
        # downscaled and lose plate pixels (measured: big plates missed at 320), so it runs at 640
        fits = [max(c.shape[:2]) <= CROP_SIZE_SLACK * self.crop_imgsz for c in crops]
        small = [k for k, f in enumerate(fits) if f]
        large = [k for k, f in enumerate(fits) if not f]
        for group, use_crop_model in ((small, True), (large, False)):
            if not group:
                continue
            for res, k in zip(self._predict([crops[k] for k in group], crops=use_crop_model), group):
                i, ox, oy = where[k]
                results[i] = self._boxes(res, ox, oy, w, h)[:max_per_vehicle]
        return results


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
    :class:`VehicleTracker`); ids are ``TRACK_ID_BASE + n`` so they never collide with vehicle
    track ids of the same video. Which frames get a pass is decided by the caller
    (:class:`dashcam.pipeline.PlateReadScheduler`). Not thread-safe.
    """

    TRACK_ID_BASE = 1_000_000
    CLS = -1  # "no vehicle class": TrackedVehicle.cls of close-up plate tracks

    def __init__(self, settings: "Settings", detector: "PlateDetector"):
        self.detector = detector
        self._cfg = _tracker_cfg(settings)
        self.tracker = None
        self.reset()

    def reset(self) -> None:
        """Fresh ByteTrack state for a new video."""
        self.tracker = _new_tracker(self._cfg)

    def update(self, frame_bgr: np.ndarray) -> list[TrackedVehicle]:
        """Detect (whole frame, small input) and track plates in one frame. Returns confirmed
        plate tracks as :class:`TrackedVehicle` whose ``bbox`` is the **plate** box (frame
        pixels) and ``cls`` is ``CLS``."""
        from ultralytics.engine.results import Boxes

        h, w = frame_bgr.shape[:2]
        found = self.detector.detect(frame_bgr, small=True)
        data = np.asarray([[*b, c, 0.0] for b, c in found], dtype=np.float32).reshape(-1, 6)
        return _tracked(self.tracker.update(Boxes(data, (h, w)), frame_bgr), w, h, self.TRACK_ID_BASE, self.CLS)


@dataclass(frozen=True)
class PlateText:
    """One OCR result: ``text`` normalised ``[A-Z0-9]`` (may be ``""``), ``raw_text`` the
    unconstrained greedy decode of the same recogniser output, ``conf`` in [0, 1] (mean of the
    per-character probabilities of ``text``; 0 when empty), ``char_confs`` per character;
    ``slots``: for the plate recogniser, its per-slot probabilities in the compact JSON form of
    :func:`dashcam.platerec.slots_to_json` (``None`` for PP-OCR)."""

    text: str
    raw_text: str
    conf: float
    char_confs: tuple[float, ...] = ()
    slots: list | None = field(default=None, compare=False)


_SEPARATORS = ("-", " ", "·", ".", "•", "=", ":", "_", "—", "–")


class _ConstrainedRec:
    """Run rapidocr's PP-OCR recogniser and CTC-decode with an [A-Z0-9] alphabet."""

    def __init__(self):
        engine = load_rapidocr()
        self.rec = engine._load_rec_model()  # rapidocr.ch_ppocr_rec.TextRecognizer
        # the same recogniser in a session without thread spinning (dashcam.models.cpu_session)
        inner = getattr(self.rec.session, "session", None)
        path = getattr(inner, "_model_path", None)
        if path and inner.get_providers()[0] == "CPUExecutionProvider":
            self.rec.session.session = cpu_session(path)
            release_freed_memory()
        chars = list(self.rec.postprocess_op.character)  # index 0 = "blank"
        self.chars = chars
        self.n = len(chars)
        allowed = [str(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
        idx = {c: i for i, c in enumerate(chars)}
        # (target column, [source columns]) - lower case folded into upper case
        self.groups = []
        for c in allowed:
            src = [idx[c]] if c in idx else []
            if c.isalpha() and c.lower() in idx:
                src.append(idx[c.lower()])
            # full-width forms (e.g. U+FF21) sometimes win on plates
            fw = chr(ord(c) + 0xFEE0)
            if fw in idx:
                src.append(idx[fw])
            if src:
                self.groups.append((c, src))
        self.blank_src = [0] + [idx[s] for s in _SEPARATORS if s in idx]

    def __call__(self, crops: list[np.ndarray]) -> list[PlateText]:
        out: list[PlateText] = []
        b = 6
        for s in range(0, len(crops), b):
            batch = crops[s : s + b]
            _, ih, iw = self.rec.rec_image_shape
            max_ratio = max([iw / ih] + [c.shape[1] / c.shape[0] for c in batch])
            x = np.stack([self.rec.resize_norm_img(c, max_ratio) for c in batch]).astype(np.float32)
            preds = np.asarray(self.rec.session(x))  # (N, T, C) softmax
            for p in preds:
                out.append(self._decode(p))
        return out

    def _decode(self, p: np.ndarray) -> PlateText:
        # raw (unconstrained) greedy decode, for display/debug
        am = p.argmax(axis=1)
        raw, prev = [], -1
        for k in am:
            if k != prev and k != 0:
                raw.append(self.chars[k])
            prev = k
        # constrained: columns = [blank] + allowed chars
        cols = [p[:, self.blank_src].sum(axis=1)]
        names = [""]
        for c, src in self.groups:
            cols.append(p[:, src].sum(axis=1))
            names.append(c)
        q = np.stack(cols, axis=1)
        # residual mass of all other symbols is ignored; renormalise over the kept alphabet
        q = q / np.maximum(q.sum(axis=1, keepdims=True), 1e-9)
        k = q.argmax(axis=1)
        text, confs = [], []
        prev = -1
        for t, kk in enumerate(k):
            if kk != prev and kk != 0:
                text.append(names[kk])
                confs.append(float(q[t, kk]))
            elif kk == prev and kk != 0:
                confs[-1] = max(confs[-1], float(q[t, kk]))
            prev = kk
        txt = "".join(text)
        conf = float(np.mean(confs)) if confs else 0.0
        return PlateText(txt, "".join(raw), conf, tuple(confs))


class PlateReader:
    """Read plate text from a plate crop.

    ``settings.ocr_engine``: ``"plate"`` (default; the fast-plate-ocr plate recogniser of
    :mod:`dashcam.platerec`, crops ``PLATE_MODEL_VARIANTS`` averaged per slot), ``"rapidocr"``
    (PP-OCRv6 rec from the rapidocr wheel, constrained CTC decode, see module docstring) or ``"paddleocr"`` (PaddleOCR 3.x
    ``TextRecognition(model_dir=settings.model_dir / "paddleocr_rec")``; the ``paddleocr``
    package is imported lazily and a clear ``ImportError`` is raised if it is missing).
    Not thread-safe.
    """

    def __init__(self, settings: "Settings"):
        self.settings = settings
        self.engine = settings.ocr_engine
        if self.engine == "plate":
            from dashcam.platerec import load_plate_recognizer

            self._plate = load_plate_recognizer(settings)
        elif self.engine == "rapidocr":
            self._rec = _ConstrainedRec()
        elif self.engine == "paddleocr":
            try:
                from paddleocr import TextRecognition  # noqa: PLC0415
            except ImportError as e:  # pragma: no cover - optional dependency
                raise ImportError(
                    "ocr_engine='paddleocr' needs the optional dependency: pip install "
                    "'dashcam-pipeline[paddle]' (paddleocr>=3, paddlepaddle), and a recogniser "
                    "model folder at <model_dir>/paddleocr_rec"
                ) from e
            if settings.model_dir is None:
                raise ValueError("ocr_engine='paddleocr' needs Settings.model_dir (holding paddleocr_rec/)")
            model_dir = Path(settings.model_dir) / "paddleocr_rec"
            if not model_dir.is_dir():
                raise FileNotFoundError(f"PaddleOCR recogniser model folder not found: {model_dir}")
            self._paddle = TextRecognition(model_dir=str(model_dir))
        else:
            raise ValueError(f"unknown ocr_engine {self.engine!r}")

    def read(self, plate_crop_bgr: np.ndarray) -> PlateText:
        """OCR one plate crop (``(h, w, 3)`` uint8 BGR, e.g. from :func:`crop_plate`)."""
        return self.read_many([plate_crop_bgr])[0]

    @property
    def variants(self) -> tuple[tuple[float, float], ...]:
        """The crop margins this engine reads each plate box with (see :meth:`read_boxes`)."""
        return PLATE_MODEL_VARIANTS if self.engine == "plate" else PLATE_CROP_VARIANTS

    def read_boxes(
        self,
        image_bgr: np.ndarray,
        plate_bboxes: list[BBox],
        variants: tuple[tuple[float, float], ...] | None = None,
        regions: tuple[str, ...] = (),
    ) -> list[PlateText]:
        """OCR plates given by boxes (image pixels) with test-time crop variants: each box is
        cropped with every ``(x, y)`` margin of ``variants`` (default :attr:`variants`; see
        :func:`crop_plate`). Plate recogniser: the crops' slot probabilities are averaged per box
        and decoded once, with the plate formats of ``regions`` (constrained decoding,
        :func:`dashcam.platerec.decode_slots`; ``()`` = as read). PP-OCR: the most confident
        variant is kept (``regions`` is applied by the caller, :func:`dashcam.vote.apply_format_prior`).
        Cost per plate on 2 CPU cores: plate recogniser ~2-4 ms per crop, PP-OCR ~6-20 ms per crop."""
        if not plate_bboxes:
            return []
        variants = self.variants if variants is None else variants
        if self.engine == "plate":
            return self._read_boxes_plate(image_bgr, plate_bboxes, variants, regions)
        crops = [crop_plate(image_bgr, b, m) for b in plate_bboxes for m in variants]
        outs = self.read_many(crops)
        k = len(variants)
        return [max(outs[i * k : (i + 1) * k], key=lambda o: o.conf) for i in range(len(plate_bboxes))]

    def _read_boxes_plate(self, image_bgr, plate_bboxes, variants, regions) -> list[PlateText]:
        from dashcam.platerec import decode_slots, mean_slots, slots_to_json

        crops = [crop_plate(image_bgr, b, m) for b in plate_bboxes for m in variants]
        ok = [min(c.shape[:2]) >= 4 for c in crops]
        probs = self._plate.probs([c for c, g in zip(crops, ok) if g])
        it = iter(probs)
        per_crop = [next(it) if g else None for g in ok]
        k, rec, out = len(variants), self._plate, []
        for i in range(len(plate_bboxes)):
            ps = [p for p in per_crop[i * k : (i + 1) * k] if p is not None]
            if not ps:
                out.append(PlateText("", "", 0.0))
                continue
            p = mean_slots(ps)
            read = decode_slots(p, rec.alphabet, rec.pad, ())
            d = decode_slots(p, rec.alphabet, rec.pad, regions) if regions else read
            out.append(PlateText(d.text, read.text, d.conf, d.char_confs, slots_to_json(p, rec.alphabet, rec.pad)))
        return out

    def read_many(self, crops: list[np.ndarray]) -> list[PlateText]:
        """OCR several crops in batches of 6 (one recogniser call per batch). Empty or
        degenerate crops give ``PlateText("", "", 0.0)``."""
        ok = [i for i, c in enumerate(crops) if c is not None and c.ndim == 3 and min(c.shape[:2]) >= 4]
        res = [PlateText("", "", 0.0)] * len(crops)
        if not ok:
            return res
        # No upscaling: the recogniser resizes to 48 px height itself; cubic pre-upscaling of
        # small crops measured neutral-to-worse (-2 pt US) on plates-images.
        prepped = [np.ascontiguousarray(crops[i]) for i in ok]
        if self.engine == "plate":
            from dashcam.platerec import decode_slots, slots_to_json

            rec = self._plate
            outs = []
            for p in rec.probs(prepped):
                d = decode_slots(p, rec.alphabet, rec.pad, ())
                outs.append(PlateText(d.text, d.text, d.conf, d.char_confs, slots_to_json(p, rec.alphabet, rec.pad)))
        elif self.engine == "rapidocr":
            outs = self._rec(prepped)
        else:  # paddleocr
            outs = []
            for c in prepped:
                r = self._paddle.predict(c)
                r0 = r[0] if r else {}
                raw = str(r0.get("rec_text", ""))
                outs.append(PlateText(normalize_plate(raw), raw, float(r0.get("rec_score", 0.0))))
        for i, o in zip(ok, outs):
            res[i] = o
        return res


# --------------------------------------------------------------------------------------------
# Single image
# --------------------------------------------------------------------------------------------


# The largest photo decoded (pixels, from its header). Pillow's decompression-bomb limit
# (2 x PIL.Image.MAX_IMAGE_PIXELS = 178,956,970 px, ~540 MB as BGR): Pillow refuses to open
# larger headers at all, and OpenCV's own 2^30 limit is far above it.
MAX_IMAGE_PIXELS = 2 * 89_478_485


def image_size(path: Path | str) -> tuple[int, int] | None:
    """``(width, height)`` in pixels from an image file's header (nothing decoded), or None
    when Pillow does not know the format (OpenCV may still read it).

    Raises:
        ImageReadError: the header declares more than :data:`MAX_IMAGE_PIXELS` pixels.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    # ultralytics replaces PIL.Image.open (ultralytics.utils.patches.image_open): on a file Pillow
    # cannot identify it tries to pip-install pi-heif and import it. Use Pillow's own opener.
    opener = getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", Image.open)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with opener(p) as im:
                w, h = im.size
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"image too large: {p}: {exc}".split(", could be")[0]) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError):
        return None
    if w * h > MAX_IMAGE_PIXELS:
        raise ImageReadError(f"image too large: {p} is {w}x{h} = {w * h} pixels (limit {MAX_IMAGE_PIXELS})")
    return w, h


def _load_image(path: Path | str) -> np.ndarray:
    """Decode a photo to ``(H, W, 3)`` uint8 BGR after checking its header size
    (:func:`image_size`). Raises :class:`ImageReadError` (one line) for a missing, oversized
    or undecodable file."""
    p = Path(path)
    if p.is_dir():
        raise ImageReadError(f"is a directory, not an image: {p}")
    if not p.is_file():
        raise ImageReadError(f"image not found: {p}")
    image_size(p)
    data = np.fromfile(str(p), dtype=np.uint8)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error as exc:  # e.g. over OpenCV's own size limit for a format Pillow does not know
        msg = (str(exc).strip().splitlines() or ["OpenCV error"])[-1]
        raise ImageReadError(f"not a readable image (OpenCV: {msg}): {p}") from None
    if img is None:
        raise ImageReadError(f"not a readable image (OpenCV could not decode it): {p}")
    return img


def iou(a: BBox, b: BBox) -> float:
    """IoU of two ``(x1, y1, x2, y2)`` boxes in the same pixel frame (ultralytics' ``bbox_ioa``)."""
    from ultralytics.utils.metrics import bbox_ioa

    return float(bbox_ioa(np.asarray([a], dtype=np.float64), np.asarray([b], dtype=np.float64), iou=True)[0, 0])


def read_image(path: Path | str, settings: "Settings") -> list[dict]:
    """Find and read every plate in one photo (``dashcam read IMAGE``).

    Procedure: vehicles (no tracking) -> plates inside each vehicle crop (best per vehicle) ->
    plus plates on the **full image**, kept when they do not overlap a plate already found
    (IoU < 0.3). The full-image pass always runs: it catches plates of vehicles the small
    320 px vehicle detector misses (close-ups where the car fills the frame, partial cars) at
    one extra plate-detector call per photo. When no vehicle is found, the image also runs at
    the small plate input (as :class:`CloseupPlateTracker` does in video): a plate spanning most
    of the image is boxed whole there, and that box replaces 640-pass boxes lying inside it.
    When all of that finds nothing, the image is tried **as a plate image** (a tight crop such as
    the archive's own plate crops): letterboxed into a canvas ``LETTERBOX_SCALE`` x its size so
    the detector sees a plate at its usual scale, and, if still nothing, read whole when its
    aspect is plate-like (``PLATE_ASPECT``; then ``plate_conf`` is 0.0, and the result is kept only
    when it reads as a plausible plate with ``text_conf`` >= ``WHOLE_IMAGE_MIN_CONF``). Each plate is OCR'd from
    :func:`crop_plate`, with the plate formats of :func:`dashcam.region.plate_priors` (no GPS
    here: an explicit setting, else the country of ``camera_tz`` / this machine's timezone).

    Returns a list of dicts, best plate-detector confidence first::

        {"plate_bbox": [x1, y1, x2, y2], "plate_conf": float, "text": str (A-Z0-9),
         "raw_text": str, "text_conf": float, "car_bbox": [x1, y1, x2, y2] | None}

    in the image's pixel coordinates. Raises :class:`ImageReadError` for a missing or
    undecodable file and ``ModelNotFoundError`` when a model is missing.
    """
    return read_array(_load_image(path), settings)


def read_array(img: np.ndarray, settings: "Settings", timings: dict | None = None) -> list[dict]:
    """:func:`read_image` on an already decoded ``(H, W, 3)`` uint8 BGR image. If ``timings`` is
    given, adds per-stage wall times in ms under ``vehicles``, ``plates``, ``ocr``."""
    import time

    _check_image(img)
    t0 = time.perf_counter()
    vt = VehicleTracker(settings)
    pdet = PlateDetector(settings)
    reader = PlateReader(settings)
    vehicles = vt.detect(img)
    t1 = time.perf_counter()
    found: list[tuple[BBox, float, BBox | None]] = []
    per_vehicle = pdet.detect_in_vehicles(img, [v[0] for v in vehicles])
    for (vb, _, _), plates in zip(vehicles, per_vehicle):
        for pb, pc in plates:
            if all(iou(pb, f[0]) < 0.3 for f in found):
                found.append((pb, pc, vb))
    for pb, pc in pdet.detect(img):
        if all(iou(pb, f[0]) < 0.3 for f in found):
            car = next((v[0] for v in vehicles if _inside(pb, v[0])), None)
            found.append((pb, pc, car))
    if not vehicles:
        # close-up (no vehicle found): as in video (CloseupPlateTracker), the image at the small
        # input boxes a plate that spans most of it whole, where 640 boxes part of it; such a box
        # replaces the boxes lying inside it
        for pb, pc in pdet.detect(img, small=True):
            parts = [f for f in found if _ioa(f[0], pb) >= 0.8]
            if parts or all(iou(pb, f[0]) < 0.3 for f in found):
                found = [f for f in found if not any(f is p for p in parts)] + [(pb, pc, None)]
    if not found:
        found = _plate_image(img, pdet)
    t2 = time.perf_counter()
    from dashcam.region import plate_priors

    regions = plate_priors(settings)  # explicit setting, else camera_tz's / this machine's country
    texts = reader.read_boxes(img, [f[0] for f in found], regions=regions)
    t3 = time.perf_counter()
    if timings is not None:
        for k, v in (("vehicles", t1 - t0), ("plates", t2 - t1), ("ocr", t3 - t2)):
            timings[k] = timings.get(k, 0.0) + 1000 * v
    out = []
    for (pb, pc, vb), t in zip(found, texts):
        if pc == 0.0 and vb is None and (t.conf < WHOLE_IMAGE_MIN_CONF or not plausible_plate(t.text)):
            continue  # the whole image read as a plate (_plate_image), and it does not read as one
        out.append(
            {
                "plate_bbox": [round(v, 1) for v in pb],
                "plate_conf": round(pc, 4),
                # the plate recogniser decoded with the regions' formats already (constrained)
                "text": t.text if reader.engine == "plate" or not t.text else apply_format_prior(t.text, regions),
                "raw_text": t.raw_text,
                "text_conf": round(t.conf, 4),
                "car_bbox": [round(v, 1) for v in vb] if vb is not None else None,
            }
        )
    out.sort(key=lambda d: -d["plate_conf"])
    return out


# An image in which nothing was found is tried as a plate image (a tight crop): it is placed in
# the middle of a grey canvas LETTERBOX_SCALE x its size, so that the plate detector sees a plate
# at the scale it was trained on (a plate filling its input is not found: measured on the
# archive's own crops); if that finds nothing either and the image is plate-shaped (width /
# height in PLATE_ASPECT, single- and two-line plates), the whole image is read as the plate.
LETTERBOX_SCALE = 3.0
LETTERBOX_FILL = 114  # grey, the ultralytics letterbox colour
PLATE_ASPECT = (1.2, 6.5)
# ... and kept only when the recogniser reads it as a plausible plate at least this confidently:
# whole photos and road frames with no plate read as a plate give 0.10-0.13 (measured on the 3
# uncaptured plates-images photos and highway frames), real plate crops > 0.9
WHOLE_IMAGE_MIN_CONF = 0.5


def _plate_image(img: np.ndarray, pdet: "PlateDetector") -> list[tuple[BBox, float, BBox | None]]:
    """Plates of an image on which vehicle and whole-image passes found none (see
    ``LETTERBOX_SCALE``): ``[(plate_bbox, plate_conf, None)]`` in ``img`` pixels; the whole image
    with ``plate_conf`` 0.0 when only its shape says it is a plate; ``[]`` otherwise."""
    h, w = img.shape[:2]
    cw, ch = int(round(w * LETTERBOX_SCALE)), int(round(h * LETTERBOX_SCALE))
    side = max(cw, ch)
    ox, oy = (side - w) // 2, (side - h) // 2
    canvas = np.full((side, side, 3), LETTERBOX_FILL, np.uint8)
    canvas[oy : oy + h, ox : ox + w] = img
    out: list[tuple[BBox, float, BBox | None]] = []
    for small in (False, True):
        for pb, pc in pdet.detect(canvas, small=small):
            bb = clip_bbox((pb[0] - ox, pb[1] - oy, pb[2] - ox, pb[3] - oy), w, h)
            if bb[2] - bb[0] >= 4 and bb[3] - bb[1] >= 4 and all(iou(bb, f[0]) < 0.3 for f in out):
                out.append((bb, pc, None))
        if out:
            return out
    if PLATE_ASPECT[0] <= w / max(h, 1) <= PLATE_ASPECT[1]:
        return [((0.0, 0.0, float(w), float(h)), 0.0, None)]
    return []


def _ioa(inner: BBox, outer: BBox) -> float:
    """Share of ``inner``'s area that lies inside ``outer`` (ultralytics' ``bbox_ioa``)."""
    from ultralytics.utils.metrics import bbox_ioa

    return float(bbox_ioa(np.asarray([outer], dtype=np.float64), np.asarray([inner], dtype=np.float64))[0, 0])


def _inside(inner, outer) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


# --------------------------------------------------------------------------------------------
# One tracked video frame -> PlateRead records
# --------------------------------------------------------------------------------------------


def _plate_reads(frame_bgr, items, texts, frame_idx: int, pts_s: float) -> list["PlateRead"]:
    """PlateRead per ``(vehicle, (plate_bbox, plate_conf))`` item with non-empty OCR text."""
    from dashcam.records import PlateRead

    out = []
    for (v, (pb, pc)), t in zip(items, texts):
        if not t.text:
            continue
        out.append(
            PlateRead(
                frame_idx=int(frame_idx),
                pts_s=float(pts_s),
                track_id=v.track_id,
                car_bbox=v.bbox,
                car_conf=v.conf,
                plate_bbox=pb,
                plate_conf=pc,
                text=t.text,
                raw_text=t.raw_text,
                text_conf=t.conf,
                slot_probs=t.slots,
                plate_area=float((pb[2] - pb[0]) * (pb[3] - pb[1])),
                sharpness=plate_sharpness(crop_plate(frame_bgr, pb)),
            )
        )
    return out


def read_tracked_frame(
    frame_bgr: np.ndarray,
    vehicles: list[TrackedVehicle],
    detector: PlateDetector,
    reader: PlateReader,
    frame_idx: int,
    pts_s: float,
) -> list[PlateRead]:
    """Plates of the tracked ``vehicles`` in one frame -> one :class:`~dashcam.records.PlateRead`
    per vehicle with a detected plate and non-empty text (best plate per vehicle). All boxes in
    frame pixels; ``plate_area`` in px^2; ``sharpness`` from :func:`plate_sharpness` on the OCR
    crop. ``crop_path`` is left ``None`` (the caller writes crops)."""
    plates = detector.detect_in_vehicles(frame_bgr, [v.bbox for v in vehicles])
    todo = [(v, p[0]) for v, p in zip(vehicles, plates) if p]
    texts = reader.read_boxes(frame_bgr, [pb for _, (pb, _) in todo])
    return _plate_reads(frame_bgr, todo, texts, frame_idx, pts_s)


def read_closeup_plates(
    frame_bgr: np.ndarray,
    plates: list[TrackedVehicle],
    reader: PlateReader,
    frame_idx: int,
    pts_s: float,
) -> list[PlateRead]:
    """OCR the plate tracks of :meth:`CloseupPlateTracker.update` in one frame: one
    :class:`~dashcam.records.PlateRead` per plate with non-empty text, ``car_bbox`` = ``plate_bbox``
    = the tracked plate box and ``car_conf`` = ``plate_conf`` = its detector score (there is no
    vehicle box)."""
    todo = [(p, (p.bbox, p.conf)) for p in plates]
    texts = reader.read_boxes(frame_bgr, [p.bbox for p in plates])
    return _plate_reads(frame_bgr, todo, texts, frame_idx, pts_s)
