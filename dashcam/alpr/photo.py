"""The photo reader (``dashcam read IMAGE``): every plate in one still image, no tracking."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import cv2
import numpy as np

from dashcam.alpr.detections import Detections
from dashcam.alpr.geometry import centre_inside, check_image, clip_bbox, ioa, iou
from dashcam.alpr.ocr import PlateReader
from dashcam.alpr.plates import PlateDetector
from dashcam.alpr.vehicles import VehicleTracker
from dashcam.records import BBox
from dashcam.vote import apply_format_prior, plausible_plate

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.settings import Settings

# The largest photo decoded (pixels, from its header). Pillow's decompression-bomb limit
# (2 x PIL.Image.MAX_IMAGE_PIXELS = 178,956,970 px, ~540 MB as BGR): Pillow refuses to open
# larger headers at all, and OpenCV's own 2^30 limit is far above it.
MAX_IMAGE_PIXELS = 2 * 89_478_485

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
DUPLICATE_IOU = 0.3  # a plate box overlapping a kept one at least this much is the same plate


class ImageReadError(ValueError):
    """A file given to :func:`read_image` is missing, unreadable, or not a decodable image."""


class _Found(NamedTuple):
    plate: BBox  # image pixels
    conf: float  # plate detector score; 0.0 = the whole image taken as the plate
    car: BBox | None  # the vehicle box it lies in, if any


def image_size(path: Path | str) -> tuple[int, int] | None:
    """``(width, height)`` in pixels from an image file's header (nothing decoded), or None
    when Pillow does not know the format (OpenCV may still read it).

    Raises:
        ImageReadError: the header declares more than :data:`MAX_IMAGE_PIXELS` pixels.
    """
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


def load_image(path: Path | str) -> np.ndarray:
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


def read_image(path: Path | str, settings: Settings) -> list[dict]:
    """Find and read every plate in one photo (``dashcam read IMAGE``).

    Procedure: vehicles (no tracking) -> plates inside each vehicle crop (best per vehicle) ->
    plus plates on the **full image**, kept when they do not overlap a plate already found
    (IoU < 0.3). The full-image pass always runs: it catches plates of vehicles the small
    320 px vehicle detector misses (close-ups where the car fills the frame, partial cars) at
    one extra plate-detector call per photo. When no vehicle is found, the image also runs at
    the small plate input (as :class:`~dashcam.alpr.plates.CloseupPlateTracker` does in video): a
    plate spanning most of the image is boxed whole there, and that box replaces 640-pass boxes
    lying inside it. When all of that finds nothing, the image is tried **as a plate image** (a
    tight crop such as the archive's own plate crops): letterboxed into a canvas
    ``LETTERBOX_SCALE`` x its size so the detector sees a plate at its usual scale, and, if still
    nothing, read whole when its aspect is plate-like (``PLATE_ASPECT``; then ``plate_conf`` is 0.0,
    and the result is kept only when it reads as a plausible plate with ``text_conf`` >=
    ``WHOLE_IMAGE_MIN_CONF``). Each plate is OCR'd from :func:`~dashcam.alpr.ocr.crop_plate`, with
    the plate formats of :func:`dashcam.region.plate_priors` (no GPS here: an explicit setting,
    else the country of ``camera_tz`` / this machine's timezone).

    Returns a list of dicts (the JSON form ``dashcam read`` prints), best plate-detector
    confidence first::

        {"plate_bbox": [x1, y1, x2, y2], "plate_conf": float, "text": str (A-Z0-9),
         "raw_text": str, "text_conf": float, "car_bbox": [x1, y1, x2, y2] | None}

    in the image's pixel coordinates (rounded to 0.1 px). Raises :class:`ImageReadError` for a
    missing or undecodable file and ``ModelNotFoundError`` when a model is missing.
    """
    return read_array(load_image(path), settings)


def _find_plates(img: np.ndarray, vehicles: Detections, pdet: PlateDetector) -> list[_Found]:
    """Plate boxes of one image (``vehicles``: its untracked vehicle detections) by the passes of
    :func:`read_image`, in the order found."""
    car_boxes = vehicles.boxes()
    found: list[_Found] = []

    def new(pb: BBox) -> bool:
        return all(iou(pb, f.plate) < DUPLICATE_IOU for f in found)

    for vb, plates in zip(car_boxes, pdet.detect_in_vehicles(img, vehicles), strict=True):
        for pb, pc in plates:
            if new(pb):
                found.append(_Found(pb, pc, vb))
    for pb, pc in pdet.detect(img):
        if new(pb):
            found.append(_Found(pb, pc, next((vb for vb in car_boxes if centre_inside(pb, vb)), None)))
    if not len(vehicles):
        # close-up (no vehicle found): as in video (CloseupPlateTracker), the image at the small
        # input boxes a plate that spans most of it whole, where 640 boxes part of it; such a box
        # replaces the boxes lying inside it
        for pb, pc in pdet.detect(img, small=True):
            parts = [f for f in found if ioa(f.plate, pb) >= 0.8]
            if parts or new(pb):
                found = [f for f in found if not any(f is p for p in parts)] + [_Found(pb, pc, None)]
    return found or _plate_image(img, pdet)


def read_array(img: np.ndarray, settings: Settings, timings: dict | None = None) -> list[dict]:
    """:func:`read_image` on an already decoded ``(H, W, 3)`` uint8 BGR image (same result
    format). If ``timings`` is given, adds per-stage wall times in ms under ``vehicles`` (model
    loading + vehicle detection), ``plates`` (plate detection), ``ocr``. Raises ``ValueError``
    for a non-image."""
    from dashcam.region import plate_priors

    check_image(img)
    t0 = time.perf_counter()
    vt = VehicleTracker(settings)
    pdet = PlateDetector(settings)
    reader = PlateReader(settings)
    vehicles = vt.detect(img)
    t1 = time.perf_counter()
    found = _find_plates(img, vehicles, pdet)
    t2 = time.perf_counter()
    regions = plate_priors(settings)  # explicit setting, else camera_tz's / this machine's country
    texts = reader.read_boxes(img, [f.plate for f in found], regions=regions)
    t3 = time.perf_counter()
    if timings is not None:
        for k, v in (("vehicles", t1 - t0), ("plates", t2 - t1), ("ocr", t3 - t2)):
            timings[k] = timings.get(k, 0.0) + 1000 * v
    out: list[dict[str, Any]] = []
    for (pb, pc, vb), t in zip(found, texts, strict=True):
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


def _plate_image(img: np.ndarray, pdet: PlateDetector) -> list[_Found]:
    """Plates of an image on which vehicle and whole-image passes found none (see
    ``LETTERBOX_SCALE``), in ``img`` pixels; the whole image with ``conf`` 0.0 when only its shape
    says it is a plate; ``[]`` otherwise."""
    h, w = img.shape[:2]
    cw, ch = int(round(w * LETTERBOX_SCALE)), int(round(h * LETTERBOX_SCALE))
    side = max(cw, ch)
    ox, oy = (side - w) // 2, (side - h) // 2
    canvas = np.full((side, side, 3), LETTERBOX_FILL, np.uint8)
    canvas[oy : oy + h, ox : ox + w] = img
    out: list[_Found] = []
    for small in (False, True):
        for pb, pc in pdet.detect(canvas, small=small):
            bb = clip_bbox((pb[0] - ox, pb[1] - oy, pb[2] - ox, pb[3] - oy), w, h)
            if bb[2] - bb[0] >= 4 and bb[3] - bb[1] >= 4 and all(iou(bb, f.plate) < DUPLICATE_IOU for f in out):
                out.append(_Found(bb, pc, None))
        if out:
            return out
    if PLATE_ASPECT[0] <= w / max(h, 1) <= PLATE_ASPECT[1]:
        return [_Found((0.0, 0.0, float(w), float(h)), 0.0, None)]
    return []
