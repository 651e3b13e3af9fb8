"""ALPR core on real models and real images/frames (no mocks).

Models come from ``$DASHCAM_MODEL_DIR`` (default ``<shared>/models``); data from
``$DASHCAM_SHARED_DIR`` (see tests/helpers.py).
"""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from dashcam.alpr import (
    ImageReadError,
    PlateDetector,
    PlateReader,
    VehicleTracker,
    crop_plate,
    normalize_plate,
    plate_sharpness,
    read_image,
)
from dashcam.models import ModelNotFoundError, resolve_model
from dashcam.settings import Settings

from helpers import model_dir, shared_dir

IMAGES = shared_dir() / "data" / "plates-images"
VIDEOS = shared_dir() / "data" / "plates-video"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(model_dir=model_dir())


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / u


def test_normalize_plate():
    assert normalize_plate("xs-nb 23") == "XSNB23"
    assert normalize_plate("粤B·12345") == "B12345"
    assert normalize_plate("") == ""


def test_resolve_model(tmp_path, monkeypatch):
    monkeypatch.delenv("DASHCAM_MODEL_DIR", raising=False)
    name = "yolov8n-coco-int8-320.onnx"
    explicit = model_dir() / name
    assert resolve_model(str(explicit), None) == str(explicit.resolve())
    assert resolve_model(name, model_dir()) == str(explicit.resolve())
    monkeypatch.setenv("DASHCAM_MODEL_DIR", str(model_dir()))
    assert resolve_model(name, tmp_path) == str(explicit.resolve())
    monkeypatch.delenv("DASHCAM_MODEL_DIR")
    with pytest.raises(ModelNotFoundError, match="DASHCAM_MODEL_DIR"):
        resolve_model(name, tmp_path)
    with pytest.raises(FileNotFoundError):
        resolve_model("no-such-model.onnx", tmp_path)
    # ultralytics-downloadable names are passed through (downloaded on machines with internet)
    got = resolve_model("yolo11n.pt", tmp_path)
    assert got == "yolo11n.pt" or got.endswith("/yolo11n.pt")  # bare name, or a cached local copy


def _labels() -> dict[str, dict]:
    with open(IMAGES / "labels.csv", encoding="utf-8") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


@pytest.mark.parametrize(
    "rel",
    [
        "endtoend/us/0b86cecf-67d1-4fc0-87c9-b36b0ee228bb.jpg",
        "endtoend/eu/eu1.jpg",
        "endtoend/eu/eu11.jpg",
    ],
)
def test_read_image_labelled_photos(rel, settings):
    row = _labels()[rel]
    res = read_image(IMAGES / rel, settings)
    gt = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
    best = max(res, key=lambda d: _iou(d["plate_bbox"], gt))
    assert _iou(best["plate_bbox"], gt) >= 0.5
    assert best["text"] == normalize_plate(row["plate_text"])
    assert 0.5 < best["text_conf"] <= 1.0
    assert 0.0 < best["plate_conf"] <= 1.0
    assert set(best) == {"plate_bbox", "plate_conf", "text", "raw_text", "text_conf", "car_bbox"}


def test_read_image_rejects_non_images(tmp_path, settings):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(ImageReadError):
        read_image(bad, settings)
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "missing.jpg", settings)


def _frames(path, n: int, step: int):
    cap = cv2.VideoCapture(str(path))
    out = []
    idx = 0
    while len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        if idx % step == 0:
            out.append(f)
        idx += 1
    cap.release()
    return out


def test_vehicle_tracker_keeps_ids(settings):
    """Udacity highway clip (25 fps) fed at ~6 fps: the cars ahead keep their ids."""
    frames = _frames(shared_dir() / "data" / "road-video" / "udacity_solidWhiteRight.mp4", 8, 4)
    vt = VehicleTracker(settings)
    per_frame = [vt.update(f) for f in frames]
    assert all(isinstance(v.track_id, int) and v.cls in (2, 3, 5, 7) for fr in per_frame for v in fr)
    ids = [set(v.track_id for v in fr) for fr in per_frame[2:]]
    common = set.intersection(*ids)
    assert common, f"no track id survives over consecutive frames: {ids}"
    h, w = frames[0].shape[:2]
    for fr in per_frame:
        for v in fr:
            x1, y1, x2, y2 = v.bbox
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    # reset: ids restart at 1 for a new video
    vt.reset()
    vt.update(frames[0])
    again = vt.update(frames[1])
    assert again and min(v.track_id for v in again) == 1


def test_plate_detector_and_reader_on_video_frame(settings):
    """Frame 0 of a Dutch clip: plate found inside the vehicle, box matches boxes.csv, text read."""
    clip = "TrainingSet/Categorie I/Video10_2.avi"
    row = next(
        r for r in csv.DictReader(open(VIDEOS / "boxes.csv", encoding="utf-8"))
        if r["file"] == clip and r["clip_frame"] == "0"
    )
    gt = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
    frame = _frames(VIDEOS / clip, 1, 1)[0]
    vehicles = VehicleTracker(settings).detect(frame)
    assert vehicles
    pd = PlateDetector(settings)
    plates = pd.detect_in_vehicles(frame, [v[0] for v in vehicles])
    found = [p for ps in plates for p in ps]
    assert max(_iou(p[0], gt) for p in found) >= 0.5
    full = pd.detect(frame)
    assert max(_iou(p[0], gt) for p in full) >= 0.5
    best = max(found, key=lambda p: _iou(p[0], gt))
    reader = PlateReader(settings)
    assert reader.read_boxes(frame, [best[0]])[0].text == normalize_plate(row["plate_text"])
    t = reader.read(crop_plate(frame, best[0]))
    assert t.text == "XSNB23" and 0.5 < t.conf <= 1 and len(t.char_confs) == 6


def test_plate_sharpness_orders_blur():
    frame = _frames(VIDEOS / "TrainingSet/Categorie I/Video10_2.avi", 1, 1)[0]
    crop = frame[310:365, 210:435]
    assert plate_sharpness(crop) > 3 * plate_sharpness(cv2.GaussianBlur(crop, (9, 9), 3))
    assert plate_sharpness(np.zeros((0, 0, 3), np.uint8)) == 0.0
