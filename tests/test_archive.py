"""dashcam.archive: atomic writes and real ffmpeg transcodes of real clips."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest
from helpers import shared_dir

from dashcam.archive import (
    ArchiveError,
    archive_video,
    atomic_copy,
    atomic_write_bytes,
    atomic_write_text,
    transcode,
)
from dashcam.records import PlateEvent, TrackSummary, read_jsonl, write_jsonl
from dashcam.video import iter_frames, probe

DATA = shared_dir() / "data"
ROAD = DATA / "road-video/udacity_vehdet_test_video.mp4"  # 1280x720 25 fps 1.52 s, with AAC audio
AVI = DATA / "plates-video/TrainingSet/Categorie I/Video3_2.avi"  # 640x480

pytestmark = pytest.mark.skipif(not ROAD.exists(), reason=f"shared test data not found at {DATA}")


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


# --- atomic writes --------------------------------------------------------------------------


def test_atomic_writes_create_parents_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "c.bin"
    atomic_write_bytes(target, b"\x00\x01" * 1000)
    assert target.read_bytes() == b"\x00\x01" * 1000
    atomic_write_bytes(target, b"new")  # overwrite
    assert target.read_bytes() == b"new"
    txt = tmp_path / "t" / "x.txt"
    atomic_write_text(txt, "héllo\nworld\n")
    assert txt.read_text(encoding="utf-8") == "héllo\nworld\n"
    copied = atomic_copy(ROAD, tmp_path / "copies" / "road.mp4")
    assert copied.read_bytes() == ROAD.read_bytes()
    assert copied.stat().st_mode & 0o777 != 0o600  # ordinary permissions, not mkstemp's
    assert leftovers(tmp_path) == []


def test_write_jsonl_uses_atomic_write(tmp_path):
    rows = [
        TrackSummary(
            track_id=i,
            first_frame_idx=0,
            last_frame_idx=4,
            n_frames=2,
            best_car_bbox=(1.0, 2.0, 3.0, 4.0),
            best_frame_idx=2,
        )
        for i in range(3)
    ]
    path = tmp_path / "work" / "tracks.jsonl"
    write_jsonl(path, rows)
    assert read_jsonl(path, TrackSummary) == rows
    assert leftovers(tmp_path) == []


def test_atomic_write_failure_leaves_nothing(tmp_path):
    # a real failed write: the parent "folder" is a file
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(OSError):
        atomic_write_bytes(blocker / "out.bin", b"data")
    with pytest.raises(FileNotFoundError):
        atomic_copy(tmp_path / "missing.jpg", tmp_path / "dst.jpg")
    assert not (tmp_path / "dst.jpg").exists()
    assert leftovers(tmp_path) == []


def test_atomic_write_out_of_space_leaves_old_file_and_no_temp(tmp_path):
    """Full disk, for real: a child process with a 64 KiB file-size limit (EFBIG on write)."""
    target = tmp_path / "events.jsonl"
    target.write_text("old content\n")
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "from dashcam.archive import atomic_write_bytes\n"
        "try:\n"
        f"    atomic_write_bytes({str(target)!r}, b'x' * 1_000_000)\n"
        "except OSError as e:\n"
        "    print('OSError', e.errno, e); sys.exit(3)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 3, res.stderr
    assert "Could not write" in res.stdout and str(target) in res.stdout
    assert target.read_text() == "old content\n"
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]


# --- transcode ------------------------------------------------------------------------------


def test_transcode_road_clip_to_540p(tmp_path):
    dst = transcode(ROAD, tmp_path / "out" / "video_540p.mp4", height=540, crf=30, preset="veryfast")
    assert dst == tmp_path / "out" / "video_540p.mp4"
    meta = ffprobe(dst)
    [v] = [s for s in meta["streams"] if s["codec_type"] == "video"]
    assert (v["codec_name"], v["width"], v["height"], v["pix_fmt"]) == ("h264", 960, 540, "yuv420p")
    assert not [s for s in meta["streams"] if s["codec_type"] == "audio"]  # audio dropped
    assert float(meta["format"]["duration"]) == pytest.approx(1.52, abs=0.1)
    assert meta["format"]["tags"].get("creation_time", "").startswith("2017-02-03T17:24:08")
    assert dst.stat().st_size < ROAD.stat().st_size
    # +faststart: the index comes before the media data
    head = dst.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < 4096
    assert leftovers(tmp_path) == []


def test_transcode_never_upscales(tmp_path):
    dst = transcode(AVI, tmp_path / "video_720p.mp4", height=720)
    [v] = [s for s in ffprobe(dst)["streams"] if s["codec_type"] == "video"]
    assert (v["width"], v["height"], v["codec_name"]) == (640, 480, "h264")


def test_failing_transcode_leaves_nothing(tmp_path):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video\n" * 50)
    dst = tmp_path / "archive" / "video_720p.mp4"
    with pytest.raises(ArchiveError, match="not a readable video"):
        transcode(not_video, dst)
    assert not dst.exists()
    # ffmpeg itself fails (unknown x264 preset): its error lines in the one-line message, nothing left
    with pytest.raises(ArchiveError, match=r"ffmpeg failed.*preset") as ei:
        transcode(ROAD, dst, height=540, preset="no-such-preset")
    assert "\n" not in str(ei.value) and str(dst) in str(ei.value)
    assert not dst.exists()
    assert leftovers(tmp_path) == []
    with pytest.raises(ArchiveError, match="not found"):
        transcode(tmp_path / "missing.mp4", dst)


# --- archive_video --------------------------------------------------------------------------


def _events(info, work: Path) -> list[PlateEvent]:
    frames = list(iter_frames(info, detect_fps=6))
    evs = []
    for tid, f in ((3, frames[1]), (7, frames[4])):
        crop, thumb = work / f"crop_{tid}.jpg", work / f"thumb_{tid}.jpg"
        cv2.imwrite(str(crop), f.image[300:340, 500:620])
        cv2.imwrite(str(thumb), cv2.resize(f.image, (320, 180)))
        evs.append(
            PlateEvent(
                video_id=info.video_id,
                track_id=tid,
                frame_idx=f.frame_idx,
                pts_s=f.pts_s,
                ts=datetime(2017, 2, 3, 17, 24, 8, tzinfo=UTC),
                final_plate=f"AB{tid}CD",
                plate_confidence=0.9,
                car_bbox=(400.0, 250.0, 700.0, 450.0),
                plate_bbox=(500.0, 300.0, 620.0, 340.0),
                n_reads=3,
                first_frame_idx=0,
                last_frame_idx=f.frame_idx,
                crop_path=str(crop),
                thumb_path=str(thumb),
            )
        )
    evs.append(evs[0].model_copy(update={"track_id": 9, "crop_path": None, "thumb_path": None}))
    return evs


def test_archive_video_idempotent(tmp_path):
    info = probe(ROAD)
    work = tmp_path / "work"
    work.mkdir()
    events = _events(info, work)
    archive = tmp_path / "archive"

    video, archived = archive_video(info, events, archive, height=540, crf=30, preset="veryfast")
    base = archive / info.video_id
    assert video == base / "video_540p.mp4"
    [v] = [s for s in ffprobe(video)["streams"] if s["codec_type"] == "video"]
    assert (v["height"], v["codec_name"]) == (540, "h264")
    assert [e.crop_path for e in archived] == [str(base / "plates/3.jpg"), str(base / "plates/7.jpg"), None]
    assert [e.thumb_path for e in archived] == [str(base / "thumbs/3.jpg"), str(base / "thumbs/7.jpg"), None]
    assert (base / "plates/3.jpg").read_bytes() == (work / "crop_3.jpg").read_bytes()
    assert events[0].crop_path == str(work / "crop_3.jpg")  # inputs untouched
    assert [e.model_dump(exclude={"crop_path", "thumb_path"}) for e in archived] == [
        e.model_dump(exclude={"crop_path", "thumb_path"}) for e in events
    ]

    files = sorted(p for p in base.rglob("*") if p.is_file())
    stamp = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
    video2, archived2 = archive_video(info, events, archive, height=540, crf=30, preset="veryfast")
    assert (video2, archived2) == (video, archived)
    assert sorted(p for p in base.rglob("*") if p.is_file()) == files
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files} == stamp  # all skipped

    # re-running with the archived events (work dir cleaned) is a no-op too
    for p in work.iterdir():
        p.unlink()
    assert archive_video(info, archived, archive, height=540, crf=30, preset="veryfast") == (video, archived)
    assert leftovers(tmp_path) == []


def test_archive_video_redoes_an_incomplete_copy(tmp_path):
    info = probe(ROAD)
    archive = tmp_path / "archive"
    partial = archive / info.video_id / "video_540p.mp4"
    partial.parent.mkdir(parents=True)
    data = ROAD.read_bytes()
    partial.write_bytes(data[: len(data) // 3])  # e.g. a crash of some earlier, non-atomic tool
    video, _ = archive_video(info, [], archive, height=540, crf=30, preset="veryfast")
    assert video == partial
    [v] = [s for s in ffprobe(video)["streams"] if s["codec_type"] == "video"]
    assert v["height"] == 540 and float(v["duration"]) == pytest.approx(1.52, abs=0.1)


def test_archive_video_missing_crop_is_an_error(tmp_path):
    info = probe(AVI)
    ev = PlateEvent(
        video_id=info.video_id,
        track_id=1,
        frame_idx=0,
        pts_s=0.0,
        ts=datetime.now(UTC),
        final_plate="XX11YY",
        plate_confidence=0.8,
        car_bbox=(0, 0, 1, 1),
        plate_bbox=(0, 0, 1, 1),
        n_reads=2,
        first_frame_idx=0,
        last_frame_idx=0,
        crop_path=str(tmp_path / "gone.jpg"),
    )
    with pytest.raises(ArchiveError, match="gone.jpg"):
        archive_video(info, [ev], tmp_path / "archive", height=720)


# --- verification of produced media (issue 11) -----------------------------------------------


def test_verify_media_finds_truncation_wrong_size_and_short_duration(tmp_path):
    from dashcam.archive import MediaCheckError, verify_media

    good = transcode(AVI, tmp_path / "ok.mp4", height=720)
    facts = verify_media(good, "video", width=640, height=480, duration_s=3.0, fps=12, codec="h264")
    assert (facts["width"], facts["height"], facts["codec"]) == (640, 480, "h264")
    data = good.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaCheckError, match="incomplete MP4"):
        verify_media(cut, "video")
    with pytest.raises(MediaCheckError, match="frame size is 640x480, expected 1280x720"):
        verify_media(good, "video", width=1280, height=720)
    with pytest.raises(MediaCheckError, match="duration is 3.00 s, expected 10.00 s"):
        verify_media(good, "video", duration_s=10.0, fps=12)
    with pytest.raises(MediaCheckError, match="codec"):
        verify_media(good, "video", codec="hevc")
    jpg = tmp_path / "crop.jpg"
    frame = next(iter_frames(probe(AVI), 6)).image
    jpg.write_bytes(cv2.imencode(".jpg", frame)[1].tobytes())
    assert verify_media(jpg, "image")["width"] == 640
    half = tmp_path / "half.jpg"
    half.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    with pytest.raises(MediaCheckError, match="cut short"):
        verify_media(half, "image")


def test_transcode_onto_a_full_disk_fails_and_leaves_nothing(small_disk):
    """ffmpeg 5.1 exits 0 after "Error writing trailer: No space left on device"; transcode must not
    trust that: one-line error naming the file and the cause, no file under the final name."""
    import os

    from dashcam.archive import MediaCheckError

    st = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 40 * 1024))
    dst = small_disk / "archive" / "video_720p.mp4"
    with pytest.raises(MediaCheckError) as ei:
        transcode(AVI, dst, height=720)
    msg = str(ei.value)
    assert "No space left on device" in msg and str(dst) in msg and "\n" not in msg
    assert "nothing was written" not in msg and ".tmp" not in msg
    assert not dst.exists() and leftovers(small_disk) == []
    (small_disk / "filler").unlink()
    assert transcode(AVI, dst, height=720) == dst  # space freed: it works


def test_archive_copy_of_a_broken_crop_is_refused(tmp_path):
    """A crop cut short (e.g. written by something else onto a full disk) never reaches the archive."""
    info = probe(AVI)
    frame = next(iter_frames(info, 6)).image
    crop = tmp_path / "crop.jpg"
    data = cv2.imencode(".jpg", frame)[1].tobytes()
    crop.write_bytes(data[: len(data) // 2])
    ev = PlateEvent(
        video_id=info.video_id,
        track_id=1,
        frame_idx=0,
        pts_s=0.0,
        ts=datetime.now(UTC),
        final_plate="XX11YY",
        plate_confidence=0.8,
        car_bbox=(0, 0, 1, 1),
        plate_bbox=(0, 0, 1, 1),
        n_reads=2,
        first_frame_idx=0,
        last_frame_idx=0,
        crop_path=str(crop),
    )
    archive = tmp_path / "archive"
    with pytest.raises(ArchiveError, match=r"plates/1.jpg.*cut short.*complete so far: video_720p.mp4") as ei:
        archive_video(info, [ev], archive, height=720)
    assert "\n" not in str(ei.value)
    assert not (archive / info.video_id / "plates" / "1.jpg").exists()
    assert leftovers(tmp_path) == []
