"""Vehicles: COCO YOLO detection and ultralytics' ByteTrack tracking.

COCO YOLO (``Settings.vehicle_model``, imgsz 320) keeps car, motorcycle, bus, truck (COCO 2, 3, 5,
7); detections are associated over frames by **ultralytics' own ByteTrack implementation**
(``ultralytics.trackers.BYTETracker``, Zhang et al. 2022, "ByteTrack: Multi-Object Tracking by
Associating Every Detection Box"), configured by the ultralytics tracker YAML named in
``Settings.tracker``. The tracker object is owned by the :class:`VehicleTracker` (not by the cached
model's predictor), so the shared model can also serve :func:`dashcam.alpr.read_image` and other
trackers. A dynamic-int8 ONNX model runs as its fp32 copy (``Settings.vehicle_fp32``,
:func:`dashcam.models.dequantize_dynamic_onnx`, ~3x faster on CPU).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from dashcam.alpr.detections import Detections
from dashcam.alpr.geometry import check_image
from dashcam.models import ModelRetargetError, load_yolo, onnx_fp32, resolve_device, resolve_model

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.settings import Settings

VEHICLE_CLASSES = (2, 3, 5, 7)  # COCO car, motorcycle, bus, truck
VEHICLE_IMGSZ = 320  # the int8 YOLOv8n export is fixed 1x3x320x320

log = logging.getLogger(__name__)


def tracker_cfg(settings: Settings) -> Any:
    """Load the ultralytics tracker YAML and adapt it to our detection rate and thresholds.

    * ``track_buffer`` is counted in *tracker updates* (frames fed), and the stock YAMLs assume
      ~30 fps. We feed ``settings.detect_fps`` frames per second, so it is rescaled to keep the
      same lost-track time in seconds (30 frames -> 1 s), floored at 3 updates.
    * ``settings.vehicle_conf`` becomes the high-score / new-track threshold (never below the
      YAML's); lower-score boxes (down to ``track_low_thresh``) still feed ByteTrack's second
      association stage, which is the point of ByteTrack.

    Returns an ultralytics ``IterableSimpleNamespace``; raises ``FileNotFoundError`` for an
    unknown tracker YAML.
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
    cfg.device = resolve_device(settings.device).torch_device
    return cfg


def new_tracker(cfg: Any) -> Any:
    """A fresh ultralytics tracker (ByteTrack for ``bytetrack.yaml``) from :func:`tracker_cfg`.

    Note: ultralytics restarts its track-id counter when a tracker is made.
    """
    from ultralytics.trackers.track import TRACKER_MAP

    return TRACKER_MAP[cfg.tracker_type](args=cfg)


class VehicleTracker:
    """Detect vehicles per frame and give them stable ids with ultralytics' ByteTrack.

    ``update(frame)`` must be called with consecutive analysed frames of **one** video (at
    ``settings.detect_fps``); call :meth:`reset` before the next video. Not thread-safe.
    Raises :class:`dashcam.models.ModelNotFoundError` at construction if the model is missing,
    :class:`dashcam.models.InferenceDeviceError` for a GPU ``settings.device`` this machine lacks.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.device = resolve_device(settings.device).torch_device  # what ultralytics' predict gets
        path = resolve_model(settings.vehicle_model, settings.model_dir)
        if settings.vehicle_fp32:
            # dynamic-int8 ONNX -> fp32 copy with the same weights: ~3x faster on onnxruntime's CPU
            # kernels (dashcam.models.dequantize_dynamic_onnx); other models are used as they are
            try:
                path = onnx_fp32(path)
            except ModelRetargetError as e:
                log.warning("vehicle model runs as it is: %s", e)
        self.model = load_yolo(path, "detect", None, settings.device)
        self._cfg = tracker_cfg(settings)
        self._det_conf = min(float(settings.vehicle_conf), float(self._cfg.track_low_thresh))
        self.tracker: Any = None
        self.n_detections = 0  # detections >= vehicle_conf seen since reset (for run stats)
        self.reset()

    def reset(self) -> None:
        """Fresh ByteTrack state (ids restart at 1) for a new video."""
        self.tracker = new_tracker(self._cfg)
        self.n_detections = 0

    def _predict(self, frame_bgr: np.ndarray, conf: float) -> Any:
        check_image(frame_bgr, "frame_bgr")
        return self.model.predict(
            frame_bgr,
            imgsz=VEHICLE_IMGSZ,
            classes=list(VEHICLE_CLASSES),
            conf=conf,
            device=self.device,
            verbose=False,
        )[0]

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        """Vehicles in one ``(H, W, 3)`` uint8 BGR image without tracking: untracked
        :class:`Detections` (boxes in image pixels, clipped; COCO class ids), confidence >=
        ``settings.vehicle_conf``, best first. Does not touch tracker state. Raises ``ValueError``
        for a non-image."""
        res = self._predict(frame_bgr, float(self.settings.vehicle_conf))
        h, w = frame_bgr.shape[:2]
        return Detections.from_ultralytics(res, w, h)

    def update(self, frame_bgr: np.ndarray) -> Detections:
        """Detect + track one frame (``(H, W, 3)`` uint8 BGR). Returns confirmed tracks only as
        tracked :class:`Detections` (ByteTrack hides a new track until it is activated; detections
        without a track id are dropped). Boxes are ByteTrack's (Kalman-smoothed) boxes in frame
        pixels, clipped; ``class_id`` the COCO class."""
        res = self._predict(frame_bgr, self._det_conf)
        boxes = res.boxes.cpu().numpy()
        self.n_detections += int((boxes.conf >= self.settings.vehicle_conf).sum())
        h, w = frame_bgr.shape[:2]
        return Detections.from_tracks(self.tracker.update(boxes, frame_bgr), w, h)
