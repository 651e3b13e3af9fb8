"""Privacy blur (issue 16 point 5, dashcam.blur): real clip, real models, real ffmpeg.

The clip is plates-video ``Categorie I/Video10_2.avi`` (3 s, 640x480, 12 fps, plate XS-NB-23 in
every frame). The project's own plate detector + recogniser read every frame of the archive
copies; the blurred copy must read nothing where the plain one reads the plate.
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
