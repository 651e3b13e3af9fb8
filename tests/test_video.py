"""dashcam.video on real clips with the real ffmpeg/ffprobe (no mocks)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from helpers import shared_dir

from dashcam.video import (
    DecodeStats,
    VideoError,
    compute_video_id,
    decode_only_seconds,
    frame_step,
    iter_frames,
    parse_viofo_name,
    probe,
    recording_start,
)

DATA = shared_dir() / "data"
PLATES = DATA / "plates-video/TrainingSet/Categorie I"
AVI = PLATES / "Video3_2.avi"  # 640x480 12 fps MJPEG, 36 frames
MP4 = PLATES / "ZVideo44.mp4"  # 640x480 12 fps H.264, 37 frames, moov at the end
ROAD = DATA / "road-video/udacity_solidWhiteRight.mp4"  # 960x540 25 fps, 221 frames, moov first
ROAD_SHORT = DATA / "road-video/udacity_vehdet_test_video.mp4"  # 1280x720 25 fps, 38 frames
PARKING = DATA / "road-video/intel_car-detection.mp4"  # 768x432 12.5 fps, 30 s

pytestmark = pytest.mark.skipif(not AVI.exists(), reason=f"shared test data not found at {DATA}")


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


# --- probe ----------------------------------------------------------------------------------


def test_probe_mp4():
    info = probe(MP4, camera_tz="UTC")
    assert (info.width, info.height, info.codec) == (640, 480, "h264")
    assert info.fps == pytest.approx(12.0)
    assert info.frame_count == 37
    assert info.duration_s == pytest.approx(3.083, abs=0.01)
    assert info.size_bytes == MP4.stat().st_size
    assert info.path == str(MP4.resolve())
    assert len(info.video_id) == 16 and int(info.video_id, 16) >= 0
    assert info.recording_start_source == "mtime"  # no creation_time tag, no Viofo name
    assert info.camera is None


def test_probe_avi():
    info = probe(AVI)
    assert (info.width, info.height, info.codec) == (640, 480, "mjpeg")
    assert info.fps == pytest.approx(12.0)
    assert info.frame_count == 36
    assert info.duration_s == pytest.approx(3.0)


def test_probe_road_video_creation_time():
    info = probe(ROAD_SHORT)
    assert (info.width, info.height, info.codec, info.frame_count) == (1280, 720, "h264", 38)
    assert info.fps == pytest.approx(25.0)
    assert info.creation_time == datetime(2017, 2, 3, 17, 24, 8, tzinfo=UTC)
    assert info.recording_start == info.creation_time
    assert info.recording_start_source == "creation_time"


# --- identity -------------------------------------------------------------------------------


def test_video_id_stable_across_copies_and_distinct(tmp_path):
    copy = tmp_path / "renamed copy.mp4"
    shutil.copy(MP4, copy)
    assert compute_video_id(copy) == compute_video_id(MP4) == probe(copy).video_id
    ids = {compute_video_id(p) for p in (MP4, AVI, ROAD, ROAD_SHORT, PLATES / "ZVideo48.mp4")}
    assert len(ids) == 5
    # one byte changed at the end (within the hashed tail) -> different id
    data = bytearray(copy.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert compute_video_id(copy) != compute_video_id(MP4)


def test_video_id_of_large_file_reads_only_the_ends(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.write(b"a" * (4 << 20))
        f.write(b"b" * (2 << 20))
        f.write(b"c" * (4 << 20))
    vid = compute_video_id(big)
    h = hashlib.sha256(b"dashcam-video-id/v1")
    h.update((10 << 20).to_bytes(8, "big"))
    h.update(b"a" * (4 << 20))
    h.update(b"c" * (4 << 20))
    assert vid == h.hexdigest()[:16]


# --- names and recording start --------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("2024_0315_143022_0001F.MP4", (datetime(2024, 3, 15, 14, 30, 22), "F")),
        ("2024_0315_143022_0001R.mp4", (datetime(2024, 3, 15, 14, 30, 22), "R")),
        ("2024_0315_143022_0001.MP4", (datetime(2024, 3, 15, 14, 30, 22), None)),
        ("2023_1231_235959_000123f.Mp4", (datetime(2023, 12, 31, 23, 59, 59), "F")),
        ("/card/DCIM/Movie/2024_0315_143022_0001F.MP4", (datetime(2024, 3, 15, 14, 30, 22), "F")),
        ("2024_1315_143022_0001F.MP4", None),  # month 13
        ("2024_0315_143022_0001F.jpg", None),
        ("VID_20240315_143022.mp4", None),
        ("Video3_2.avi", None),
    ],
)
def test_parse_viofo_name(name, expected):
    assert parse_viofo_name(name) == expected


def test_recording_start_from_viofo_name(tmp_path):
    clip = tmp_path / "2024_0315_143022_0001F.MP4"
    shutil.copy(MP4, clip)
    info = probe(clip, camera_tz="Europe/Amsterdam")  # CET (+01:00) on 15 March
    assert info.recording_start == datetime(2024, 3, 15, 13, 30, 22, tzinfo=UTC)
    assert info.recording_start_source == "filename"
    assert info.camera == "F"
    assert probe(clip, camera_tz="UTC").recording_start == datetime(2024, 3, 15, 14, 30, 22, tzinfo=UTC)
    # the name wins over a creation_time tag
    ct = datetime(2020, 1, 1, tzinfo=UTC)
    assert recording_start(clip, ct, "UTC")[1] == "filename"
    # "local": the machine's zone, whatever it is
    local = datetime(2024, 3, 15, 14, 30, 22).astimezone().astimezone(UTC)
    assert recording_start(clip, None, "local") == (local, "filename")
    with pytest.raises(ValueError, match="Unknown camera timezone"):
        recording_start(clip, None, "Mars/Olympus_Mons")


def test_recording_start_fallbacks(tmp_path):
    clip = tmp_path / "clip.avi"
    shutil.copy(AVI, clip)
    ct = datetime(2021, 6, 1, 8, 0, 0, tzinfo=UTC)
    assert recording_start(clip, ct, "UTC") == (ct, "creation_time")
    assert recording_start(clip, datetime(1904, 1, 1, tzinfo=UTC), "UTC")[1] == "mtime"
    end = datetime(2022, 5, 1, 12, 0, 3, tzinfo=UTC)
    os.utime(clip, (end.timestamp(), end.timestamp()))
    assert recording_start(clip, None, "UTC") == (end, "mtime")
    info = probe(clip)  # mtime is the end of the recording: 3 s clip -> started 3 s earlier
    assert info.recording_start == datetime(2022, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert info.recording_start_source == "mtime"


# --- probe errors ---------------------------------------------------------------------------


def test_probe_missing_file(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        probe(tmp_path / "nope.mp4")


def test_probe_zero_byte_file(tmp_path):
    empty = tmp_path / "2024_0315_143022_0001F.MP4"
    empty.touch()
    with pytest.raises(VideoError, match="empty"):
        probe(empty)


def test_probe_non_video_files(tmp_path):
    txt = tmp_path / "notes.mp4"
    txt.write_text("this is not a video\n" * 100)
    with pytest.raises(VideoError, match="not a readable video"):
        probe(txt)
    img = next((DATA / "plates-images").rglob("*.jpg"))
    with pytest.raises(VideoError, match="still image"):
        probe(img)
    with pytest.raises(VideoError, match="not a regular file"):
        probe(tmp_path)


def test_probe_truncated_mp4_moov_at_end(tmp_path):
    cut = _cut(MP4, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(VideoError, match=r"incomplete MP4.*moov") as ei:
        probe(cut)
    assert str(cut) in str(ei.value)
    assert "modified" in str(ei.value)  # just written: hints that it may still be being copied


def test_probe_truncated_mp4_moov_at_start(tmp_path):
    cut = _cut(ROAD, tmp_path / "cut.mp4", 0.6)  # ffprobe alone would accept this one
    with pytest.raises(VideoError, match=r"incomplete MP4.*'mdat' box"):
        probe(cut)


# --- streaming decode -----------------------------------------------------------------------


def test_frame_step():
    assert frame_step(25, 6) == 4
    assert frame_step(12, 6) == 2
    assert frame_step(12.5, 6) == 2
    assert frame_step(5, 6) == 1
    with pytest.raises(ValueError):
        frame_step(25, 0)


def test_iter_frames_indices_shapes_and_content():
    info = probe(AVI)
    stats = DecodeStats()
    frames = list(iter_frames(info, detect_fps=6, stats=stats))
    k = 2
    assert [f.frame_idx for f in frames] == list(range(0, 36, k))
    assert all(f.pts_s == pytest.approx(f.frame_idx / 12.0) for f in frames)
    for f in frames:
        assert f.image.shape == (480, 640, 3) and f.image.dtype == np.uint8
        assert f.image.flags.writeable
    assert stats.done and stats.returncode == 0
    assert stats.frames_yielded == stats.expected_frames == 18 and stats.progress == 1.0
    assert stats.missing_s == 0
    # the selected frames are exactly source frames 0, K, 2K, ... of a full decode
    full = list(iter_frames(info, detect_fps=info.fps))
    assert [f.frame_idx for f in full] == list(range(36))
    for f in frames:
        assert np.array_equal(f.image, full[f.frame_idx].image)


def test_iter_frames_h264_step():
    info = probe(ROAD_SHORT)
    frames = [(f.frame_idx, f.image.shape) for f in iter_frames(info, detect_fps=6)]
    assert frames == [(i, (720, 1280, 3)) for i in range(0, 38, 4)]


def test_iter_frames_bounded_queue_with_slow_consumer():
    import time

    info = probe(MP4)
    stats = DecodeStats()
    qsize = 2
    ahead = []
    for _f in iter_frames(info, detect_fps=info.fps, queue_size=qsize, stats=stats):
        time.sleep(0.02)  # slow consumer: the decoder must block, not read ahead
        ahead.append(stats.frames_decoded - stats.frames_yielded)
    assert stats.frames_yielded == 37
    assert stats.max_queue_depth == qsize  # it did fill up...
    assert max(ahead) <= qsize + 1  # ...and never held more than queue + the one being put


def _gone(stats: DecodeStats) -> bool:
    names = {t.name for t in threading.enumerate()}
    return (
        stats.done
        and stats.returncode is not None
        and not Path(f"/proc/{stats.pid}").exists()
        and f"dashcam-decode-{stats.pid}" not in names
        and f"dashcam-stderr-{stats.pid}" not in names
    )


def test_iter_frames_early_stop_cleans_up():
    info = probe(PARKING)  # 30 s: ffmpeg is still running when we stop
    stats = DecodeStats()
    gen = iter_frames(info, detect_fps=6, queue_size=2, stats=stats)
    for i, _f in enumerate(gen):
        if i == 2:
            break
    assert Path(f"/proc/{stats.pid}").exists()  # still running, blocked on the full pipe
    gen.close()
    assert _gone(stats)
    assert stats.frames_yielded == 3


def test_iter_frames_consumer_exception_cleans_up():
    info = probe(PARKING)
    stats = DecodeStats()
    with (
        pytest.raises(RuntimeError, match="detector crashed"),
        contextlib.closing(iter_frames(info, detect_fps=6, stats=stats)) as frames,
    ):
        for _f in frames:
            raise RuntimeError("detector crashed")
    assert _gone(stats)


def test_iter_frames_file_truncated_mid_stream(tmp_path):
    info = probe(ROAD)  # probed while complete, then the file is cut (e.g. replaced mid-run)
    cut = _cut(ROAD, tmp_path / "cut.mp4", 0.6)
    stats = DecodeStats()
    got = []
    with pytest.raises(VideoError, match="ended early") as ei:
        for f in iter_frames(info.model_copy(update={"path": str(cut)}), 6, stats=stats):
            got.append(f.frame_idx)
    assert str(cut) in str(ei.value)
    assert 10 < len(got) < stats.expected_frames  # the frames before the cut were yielded
    assert got == list(range(0, 4 * len(got), 4))
    assert _gone(stats)


def test_iter_frames_tolerates_a_short_damaged_tail(tmp_path):
    info = probe(ROAD)
    cut = _cut(ROAD, tmp_path / "cut.mp4", 0.98)  # last ~0.2 s lost (power cut at the end)
    stats = DecodeStats()
    n = sum(1 for _ in iter_frames(info.model_copy(update={"path": str(cut)}), 6, stats=stats))
    assert n == stats.frames_yielded < stats.expected_frames
    assert 0 < stats.missing_s <= 1.0


def test_decode_only_seconds():
    assert 0 < decode_only_seconds(ROAD_SHORT) < 30
    with pytest.raises(VideoError, match="not found"):
        decode_only_seconds(ROAD_SHORT.with_name("missing.mp4"))


def _damage(src: Path, dst: Path, start: float, n_bytes: int, seed: int = 11) -> Path:
    import random

    data = bytearray(src.read_bytes())
    at = int(len(data) * start)
    data[at : at + n_bytes] = random.Random(seed).randbytes(n_bytes)
    dst.write_bytes(bytes(data))
    return dst


def test_iter_frames_stops_at_damage_in_the_middle(tmp_path):
    """MJPEG AVI with ~400 KB of its middle overwritten: ffmpeg skips the broken frames, re-syncs
    (the frames after it come out with wrong timestamps) and exits 0. Decoding stops at the
    damage: every frame before it is yielded, pixel-identical to a clean decode, none after it;
    the damage is one line in stats.damage; with damage_ok=False it raises after the good frames."""
    src = PLATES / "Video10_2.avi"
    info = probe(_damage(src, tmp_path / "d.avi", 0.5, 400_000))
    clean = {f.frame_idx: f.image for f in iter_frames(probe(src), 6)}
    stats = DecodeStats()
    got = list(iter_frames(info, 6, stats=stats, damage_ok=True))
    assert [f.frame_idx for f in got] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert all(np.array_equal(f.image, clean[f.frame_idx]) for f in got)
    assert stats.damage and stats.damage.startswith("damaged:") and "\n" not in stats.damage
    assert "at frame 16" in stats.damage and "mjpeg" in stats.damage  # where, and ffmpeg's reason
    assert stats.missing_s == pytest.approx(20 / 12)
    assert _gone(stats)
    got2 = []
    with pytest.raises(VideoError, match="is damaged.*Re-copy") as ei:
        for f in iter_frames(info, 6):
            got2.append(f.frame_idx)
    assert got2 == [0, 2, 4, 6, 8, 10, 12, 14]
    assert str(info.path) in str(ei.value) and "\n" not in str(ei.value)


def test_iter_frames_no_decodable_frame_is_an_error(tmp_path):
    """Header intact (ffprobe reads it), every frame overwritten: a clear one-line VideoError."""
    src = PLATES / "Video10_2.avi"
    size = src.stat().st_size
    bad = _damage(src, tmp_path / "nothing.avi", 12_000 / size, size - 40_000)
    info = probe(bad)
    with pytest.raises(VideoError, match="No frame of .* could be decoded") as ei:
        list(iter_frames(info, 6, damage_ok=True))
    assert "\n" not in str(ei.value)
