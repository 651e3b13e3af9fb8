"""Privacy blur (issue 16 point 5, dashcam.blur): real clip, real models, real ffmpeg.

The clip is plates-video ``Categorie I/Video10_2.avi`` (3 s, 640x480, 12 fps, plate XS-NB-23 in
every frame). The project's own plate detector + recogniser read every frame of the archive
copies; the blurred copy must read nothing where the plain one reads the plate. Faces
(``plates+faces``): the same clip with a real face pasted on (tests/data/astronaut_face.jpg),
checked with dlib's face detector.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import model_dir, shared_dir

from dashcam.records import TrackBox

CLIP = shared_dir() / "data" / "plates-video" / "TrainingSet" / "Categorie I" / "Video10_2.avi"


def test_plan_follows_the_track_between_analysed_frames():
    from dashcam.blur import PAD_X, plan_plate_blur

    # a vehicle moving right 10 px per analysed frame (step 5); its plate read only at frame 0
    boxes = [
        TrackBox(
            frame_idx=f,
            track_id=3,
            car_bbox=(100 + 2 * f, 100, 300 + 2 * f, 250),
            plate_bbox=(150, 200, 250, 230) if f == 0 else None,
        )
        for f in range(0, 30, 5)
    ]
    boxes.append(TrackBox(frame_idx=10, track_id=4, car_bbox=(400, 100, 500, 200)))  # never read: nothing
    plan = plan_plate_blur(boxes, 640, 480, step=5, n_frames=32)
    assert sorted(plan.boxes) == list(range(0, 31))  # every frame of the track + held 5 past the end
    ((x1, _y1, x2, _y2),) = plan.at(12)  # interpolated between frames 10 and 15, on the vehicle box
    assert x1 == pytest.approx(150 + 24 - PAD_X * 100) and x2 == pytest.approx(250 + 24 + PAD_X * 100)
    assert plan.at(31) == [] and plan.at(29)  # held, then stops
    assert plan_plate_blur(boxes, 640, 480, step=5, skip_tracks=[3]).boxes == {}
    # a tracker gap longer than 3 steps: boxes held one step on each side, none in between
    gap = plan_plate_blur(
        [TrackBox(frame_idx=f, track_id=1, car_bbox=(0, 0, 100, 100), plate_bbox=(10, 10, 50, 30)) for f in (0, 40)],
        640,
        480,
        step=5,
    )
    assert sorted(gap.boxes) == [*range(0, 6), *range(35, 46)]


def test_blur_boxes_changes_only_the_box():
    from dashcam.blur import blur_boxes

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    out = blur_boxes(img.copy(), [(20, 20, 60, 40)], 2.0, 2.0)  # source px x2 = frame px
    assert np.array_equal(out[:40], img[:40]) and np.array_equal(out[:, :40], img[:, :40])
    assert np.abs(out[40:80, 40:120].astype(int) - img[40:80, 40:120]).mean() > 30


class _Reader:
    """Every plate the project's detector finds in a frame (vehicle crops, whole frame at 640 and
    at the small input), read by the project's recogniser: a superset of dashcam.alpr.read_array."""

    def __init__(self, settings):
        from dashcam.alpr import PlateDetector, PlateReader, VehicleTracker

        self.vt, self.pdet, self.reader = VehicleTracker(settings), PlateDetector(settings), PlateReader(settings)

    def __call__(self, img: np.ndarray) -> list[str]:
        found = [pb for ps in self.pdet.detect_in_vehicles(img, [v[0] for v in self.vt.detect(img)]) for pb, _ in ps]
        found += [pb for pb, _ in self.pdet.detect(img)] + [pb for pb, _ in self.pdet.detect(img, small=True)]
        return [t.text for t in self.reader.read_boxes(img, found) if len(t.text) >= 4]


def _frames(path: Path):
    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    from dashcam.pipeline import analyze
    from dashcam.records import Manifest
    from dashcam.settings import Settings
    from dashcam.video import probe

    if not CLIP.is_file():
        pytest.skip(f"test clip {CLIP} not available")
    root = tmp_path_factory.mktemp("blur")
    settings = Settings(model_dir=model_dir(), camera_tz="UTC", data_dir=root, archive_blur="plates")
    info = probe(CLIP, camera_tz="UTC")
    res = analyze(info, settings, Path(settings.work_dir))
    return settings, info, Manifest(info=info, analyze=res, events_path=str(root / "none.jsonl"))


def test_blurred_archive_has_no_readable_plate_and_the_same_duration(analysed):
    from dashcam.archive import archive_video, verify_media
    from dashcam.blur import BOXES_FILE, archive_plan
    from dashcam.records import read_jsonl

    settings, info, manifest = analysed
    boxes = read_jsonl(Path(manifest.analyze.boxes_path), TrackBox)
    assert boxes and any(b.plate_bbox is not None for b in boxes)
    plan = archive_plan(manifest, settings)
    assert plan is not None and (Path(settings.archive_dir) / info.video_id / BOXES_FILE).is_file()
    blurred, _ = archive_video(info, [], settings.archive_dir, height=720, blur=plan)
    plain, _ = archive_video(info, [], settings.archive_dir / "plain", height=720)
    fb, fp = verify_media(blurred, "video", codec="h264"), verify_media(plain, "video", codec="h264")
    assert abs(fb["duration_s"] - fp["duration_s"]) < 0.5 / info.fps and abs(fb["duration_s"] - info.duration_s) < 0.1
    assert (fb["width"], fb["height"]) == (fp["width"], fp["height"]) == (640, 480)
    read = _Reader(settings)
    # every 4th frame of the plain copy (the plate is in all of them), every frame of the blurred one
    plain_reads = {i: read(f) for i, f in enumerate(_frames(plain)) if i % 4 == 0}
    blur_frames = list(_frames(blurred))
    assert len(blur_frames) == 36
    readable = [i for i, r in plain_reads.items() if "XSNB23" in r]
    assert len(readable) >= 8, plain_reads  # the plain copy shows a readable plate
    blur_reads = [read(f) for f in blur_frames]
    assert not any(blur_reads), [(i, r) for i, r in enumerate(blur_reads) if r]
    # off: no plan, the plain transcode
    assert archive_plan(manifest, settings.model_copy(update={"archive_blur": "none"})) is None


def test_clip_blur_from_the_archive_copy_and_keep_watched(analysed, tmp_path):
    import collections
    import os
    import subprocess
    import sys

    from dashcam import watch_lists as wl
    from dashcam.archive import archive_video
    from dashcam.blur import archive_plan, clip_plan
    from dashcam.clip import export_clip
    from dashcam.db import make_engine, save_video
    from dashcam.records import PlateEvent, read_jsonl

    settings, info, manifest = analysed
    archive_plan(manifest, settings)  # keeps plate_boxes.jsonl beside the archive copy
    plain, _ = archive_video(info, [], tmp_path / "plain-archive", height=720)
    boxes = read_jsonl(Path(manifest.analyze.boxes_path), TrackBox)
    track = collections.Counter(b.track_id for b in boxes if b.plate_bbox is not None).most_common(1)[0][0]
    ev = PlateEvent(
        video_id=info.video_id,
        track_id=track,
        frame_idx=18,
        pts_s=1.5,
        ts=info.recording_start,
        final_plate="XSNB23",
        plate_confidence=0.9,
        car_bbox=(0, 0, 640, 480),
        plate_bbox=(0, 0, 10, 10),
        n_reads=3,
        first_frame_idx=0,
        last_frame_idx=35,
    )
    db_url = f"sqlite:///{tmp_path / 'd.db'}"
    engine = make_engine(db_url)
    raw = tmp_path / "gone.avi"  # the raw file is gone: the clip is cut from the (unblurred) archive copy
    save_video(engine, info.model_copy(update={"path": str(raw)}), [ev], str(plain))
    out = tmp_path / "clip.mp4"
    res = export_clip(
        engine,
        f"{info.video_id}:{track}",
        before_s=0.5,
        after_s=1.0,
        out=out,
        blur=lambda v: clip_plan(settings.archive_dir, settings.work_dir, v, settings.detect_fps),
    )
    assert res["sources"] == [str(plain)] and abs(res["duration_s"] - 1.5) < 0.2
    read = _Reader(settings)
    frames = list(_frames(out))
    assert len(frames) >= 16 and not any(read(f) for f in frames[::2])
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # blurred cuts removed
    # the owner's copy: a watch-list plate stays readable with --keep-watched (the real CLI)
    wl.add_entry(engine, "XSNB23", label="ours")
    assert [h["plate"] for h in wl.match_video(engine, info.video_id)] == ["XSNB23"]
    engine.dispose()
    env = dict(
        os.environ,
        DASHCAM_DATABASE_URL=db_url,
        DASHCAM_DATA_DIR=str(settings.data_dir),
        DASHCAM_ARCHIVE_DIR=str(settings.archive_dir),
        DASHCAM_WORK_DIR=str(settings.work_dir),
    )
    owner = tmp_path / "owner.mp4"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dashcam.cli",
            "clip",
            f"{info.video_id}:{track}",
            "--before",
            "0.5",
            "--after",
            "1.0",
            "--blur",
            "--keep-watched",
            "--out",
            str(owner),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert sum("XSNB23" in read(f) for f in list(_frames(owner))[::4]) >= 3


# --- faces (archive_blur = "plates+faces"; dlib's HOG frontal face detector) ---

FACE = Path(__file__).parent / "data" / "astronaut_face.jpg"  # NASA, public domain (tests/data/README.md)


@pytest.fixture(scope="module")
def detector():
    """dlib's frontal face detector (HOG + linear SVM, built into dlib-bin)."""
    import dlib

    return dlib.get_frontal_face_detector()


def _faces(detector, frame: np.ndarray, upsample: int = 0) -> list:
    return list(detector(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), upsample))


def test_face_stream_holds_detections_across_the_gap(detector):
    from dashcam.blur import FaceBlur

    face = cv2.imread(str(FACE))
    blank = np.full((300, 400, 3), 128, np.uint8)
    with_face = blank.copy()
    with_face[10 : 10 + face.shape[0], 60 : 60 + face.shape[1]] = face
    # the face on frames 0-4, gone on 5-10; detections on 0, 3, 6, 9 and the last frame (10)
    frames = [(i, with_face if i <= 4 else blank) for i in range(11)]
    fb = FaceBlur(every=3)
    out = list(fb.stream(frames))
    assert [i for i, _, _ in out] == list(range(11)) and fb.detections == 5 and fb.found == 2
    boxed = [i for i, _, boxes in out if boxes]
    assert boxed == list(range(7))  # 5 and 6: held from the detection on frame 3; 7-10: none near
    ((x1, y1, x2, y2),) = out[4][2]
    assert x1 < 60 + 79 and x2 > 60 + 79 + 125 and y1 < 10 + 51 and y2 > 10 + 51 + 125  # the face, padded


def test_faces_need_dlib_one_line_error(monkeypatch):
    import sys

    from dashcam.blur import BlurError, FaceBlur

    monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib-bin were not installed
    with pytest.raises(BlurError, match="needs dlib: pip install dlib-bin") as e:
        FaceBlur()
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def face_clip(analysed, tmp_path_factory):
    """``Video10_2.avi`` with the astronaut's head pasted above the car's plate, moving 15 px/s
    right and 6 px/s down (real ffmpeg overlay, H.264): 36 frames, 640x480, 12 fps."""
    import subprocess

    out = tmp_path_factory.mktemp("faces") / "face_on_car.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(CLIP),
            "-loop",
            "1",
            "-framerate",
            "12",
            "-i",
            str(FACE),
            "-filter_complex",
            "[0:v][1:v]overlay=x='20+15*t':y='4+6*t':shortest=1",
            "-c:v",
            "libx264",
            "-crf",
            "18",
            "-pix_fmt",
            "yuv420p",
            "-an",
            str(out),
        ],
        check=True,
    )
    return out


def test_plates_and_faces_blur_every_face_and_plates_only_leaves_it(analysed, face_clip, detector):
    from dashcam.archive import archive_video, verify_media
    from dashcam.blur import archive_plan
    from dashcam.video import probe

    settings, _, manifest = analysed
    info = probe(face_clip, camera_tz="UTC")
    # the plate boxes of the analysis of Video10_2 (the same frames apart from the pasted head)
    m = manifest.model_copy(update={"info": info})
    both = archive_plan(m, settings.model_copy(update={"archive_blur": "plates+faces"}))
    plates = archive_plan(m, settings.model_copy(update={"archive_blur": "plates"}))
    assert both is not None and both.faces and plates is not None and not plates.faces
    root = Path(settings.data_dir) / "face-archives"
    blurred, _ = archive_video(info, [], root / "both", height=720, blur=both)
    plates_only, _ = archive_video(info, [], root / "plates", height=720, blur=plates)
    plain, _ = archive_video(info, [], root / "plain", height=720)
    durations = {
        verify_media(p, "video", codec="h264", width=640, height=480)["duration_s"]
        for p in (blurred, plates_only, plain)
    }
    assert max(durations) - min(durations) < 0.5 / info.fps and abs(min(durations) - info.duration_s) < 0.1
    plain_frames, blur_frames, plates_frames = (list(_frames(p)) for p in (plain, blurred, plates_only))
    assert len(plain_frames) == len(blur_frames) == len(plates_frames) == 36
    assert all(len(_faces(detector, f)) == 1 for f in plain_frames)  # the face is found on every unblurred frame
    assert all(len(_faces(detector, f)) == 1 for f in plates_frames)  # plates only: the mode switch is real
    # the blurred copy: no face on any frame, even with dlib upsampling once (finds faces down to ~40 px)
    assert not [i for i, f in enumerate(blur_frames) if _faces(detector, f, upsample=1)]
    # the plate is blurred in both blurred modes (its box: the read of frame 0, well below the head)
    x1, y1, x2, y2 = (int(v) for v in plates.at(0)[0])
    assert y1 > 280
    for frames in (blur_frames, plates_frames):
        assert (
            cv2.Laplacian(frames[0][y1:y2, x1:x2], cv2.CV_64F).var()
            < 0.2 * cv2.Laplacian(plain_frames[0][y1:y2, x1:x2], cv2.CV_64F).var()
        )
