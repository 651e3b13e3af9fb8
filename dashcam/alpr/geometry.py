"""Box geometry, in one place: clip, expand to a crop, IoU / IoA, centre inside (and the image check).

Every box is ``(x1, y1, x2, y2)`` in **pixels of one image** (for video: the source frame at its
full resolution), origin top-left, ``x2 >= x1``, ``y2 >= y1``. A single box is a
:data:`~dashcam.records.BBox` (a tuple of 4 floats) or anything indexable like it; arrays of boxes
are ``(N, 4)`` floating numpy arrays. Overlaps come from ultralytics (``bbox_ioa``) and clipping
from ultralytics' ``clip_boxes``; what ultralytics does not have (integer crop bounds with a margin,
centre-in-box) is here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dashcam.records import BBox

BoxLike = Sequence[float] | np.ndarray


def clip_boxes(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip ``(N, 4)`` xyxy boxes to ``[0, width] x [0, height]`` (ultralytics ``ops.clip_boxes``).

    Returns a new float64 ``(N, 4)`` array; the input is not modified.
    """
    from ultralytics.utils.ops import clip_boxes as _clip

    return _clip(np.array(xyxy, dtype=np.float64).reshape(-1, 4), (int(height), int(width)))


def clip_bbox(bbox: BoxLike, width: int, height: int) -> BBox:
    """One box clipped to ``[0, width] x [0, height]``: a tuple of 4 Python floats."""
    x1, y1, x2, y2 = (float(v) for v in clip_boxes(np.asarray([bbox], dtype=np.float64), width, height)[0])
    return x1, y1, x2, y2


def expand_bbox(bbox: BoxLike, mx: float, my: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow ``bbox`` by fractions ``mx``, ``my`` of its width/height on each side (negative:
    shrink), clip to the ``width`` x ``height`` image and round outwards to integer pixel bounds
    usable as ``image[y1:y2, x1:x2]`` (may be empty for a degenerate box)."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    w, h = x2 - x1, y2 - y1
    ex1 = int(np.floor(max(0.0, x1 - mx * w)))
    ey1 = int(np.floor(max(0.0, y1 - my * h)))
    ex2 = int(np.ceil(min(float(width), x2 + mx * w)))
    ey2 = int(np.ceil(min(float(height), y2 + my * h)))
    return ex1, ey1, ex2, ey2


def pixel_bounds(bbox: BoxLike, width: int, height: int) -> tuple[int, int, int, int]:
    """``bbox`` rounded to the nearest integer pixels and clipped to the image: slice bounds
    ``image[y1:y2, x1:x2]`` of the box itself (no margin)."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in bbox)
    return max(0, x1), max(0, y1), min(int(width), x2), min(int(height), y2)


def box_area(bbox: BoxLike) -> float:
    """Area of one box in px^2 (``(x2 - x1) * (y2 - y1)``, no clipping at 0)."""
    return float((bbox[2] - bbox[0]) * (bbox[3] - bbox[1]))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` ``(N, 4)`` with every box of ``b`` ``(M, 4)``: ``(N, M)`` float64
    (ultralytics ``bbox_ioa(iou=True)``, eps 1e-7 in the denominator)."""
    from ultralytics.utils.metrics import bbox_ioa

    return bbox_ioa(
        np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4), iou=True
    )


def iou(a: BoxLike, b: BoxLike) -> float:
    """IoU of two boxes in the same pixel frame, in ``[0, 1]`` (ultralytics ``bbox_ioa``)."""
    return float(iou_matrix(np.asarray([a]), np.asarray([b]))[0, 0])


def ioa(inner: BoxLike, outer: BoxLike) -> float:
    """Share of ``inner``'s area that lies inside ``outer``, in ``[0, 1]`` (ultralytics ``bbox_ioa``)."""
    from ultralytics.utils.metrics import bbox_ioa

    return float(bbox_ioa(np.asarray([outer], dtype=np.float64), np.asarray([inner], dtype=np.float64))[0, 0])


def centre_inside(inner: BoxLike, outer: BoxLike) -> bool:
    """Does the centre of ``inner`` lie inside ``outer`` (edges included)?"""
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return bool(outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3])


def check_image(image: np.ndarray, what: str = "image") -> None:
    """Raise ``ValueError`` (one line) unless ``image`` is an ``(H, W, 3)`` numpy array (uint8 BGR
    is what every model here expects)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must be an HxWx3 uint8 BGR array, got {getattr(image, 'shape', type(image))}")
