"""The detection record and box geometry of dashcam.alpr (pure numpy; boxes from a real labelled
photo where a real box matters)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers import shared_dir

from dashcam.alpr import Detections, centre_inside, clip_bbox, clip_boxes, expand_bbox, ioa, iou, pixel_bounds
from dashcam.alpr.geometry import box_area, iou_matrix


def _labelled_boxes() -> np.ndarray:
    with open(shared_dir() / "data" / "plates-images" / "labels.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:20]
    return np.asarray([[float(r[k]) for k in ("x1", "y1", "x2", "y2")] for r in rows])


def test_iou_and_ioa_known_values():
    a, b = (0.0, 0.0, 10.0, 10.0), (5.0, 0.0, 15.0, 10.0)
    assert iou(a, b) == pytest.approx(50 / 150)
    assert iou(a, a) == pytest.approx(1.0)
    assert iou(a, (20.0, 20.0, 30.0, 30.0)) == 0.0
    assert ioa((2.0, 2.0, 4.0, 4.0), a) == pytest.approx(1.0)  # inner wholly inside
    assert ioa(b, a) == pytest.approx(0.5)
    assert centre_inside(b, a) is True  # centre (10, 5) on the edge: edges included
    assert centre_inside((6.0, 0.0, 16.0, 10.0), a) is False and centre_inside((8.0, 8.0, 11.0, 11.0), a) is True


def test_iou_matrix_matches_pairwise_on_real_boxes():
    boxes = _labelled_boxes()
    m = iou_matrix(boxes, boxes[::-1])
    assert m.shape == (len(boxes), len(boxes))
    for i, a in enumerate(boxes):
        for j, b in enumerate(boxes[::-1]):
            ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            union = box_area(a) + box_area(b) - ix * iy
            assert m[i, j] == pytest.approx(ix * iy / union, abs=1e-6)


def test_clip_and_crop_bounds():
    assert clip_bbox((-5, 10, 700, 490), 640, 480) == (0.0, 10.0, 640.0, 480.0)
    src = np.asarray([[-5.0, 10.0, 700.0, 490.0]])
    np.testing.assert_array_equal(clip_boxes(src, 640, 480), [[0.0, 10.0, 640.0, 480.0]])
    assert src[0, 0] == -5.0  # input not modified (ultralytics clips in place)
    # 10% of a 100 x 20 box on each side, rounded outwards, clipped to the image
    assert expand_bbox((10.5, 10.5, 110.5, 30.5), 0.1, 0.1, 115, 100) == (0, 8, 115, 33)
    assert expand_bbox((10.0, 10.0, 110.0, 30.0), 0.0, -0.25, 640, 480) == (10, 15, 110, 25)
    assert pixel_bounds((-0.4, 2.6, 99.5, 480.7), 640, 480) == (0, 3, 100, 480)


def test_detections_validate_and_index():
    boxes = _labelled_boxes()[:4]
    d = Detections(boxes.astype(np.float32), [0.5, 0.9, 0.7, 0.9], [2, 3, 5, 7], [4, 1, 2, 3])
    assert d.xyxy.dtype == np.float64 and d.class_id.dtype == np.int64 and d.tracker_id.dtype == np.int64
    assert len(d) == 4 and len(d[1:3]) == 2 and len(d[d.confidence > 0.6]) == 3
    s = d.sorted()
    assert s.confidence.tolist() == [0.9, 0.9, 0.7, 0.5] and s.tracker_id.tolist() == [1, 3, 2, 4]  # stable
    assert d[2].box(0) == tuple(float(v) for v in d.xyxy[2]) and d.track(0) == 4
    assert [c for _, c in d] == [0.5, 0.9, 0.7, 0.9]
    np.testing.assert_allclose(d.widths, boxes[:, 2] - boxes[:, 0], rtol=1e-6)
    empty = Detections.empty(tracked=True)
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4) and empty.boxes() == []
    with pytest.raises(ValueError, match="not tracked"):
        Detections.empty().track(0)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        Detections(np.zeros((2, 3)), [0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="confidence has 1 entries for 2 boxes"):
        Detections(np.zeros((2, 4)), [0.1], [0, 0])
    with pytest.raises(ValueError, match="non-finite"):
        Detections(np.asarray([[0.0, 0.0, np.nan, 1.0]]), [0.1], [0])


def test_detections_from_tracker_rows():
    """ultralytics tracker rows (x1, y1, x2, y2, id, score, cls, det_idx) -> clipped, id-offset records."""
    rows = np.asarray([[-3.0, 5.0, 50.0, 60.0, 7, 0.8, 2, 0], [600.0, 400.0, 700.0, 500.0, 9, 0.6, 7, 1]])
    d = Detections.from_tracks(rows, 640, 480)
    assert d.tracker_id.tolist() == [7, 9] and d.class_id.tolist() == [2, 7]
    assert d.boxes() == [(0.0, 5.0, 50.0, 60.0), (600.0, 400.0, 640.0, 480.0)]
    cu = Detections.from_tracks(rows, 640, 480, id_base=1_000_000, class_id=-1)
    assert cu.tracker_id.tolist() == [1_000_007, 1_000_009] and cu.class_id.tolist() == [-1, -1]
    assert len(Detections.from_tracks(np.zeros((0, 8)), 640, 480)) == 0
