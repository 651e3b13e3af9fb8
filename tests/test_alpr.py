"""ALPR core on real models and real images/frames (no mocks).

Models come from ``$DASHCAM_MODEL_DIR`` (default ``<shared>/models``); data from
``$DASHCAM_SHARED_DIR`` (see tests/helpers.py).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import csv_rows, model_dir, shared_dir

from dashcam.alpr import (
    Detections,
    ImageReadError,
    PlateDetector,
    PlateReader,
    VehicleTracker,
    crop_plate,
    iou,
    normalize_plate,
    plate_sharpness,
    read_array,
    read_image,
)
from dashcam.models import ModelNotFoundError, resolve_model
from dashcam.settings import Settings

IMAGES = shared_dir() / "data" / "plates-images"
VIDEOS = shared_dir() / "data" / "plates-video"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(model_dir=model_dir(), camera_tz="UTC")  # UTC: no country, so no region prior


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
    return {r["file"]: r for r in csv_rows(IMAGES / "labels.csv")}


@pytest.mark.parametrize(
    "rel",
    [
        "endtoend/us/0b86cecf-67d1-4fc0-87c9-b36b0ee228bb.jpg",
        "endtoend/eu/eu1.jpg",
        "endtoend/eu/eu11.jpg",
        # misread by PP-OCR on plate fonts (W->N, 4->L, W->07, H->U, a cut first character),
        # read right by the plate recogniser with no region prior (issue 14)
        "endtoend/us/wts-lg-000087.jpg",  # 383WJP
        "endtoend/us/wts-lg-000146.jpg",  # 4EEU387
        "endtoend/us/wts-lg-000169.jpg",  # 47366J1
        "endtoend/us/wts-lg-000189.jpg",  # FK4W3L
        "endtoend/us/wts-lg-000013.jpg",  # DH5X9P
        "endtoend/us/car9-7.jpg",  # ASV9218
        "endtoend/eu/test_036.jpg",  # RK708AI
        "endtoend/eu/test_060.jpg",  # BA302OZ
    ],
)
def test_read_image_labelled_photos(rel, settings):
    """Default settings (plate recogniser, ``plate_formats`` auto; the fixture's ``camera_tz``
    UTC names no country, so no region prior: what a new user anywhere gets without GPS)."""
    row = _labels()[rel]
    res = read_image(IMAGES / rel, settings)
    gt = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
    best = max(res, key=lambda d: iou(d["plate_bbox"], gt))
    assert iou(best["plate_bbox"], gt) >= 0.5
    assert best["text"] == normalize_plate(row["plate_text"])
    assert 0.5 < best["text_conf"] <= 1.0
    assert 0.0 < best["plate_conf"] <= 1.0
    assert set(best) == {"plate_bbox", "plate_conf", "text", "raw_text", "text_conf", "car_bbox"}


@pytest.mark.parametrize(
    "rel", ["endtoend/eu/eu1.jpg", "endtoend/us/wts-lg-000087.jpg", "endtoend/us/wts-lg-000169.jpg"]
)
def test_tight_plate_crop_reads(rel, settings, tmp_path):
    """An image that is itself a plate (the labelled box + 4%: a user's crop, an OCR benchmark
    image) reads as that plate: read_image letterboxes it for the detector, and failing that
    reads the plate-shaped image whole (issue 14)."""
    row = _labels()[rel]
    img = cv2.imread(str(IMAGES / rel))
    x1, y1, x2, y2 = (float(row[k]) for k in ("x1", "y1", "x2", "y2"))
    mx, my = 0.04 * (x2 - x1), 0.04 * (y2 - y1)
    crop = img[int(max(0, y1 - my)) : int(y2 + my), int(max(0, x1 - mx)) : int(x2 + mx)]
    cv2.imwrite(str(tmp_path / "plate.png"), crop)
    res = read_image(tmp_path / "plate.png", settings)
    assert [d["text"] for d in res] == [normalize_plate(row["plate_text"])]
    h, w = crop.shape[:2]
    bx1, by1, bx2, by2 = res[0]["plate_bbox"]
    assert 0 <= bx1 < bx2 <= w and 0 <= by1 < by2 <= h  # in the crop's own pixels


@pytest.mark.parametrize("rel", ["endtoend/us/us2.jpg", "endtoend/us/wts-lg-000163.jpg"])
def test_photo_without_found_plate_is_not_read_whole(rel, settings):
    """A car photo on which no plate is found is not passed off as a plate image: read whole,
    it reads at ~0.1 confidence, below WHOLE_IMAGE_MIN_CONF (no invented plate)."""
    assert all(d["plate_conf"] > 0.0 for d in read_image(IMAGES / rel, settings))


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
    assert all(isinstance(fr, Detections) and fr.tracker_id is not None for fr in per_frame)
    assert all(set(fr.class_id.tolist()) <= {2, 3, 5, 7} for fr in per_frame)
    ids = [set(fr.tracker_id.tolist()) for fr in per_frame[2:]]
    common = set.intersection(*ids)
    assert common, f"no track id survives over consecutive frames: {ids}"
    h, w = frames[0].shape[:2]
    for fr in per_frame:
        for x1, y1, x2, y2 in fr.boxes():
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    # reset: ids restart at 1 for a new video
    vt.reset()
    vt.update(frames[0])
    again = vt.update(frames[1])
    assert len(again) and again.tracker_id.min() == 1


def test_plate_detector_and_reader_on_video_frame(settings):
    """Frame 0 of a Dutch clip: plate found inside the vehicle, box matches boxes.csv, text read."""
    clip = "TrainingSet/Categorie I/Video10_2.avi"
    row = next(r for r in csv_rows(VIDEOS / "boxes.csv") if r["file"] == clip and r["clip_frame"] == "0")
    gt = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
    frame = _frames(VIDEOS / clip, 1, 1)[0]
    vehicles = VehicleTracker(settings).detect(frame)
    assert vehicles
    pd = PlateDetector(settings)
    plates = pd.detect_in_vehicles(frame, [v[0] for v in vehicles])
    found = [p for ps in plates for p in ps]
    assert max(iou(p[0], gt) for p in found) >= 0.5
    full = pd.detect(frame)
    assert max(iou(p[0], gt) for p in full) >= 0.5
    best = max(found, key=lambda p: iou(p[0], gt))
    reader = PlateReader(settings)
    assert reader.read_boxes(frame, [best[0]])[0].text == normalize_plate(row["plate_text"])
    t = reader.read(crop_plate(frame, best[0]))
    assert t.text == "XSNB23" and 0.5 < t.conf <= 1 and len(t.char_confs) == 6


def test_closeup_plate_without_vehicle_is_tracked_and_read(settings, tmp_path):
    """Video171_2: a Dutch plate filling the frame (530 of 640 px), no vehicle detected in any
    frame. The close-up pass (whole frame at the small plate-detector input) boxes the whole plate
    (at 640 only ``LKH-9`` is boxed), keeps one plate track id above the vehicle id range, and
    ``analyze`` + the vote turn it into one event with the labelled text."""
    from dashcam.alpr import CloseupPlateTracker
    from dashcam.pipeline import analyze, build_events
    from dashcam.video import probe

    clip = "TrainingSet/Categorie I/Video171_2.avi"
    rows = [r for r in csv_rows(VIDEOS / "boxes.csv") if r["file"] == clip]
    gt = tuple(float(rows[0][k]) for k in ("x1", "y1", "x2", "y2"))
    frames = _frames(VIDEOS / clip, 3, 2)
    assert len(VehicleTracker(settings).detect(frames[0])) == 0  # why the vehicle-crop path reads nothing
    pd = PlateDetector(settings)
    assert max(iou(b, gt) for b, _ in pd.detect(frames[0])) < 0.6  # 640: part of the plate only
    cu = CloseupPlateTracker(settings, pd)
    tracks = [cu.update(f) for f in frames]
    assert all(len(t) == 1 for t in tracks)
    assert len({t.track(0) for t in tracks}) == 1 and tracks[0].track(0) > CloseupPlateTracker.TRACK_ID_BASE
    assert tracks[0].class_id.tolist() == [CloseupPlateTracker.CLS]
    assert iou(tracks[0].box(0), gt) >= 0.8
    assert PlateReader(settings).read_boxes(frames[0], tracks[0].boxes())[0].text == "96LKH9"
    # the photo path (dashcam read) does the same when it finds no vehicle
    [photo] = read_array(frames[0], settings)
    assert photo["text"] == "96LKH9" and iou(photo["plate_bbox"], gt) >= 0.8

    s = settings.model_copy(update={"camera_tz": "UTC"})
    info = probe(VIDEOS / clip, "UTC")
    events = build_events(info, analyze(info, s, tmp_path), s)
    assert [e.final_plate for e in events] == ["96LKH9"]
    off = settings.model_copy(update={"camera_tz": "UTC", "closeup_plates": False})
    assert build_events(info, analyze(info, off, tmp_path / "off"), off) == []


def test_onnx_sessions_run_without_thread_spinning(settings):
    """Every onnxruntime session the pipeline runs on CPU (vehicles, plates at both sizes, OCR)
    has intra-op spinning off (dashcam.models.cpu_session; docs/performance.md step 4), and the
    swapped sessions still give the same detections and reading."""
    from dashcam.alpr.ocr import _ConstrainedRec

    def spin(sess) -> str:
        return sess.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    vt, pd = VehicleTracker(settings), PlateDetector(settings)
    # models are loaded (and their sessions swapped) once per process, not per tracker/detector
    assert VehicleTracker(settings).model is vt.model and PlateDetector(settings).crop_model is pd.crop_model
    for m in (vt.model, pd.image_model, pd.crop_model):
        assert spin(m.predictor.model.backend.session) == "0"
    assert spin(_ConstrainedRec().rec.session.session) == "0"
    reader = PlateReader(settings)  # the default plate recogniser: loaded once, no spinning
    assert reader.engine == "plate" and PlateReader(settings)._plate is reader._plate
    assert spin(reader._plate.rec.model) == "0"
    frame = _frames(VIDEOS / "TrainingSet/Categorie I/Video10_2.avi", 1, 1)[0]
    [[(pb, _)]] = pd.detect_in_vehicles(frame, [max(vt.detect(frame), key=lambda v: v[1])[0]])
    assert PlateReader(settings).read_boxes(frame, [pb])[0].text == "XSNB23"


def test_plate_hint_region_finds_the_plate_at_the_small_input(settings):
    """Video10_2, a 634 px wide car (its crop runs at 640 without a hint) with a 246 px plate:
    the plate box of frame 0 moved with the vehicle box to frame 2 is the hint; the region around
    it (at ``plate_hint_imgsz``, 192) finds the same plate as the whole crop at 640 and reads the
    same text, with no 640 run. A hint where the plate is not (the car's roof) finds nothing
    there, and the whole crop runs at 640 and finds the plate."""
    from dashcam.alpr.frames import moved_with

    clip = "TrainingSet/Categorie I/Video10_2.avi"
    f0, f2 = _frames(VIDEOS / clip, 2, 2)
    vt, pd, reader = VehicleTracker(settings), PlateDetector(settings), PlateReader(settings)

    def car(frame):
        return max(vt.detect(frame).boxes(), key=lambda b: b[2] - b[0])

    v0, v2 = car(f0), car(f2)
    assert v2[2] - v2[0] > 1.25 * pd.crop_imgsz  # a crop that runs at 640 without a hint
    [[(p0, _)]] = pd.detect_in_vehicles(f0, [v0])
    [[(full, _)]] = pd.detect_in_vehicles(f2, [v2])
    assert pd.calls["640"] == 2 and pd.hint_imgsz == 192
    [[(hinted, _)]] = pd.detect_in_vehicles(f2, [v2], hints=[moved_with(p0, v0, v2)])
    assert pd.calls["hint"] == 1 and pd.calls["hint_miss"] == 0 and pd.calls["640"] == 2
    assert iou(hinted, full) >= 0.8
    assert reader.read_boxes(f2, [hinted])[0].text == reader.read_boxes(f2, [full])[0].text == "XSNB23"
    roof = (v2[0] + 0.3 * (v2[2] - v2[0]), v2[1], v2[0] + 0.5 * (v2[2] - v2[0]), v2[1] + 20)
    [[(fallback, _)]] = pd.detect_in_vehicles(f2, [v2], hints=[roof])
    assert pd.calls["hint_miss"] == 1 and pd.calls["640"] == 3 and iou(fallback, full) >= 0.99
    spin = pd._hint_model.predictor.model.backend.session.get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning"
    )
    assert spin == "0"


def test_frame_reader_searches_near_the_last_plate(settings):
    """FrameReader over the first analysed frames of Video100_2: after the first sight, the big
    car's plate is searched only around its last position (one 640 run in all), and the reads
    are those of the labelled plate."""
    from dashcam.alpr import FrameReader
    from dashcam.vote import fold

    fr = FrameReader(settings)
    texts = []
    for k, frame in enumerate(_frames(VIDEOS / "TrainingSet/Categorie III/Video100_2.avi", 6, 2)):
        texts += [r.text for r in fr.read(frame, 2 * k, 2 * k / 12).reads]
    assert fr.detector.calls["640"] == 1 and fr.detector.calls["hint"] >= 4
    assert sum(fold(t) == fold("62PBVT") for t in texts) >= 2 and len(texts) >= 5


def test_plate_sharpness_orders_blur():
    frame = _frames(VIDEOS / "TrainingSet/Categorie I/Video10_2.avi", 1, 1)[0]
    crop = frame[310:365, 210:435]
    assert plate_sharpness(crop) > 3 * plate_sharpness(cv2.GaussianBlur(crop, (9, 9), 3))
    assert plate_sharpness(np.zeros((0, 0, 3), np.uint8)) == 0.0


# --------------------------------------------------------------------------------------------
# Plate model re-targeted to another input size (dashcam.models.retarget_yolo_onnx)
# --------------------------------------------------------------------------------------------


def test_retargeted_plate_model_same_boxes_at_640_and_finds_plate_at_320(tmp_path, settings):
    """The boxes-only 640 copy gives the original export's boxes; the 320 copy still finds the
    labelled plate inside the vehicle crop (real photo, real model)."""
    from ultralytics import YOLO

    from dashcam.models import retarget_yolo_onnx, yolo_onnx_at_imgsz

    src = resolve_model(settings.plate_model, settings.model_dir)
    rel = "endtoend/us/0b86cecf-67d1-4fc0-87c9-b36b0ee228bb.jpg"
    row = _labels()[rel]
    gt = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
    img = cv2.imread(str(IMAGES / rel))
    orig = YOLO(src, task="segment").predict(img, imgsz=640, conf=0.35, verbose=False)[0]
    p640 = retarget_yolo_onnx(src, tmp_path / "p640.onnx", 640)
    r640 = YOLO(str(p640), task="detect").predict(img, imgsz=640, conf=0.35, verbose=False)[0]
    assert r640.masks is None and len(r640.boxes) == len(orig.boxes) >= 1
    np.testing.assert_allclose(r640.boxes.xyxy.numpy(), orig.boxes.xyxy.numpy(), atol=1e-3)
    np.testing.assert_allclose(r640.boxes.conf.numpy(), orig.boxes.conf.numpy(), atol=1e-3)

    p320 = Path(yolo_onnx_at_imgsz(src, 320))
    mtime = p320.stat().st_mtime_ns
    assert yolo_onnx_at_imgsz(src, 320) == str(p320) and p320.stat().st_mtime_ns == mtime  # made once
    vb = VehicleTracker(settings).detect(img).box(0)
    x1, y1, x2, y2 = (int(v) for v in vb)
    r320 = YOLO(str(p320), task="detect").predict(img[y1:y2, x1:x2], imgsz=320, conf=0.35, verbose=False)[0]
    boxes = [(b[0] + x1, b[1] + y1, b[2] + x1, b[3] + y1) for b in r320.boxes.xyxy.tolist()]
    assert max(iou(b, gt) for b in boxes) >= 0.5
    # PlateDetector wires both sizes: crops at Settings.plate_crop_imgsz, whole images at 640
    pd = PlateDetector(settings)
    assert (pd.crop_imgsz, pd.image_imgsz) == (320, 640)


def test_retarget_rejects_other_models_and_bad_sizes(tmp_path, settings):
    from dashcam.models import ModelRetargetError, retarget_yolo_onnx

    src = resolve_model(settings.plate_model, settings.model_dir)
    with pytest.raises(ValueError, match="multiple of 32"):
        retarget_yolo_onnx(src, tmp_path / "x.onnx", 300)
    # YOLOX-Nano: a fixed-size ONNX without YOLOv8 anchor constants
    with pytest.raises(ModelRetargetError):
        retarget_yolo_onnx(model_dir() / "yolox-nano-coco-416.onnx", tmp_path / "y.onnx", 320)
    assert not list(tmp_path.iterdir())  # nothing half-written


# --------------------------------------------------------------------------------------------
# Which vehicles are read per frame (dashcam.alpr.PlateReadScheduler)
# --------------------------------------------------------------------------------------------


def _veh(track_id: int, w: float, h: float | None = None) -> tuple[int, float, float]:
    return track_id, w, h or w / 2


def _vehs(*vehicles: tuple[int, float, float]) -> Detections:
    """Tracked vehicles ``(track_id, w, h)`` with boxes at (100, 100), conf 0.9, COCO car."""
    boxes = [(100.0, 100.0, 100.0 + w, 100.0 + h) for _, w, h in vehicles]
    n = len(vehicles)
    return Detections(np.asarray(boxes).reshape(-1, 4), np.full(n, 0.9), np.full(n, 2), [t for t, _, _ in vehicles])


def _due(sch, vehicles, pts: float) -> list[int]:
    return sch.due(_vehs(*vehicles), pts).tracker_id.tolist()


def _read(track_id: int, text: str, conf: float, pts: float):
    from dashcam.records import PlateRead

    return PlateRead(
        frame_idx=int(pts * 12),
        pts_s=pts,
        track_id=track_id,
        car_bbox=(0, 0, 200, 100),
        car_conf=0.9,
        plate_bbox=(50, 60, 150, 80),
        plate_conf=0.8,
        text=text,
        raw_text=text,
        text_conf=conf,
        plate_area=2000.0,
        sharpness=100.0,
    )


def test_scheduler_skips_small_vehicles_and_settled_tracks():
    from dashcam.alpr import PlateReadScheduler

    s = Settings(plate_min_vehicle_px=96, plate_retry_s=1.0, plate_settle_reads=4, plate_settle_fast_reads=0)
    sch = PlateReadScheduler(s)
    small, big = _veh(1, 60), _veh(2, 300)
    pts = 0.0
    for k in range(4):  # four agreeing confident reads (O/0 folded) settle track 2
        assert _due(sch, [small, big], pts) == [2]
        sch.record([_read(2, "AB10CD" if k % 2 else "ABIOCD", 0.95, pts)])
        pts += 1 / 6
    assert _due(sch, [small, big], pts) == []  # settled: not read again ...
    assert _due(sch, [big], pts + 1.0) == [2]  # ... until plate_retry_s passed


def test_scheduler_settles_sooner_on_high_confidence_reads():
    """Two agreeing reads at >= 0.95 (the plate recogniser on a clear plate) settle a track; reads
    below 0.95, or disagreeing ones, leave it to the 4-read rule."""
    from dashcam.alpr import PlateReadScheduler

    sch = PlateReadScheduler(Settings(plate_retry_s=1.0, plate_settle_reads=4, plate_settle_fast_reads=2))
    a, b, c = _veh(1, 300), _veh(2, 300), _veh(3, 300)
    for k, pts in enumerate((0.0, 1 / 6)):
        assert _due(sch, [a, b, c], pts) == [1, 2, 3]
        sch.record(
            [
                _read(1, "XSNB23", 0.99, pts),
                _read(2, "XSNB23", 0.93, pts),  # confident, but below FAST_SETTLE_CONF
                _read(3, "XSNB23" if k else "XSNB28", 0.99, pts),  # disagreeing
            ]
        )
    assert _due(sch, [a, b, c], 2 / 6) == [2, 3]  # 1 is settled: once per plate_retry_s
    assert _due(sch, [a], 1 / 6 + 1.0) == [1]
    off = PlateReadScheduler(Settings(plate_settle_reads=4, plate_settle_fast_reads=0))
    for pts in (0.0, 1 / 6):
        assert _due(off, [a], pts) == [1]
        off.record([_read(1, "XSNB23", 0.99, pts)])
    assert _due(off, [a], 2 / 6) == [1]


def test_scheduler_unsettled_reads_every_frame_and_backs_off_without_plate():
    from dashcam.alpr import PlateReadScheduler

    sch = PlateReadScheduler(Settings(plate_min_vehicle_px=96, plate_retry_s=1.0, plate_settle_reads=4))
    a, b = _veh(1, 200), _veh(2, 200)
    assert len(_due(sch, [a, b], 0.0)) == 2
    sch.record([_read(1, "AB12CD", 0.6, 0.0)])  # a: plate read (low confidence); b: no plate found
    for pts, b_now, want in (
        (0.2, b, [1]),  # b backs off
        (0.4, _veh(2, 240), [1, 2]),  # b came closer (area x1.44)
        (0.6, _veh(2, 240), [1]),
        (1.5, _veh(2, 240), [1, 2]),
    ):  # plate_retry_s passed
        assert _due(sch, [a, b_now], pts) == want, pts
        sch.record([_read(1, "AB12CD", 0.6, pts)])  # a keeps giving unsettled reads: read every frame
    assert _due(sch, [a], 1.7) == [1]
    assert _due(sch, [a], 1.9) == []  # its last try (1.7) found no plate: a backs off too


def test_scheduler_frame_pass_for_closeups():
    """Whole-frame close-up passes follow the same rule as one pseudo track."""
    from dashcam.alpr import PlateReadScheduler

    sch = PlateReadScheduler(Settings(plate_retry_s=1.0, plate_settle_reads=2))
    assert sch.frame_due(640, 480, 0.0)  # first vehicle-less frame: try
    assert not sch.frame_due(640, 480, 0.5)  # found nothing: back off
    assert sch.frame_due(640, 480, 1.0)
    sch.record([_read(1_000_001, "96LKH9", 0.99, 1.0)], as_track=sch.FRAME_TRACK)
    assert sch.frame_due(640, 480, 1.2)  # a plate is being read: every analysed frame
    sch.record([_read(1_000_001, "96LKH9", 0.99, 1.2)], as_track=sch.FRAME_TRACK)
    assert not sch.frame_due(640, 480, 1.4)  # settled (2 agreeing reads): once per plate_retry_s
    assert sch.frame_due(640, 480, 2.3)


def test_scheduler_off_reads_every_vehicle_every_frame():
    from dashcam.alpr import PlateReadScheduler

    sch = PlateReadScheduler(Settings(plate_min_vehicle_px=32, plate_settle_reads=0))
    vs = [_veh(1, 40), _veh(2, 300)]
    for k in range(5):
        assert len(_due(sch, vs, k / 6)) == 2
        sch.record([_read(2, "AB12CD", 0.99, k / 6)])


def test_vehicle_model_fp32_copy_matches_int8(tmp_path, settings):
    """The fp32 copy of the dynamic-int8 vehicle model has no quantisation ops left and finds the
    same vehicles as the int8 original on a real highway frame (boxes within 3 px)."""
    import onnx
    from ultralytics import YOLO

    from dashcam.models import ModelRetargetError, dequantize_dynamic_onnx

    src = resolve_model(settings.vehicle_model, settings.model_dir)
    dst = dequantize_dynamic_onnx(src, tmp_path / "veh32.onnx")
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert "Conv" in ops and not ops & {"ConvInteger", "DynamicQuantizeLinear"}
    frame = _frames(shared_dir() / "data" / "road-video" / "udacity_vehdet_test_video.mp4", 1, 1)[0]
    kw = dict(imgsz=320, conf=0.25, classes=[2, 3, 5, 7], verbose=False)
    a = YOLO(src, task="detect").predict(frame, **kw)[0].boxes
    b = YOLO(str(dst), task="detect").predict(frame, **kw)[0].boxes
    assert len(a) >= 1
    for box in a.xyxy.numpy():
        assert np.abs(b.xyxy.numpy() - box).max(axis=1).min() <= 3.0
    with pytest.raises(ModelRetargetError):  # not a dynamic-int8 model
        dequantize_dynamic_onnx(model_dir() / "yolox-nano-coco-416.onnx", tmp_path / "x.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["veh32.onnx"]


# --------------------------------------------------------------------------------------------
# Where inference runs (dashcam.models.resolve_device): asked of this machine, no mocks
# --------------------------------------------------------------------------------------------


def _has_cuda() -> bool:
    import onnxruntime as ort
    import torch

    return "CUDAExecutionProvider" in ort.get_available_providers() or torch.cuda.is_available()


def test_device_auto_picks_what_this_machine_has(settings, caplog):
    """``auto`` asks onnxruntime and torch; on a machine without CUDA (CI, this one) it is CPU
    with one log line naming what onnxruntime offers, and every ONNX session the pipeline builds
    runs on the CPU execution provider (``execution_providers``, what the benchmarks print)."""
    import logging

    import onnxruntime as ort

    from dashcam.alpr import FrameReader
    from dashcam.models import execution_providers, resolve_device

    resolve_device.cache_clear()
    with caplog.at_level(logging.INFO, logger="dashcam.models"):
        dev = resolve_device("auto")
    lines = [r.getMessage() for r in caplog.records if r.name == "dashcam.models"]
    assert len(lines) == 1 and lines[0].startswith("inference device: ")
    assert all(p in lines[0] for p in ort.get_available_providers())
    assert resolve_device("cpu").providers == ("CPUExecutionProvider",)
    assert settings.device == "auto"
    FrameReader(settings)
    eps = execution_providers()
    assert (
        "cct_xs_v1_global.onnx" in eps
        and any(n.startswith("platedet") for n in eps)
        and any("yolov8n" in n for n in eps)
    )
    if _has_cuda():  # pragma: no cover - a GPU machine
        assert dev.torch_device.startswith("cuda") or dev.ort_gpu
    else:
        assert (dev.torch_device, dev.providers) == ("cpu", ("CPUExecutionProvider",))
        assert "no CUDA" in dev.reason and set(eps.values()) == {"CPUExecutionProvider"}


def test_device_cuda_where_there_is_none_is_a_one_line_error(settings):
    """An explicit GPU request on a machine without CUDA fails at load with one line saying what
    onnxruntime and torch have and what to set instead; it does not run on CPU silently."""
    from dashcam.alpr import FrameReader
    from dashcam.models import InferenceDeviceError

    if _has_cuda():  # pragma: no cover - a GPU machine
        pytest.skip("this machine has CUDA")
    for dev in ("cuda", "cuda:0", "0"):
        with pytest.raises(InferenceDeviceError) as e:
            FrameReader(settings.model_copy(update={"device": dev}))
        msg = str(e.value)
        assert "\n" not in msg and "CUDAExecutionProvider" in msg and "DASHCAM_DEVICE=auto" in msg
