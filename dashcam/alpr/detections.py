"""One detection record for every stage: vehicles, plates, tracked or not.

Modelled on supervision's ``Detections`` (one dataclass of parallel numpy arrays, validated at
construction, built ``from_ultralytics``), without taking supervision as a dependency: the few
operations used here (build, index, sort, offset + clip) are smaller than the package.

Boxes are **float64**, not supervision's float32: the ByteTrack boxes (Kalman state) and the
crop-to-frame offsets are float64, and rounding them to float32 (up to ~3e-5 px) can move an
integer crop edge (:func:`dashcam.alpr.geometry.expand_bbox`), so the pipeline's reads would not be
provably unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dashcam.alpr.geometry import clip_boxes
from dashcam.records import BBox

NO_CLASS = -1  # class_id of detections without an object class (close-up plates, frame passes)


@dataclass(frozen=True, eq=False)
class Detections:
    """``N`` detections in one image.

    Attributes:
        xyxy: ``(N, 4)`` float64, ``(x1, y1, x2, y2)`` in pixels of the image they were found in
            (for video: the source frame), origin top-left.
        confidence: ``(N,)`` float64 detector scores in ``[0, 1]``.
        class_id: ``(N,)`` int64 (COCO ids for vehicles: 2, 3, 5, 7; plates and frame passes
            :data:`NO_CLASS`).
        tracker_id: ``(N,)`` int64 track ids, or ``None`` for untracked detections. ByteTrack ids
            are >= 1 and unique within one video (one tracker reset).

    Construction validates shapes and dtypes (coercing numbers to float64/int64) and raises
    ``ValueError`` (one line) for mismatched lengths, a non-``(N, 4)`` box array, or a non-finite
    box or score. Box order (``x2 >= x1``) is not enforced: a tracker's predicted box is passed on
    as it is (a degenerate vehicle box is then too narrow to be read).
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float64)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"Detections.xyxy must be (N, 4), got shape {xyxy.shape}")
        n = len(xyxy)
        conf = np.asarray(self.confidence, dtype=np.float64).reshape(-1)
        cls = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        tid = None if self.tracker_id is None else np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
        for name, arr in (("confidence", conf), ("class_id", cls), ("tracker_id", tid)):
            if arr is not None and len(arr) != n:
                raise ValueError(f"Detections.{name} has {len(arr)} entries for {n} boxes")
        if not (np.isfinite(xyxy).all() and np.isfinite(conf).all()):
            raise ValueError("Detections: non-finite box coordinate or score")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cls)
        object.__setattr__(self, "tracker_id", tid)

    # ---------------------------------------------------------------- construction

    @classmethod
    def empty(cls, tracked: bool = False) -> Detections:
        """No detections (with an empty ``tracker_id`` array when ``tracked``)."""
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64) if tracked else None)

    @classmethod
    def from_ultralytics(
        cls,
        result: Any,
        width: int,
        height: int,
        offset: tuple[float, float] = (0.0, 0.0),
        min_side: float = 0.0,
    ) -> Detections:
        """The boxes of one ``ultralytics.engine.results.Results`` (``result.boxes``: xyxy, conf,
        cls in the pixels of the image that was predicted on), shifted by ``offset`` ``(ox, oy)``
        pixels (the crop's origin in the frame), clipped to the ``width`` x ``height`` frame,
        boxes with a side < ``min_side`` px dropped, sorted by confidence, best first (stable)."""
        boxes = result.boxes
        xyxy = np.asarray(boxes.xyxy.tolist(), dtype=np.float64).reshape(-1, 4)
        xyxy = clip_boxes(xyxy + np.asarray([offset[0], offset[1], offset[0], offset[1]]), width, height)
        det = cls(xyxy, np.asarray(boxes.conf.tolist()), np.asarray(boxes.cls.tolist()).astype(np.int64))
        if min_side > 0:
            det = det[(det.widths >= min_side) & (det.heights >= min_side)]
        return det.sorted()

    @classmethod
    def from_tracks(
        cls, rows: Any, width: int, height: int, id_base: int = 0, class_id: int | None = None
    ) -> Detections:
        """ultralytics tracker output rows ``(x1, y1, x2, y2, track_id, score, cls, det_idx)`` ->
        tracked detections, boxes clipped to the ``width`` x ``height`` frame, ``id_base`` added to
        each track id, ``class_id`` (when given) replacing the rows' class. Row order is kept."""
        rows = np.asarray(rows, dtype=np.float64)
        if not rows.size:
            return cls.empty(tracked=True)
        rows = rows.reshape(-1, rows.shape[-1])
        cls_ids = rows[:, 6].astype(np.int64) if class_id is None else np.full(len(rows), class_id, np.int64)
        return cls(clip_boxes(rows[:, :4], width, height), rows[:, 5], cls_ids, id_base + rows[:, 4].astype(np.int64))

    # ---------------------------------------------------------------- access

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | list[int] | np.ndarray) -> Detections:
        """A subset (int, slice, index list or boolean mask), as a new :class:`Detections`."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            None if self.tracker_id is None else self.tracker_id[index],
        )

    def box(self, i: int) -> BBox:
        """Box ``i`` as a tuple of 4 Python floats (the :data:`~dashcam.records.BBox` of records)."""
        x1, y1, x2, y2 = (float(v) for v in self.xyxy[i])
        return x1, y1, x2, y2

    def boxes(self) -> list[BBox]:
        """Every box as a :data:`~dashcam.records.BBox` tuple, in order."""
        return [self.box(i) for i in range(len(self))]

    def track(self, i: int) -> int:
        """Track id of detection ``i``; ``ValueError`` when the detections are not tracked."""
        if self.tracker_id is None:
            raise ValueError("Detections are not tracked (tracker_id is None)")
        return int(self.tracker_id[i])

    def __iter__(self) -> Iterator[tuple[BBox, float]]:
        """``(box, confidence)`` per detection, in order."""
        for i in range(len(self)):
            yield self.box(i), float(self.confidence[i])

    @property
    def widths(self) -> np.ndarray:
        """``(N,)`` box widths in px."""
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def heights(self) -> np.ndarray:
        """``(N,)`` box heights in px."""
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    def sorted(self) -> Detections:
        """The same detections, highest confidence first (stable for ties)."""
        return self[np.argsort(-self.confidence, kind="stable")]

    def __repr__(self) -> str:
        tracked = "" if self.tracker_id is None else f", tracks {self.tracker_id.tolist()}"
        return f"Detections({len(self)}: conf {np.round(self.confidence, 3).tolist()}{tracked})"
