"""ALPR core: vehicle detection + tracking, plate detection, plate OCR, read scheduling.

Coordinate frames and units
---------------------------
* Images/frames are ``numpy.ndarray`` of shape ``(H, W, 3)``, dtype ``uint8``, **BGR** (OpenCV
  order), as decoded from the video at its full resolution.
* Detections travel as one record, :class:`~dashcam.alpr.detections.Detections` (``xyxy`` ``(N, 4)``
  float64 in pixels of the image passed in - for video: the source frame -, origin top-left,
  clipped to the image; ``confidence`` ``(N,)`` in ``[0, 1]``; ``class_id``; ``tracker_id`` or
  None). Records handed to later stages (:class:`~dashcam.records.PlateRead`) carry
  :data:`~dashcam.records.BBox` tuples of the same boxes.

Modules (in pipeline order)
---------------------------
* :mod:`~dashcam.alpr.detections` - the detection record.
* :mod:`~dashcam.alpr.geometry` - box geometry (clip, expand, IoU, IoA, centre inside).
* :mod:`~dashcam.alpr.vehicles` - :class:`VehicleTracker`: COCO YOLO + ultralytics' ByteTrack.
* :mod:`~dashcam.alpr.plates` - :class:`PlateDetector` (plates in vehicle crops / whole images) and
  :class:`CloseupPlateTracker` (plates whose vehicle is not detected).
* :mod:`~dashcam.alpr.ocr` - :class:`PlateReader` (plate recogniser or PP-OCR), the OCR crop.
* :mod:`~dashcam.alpr.schedule` - :class:`PlateReadScheduler`: which vehicles are read per frame.
* :mod:`~dashcam.alpr.frames` - :class:`FrameReader`: one video frame -> tracks and plate reads.
* :mod:`~dashcam.alpr.photo` - :func:`read_image` / :func:`read_array`: every plate in one photo.

Measured (``bench/accuracy.py images``, 165 openalpr photos, 2 shared CPU cores, default settings:
no region known, no prior): plate capture 98.2%, exact end-to-end read EU 92.6% / US 91.0% (EU
100% when ``O``=``0`` and ``I``=``1``: the labels themselves disagree on those glyphs); PP-OCR read
EU 90.7% / US 82.0% with per-region priors. OCR cost per plate read 18.6x lower than PP-OCR's 4
variants (``bench/accuracy.py ocr``). docs/performance.md has what was tried.

Thread safety: the model objects are cached per process and are **not** thread-safe; use one
:class:`VehicleTracker` / :class:`PlateDetector` / :class:`PlateReader` / :class:`FrameReader` per
worker thread, or serialise calls.
"""

from dashcam.alpr.detections import NO_CLASS, Detections
from dashcam.alpr.frames import FrameReader, FrameReads, read_closeup_plates, read_tracked_frame
from dashcam.alpr.geometry import centre_inside, clip_bbox, clip_boxes, expand_bbox, ioa, iou, pixel_bounds
from dashcam.alpr.ocr import PlateReader, PlateText, crop_plate, normalize_plate, plate_sharpness
from dashcam.alpr.photo import ImageReadError, image_size, load_image, read_array, read_image
from dashcam.alpr.plates import CloseupPlateTracker, PlateDetector
from dashcam.alpr.schedule import PlateReadScheduler
from dashcam.alpr.vehicles import VEHICLE_CLASSES, VehicleTracker

__all__ = [
    "NO_CLASS",
    "VEHICLE_CLASSES",
    "CloseupPlateTracker",
    "Detections",
    "FrameReader",
    "FrameReads",
    "ImageReadError",
    "PlateDetector",
    "PlateReadScheduler",
    "PlateReader",
    "PlateText",
    "VehicleTracker",
    "centre_inside",
    "clip_bbox",
    "clip_boxes",
    "crop_plate",
    "expand_bbox",
    "image_size",
    "ioa",
    "iou",
    "load_image",
    "normalize_plate",
    "pixel_bounds",
    "plate_sharpness",
    "read_array",
    "read_closeup_plates",
    "read_image",
    "read_tracked_frame",
]
