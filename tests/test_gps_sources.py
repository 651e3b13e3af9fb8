"""GPS sources on real files: GoPro GPMF (karma.mp4, gopro2gpx streams), Novatek freeGPS records,
NMEA vs GPSBabel, source order, clock offset, corrupt boxes, route storage. No mocks."""

from __future__ import annotations

import logging
import shutil
import struct
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from helpers import csv_rows, shared_dir

from dashcam.gps import (
    GpsTrack,
    align_gps,
    decode_freegps,
    find_track,
    gpmf_points,
    load_gpx,
    load_nmea,
    read_gpmf_mp4,
    route_points,
    track_to_gpx,
)
from dashcam.media.isobmff import find, read_moov, track_samples
from dashcam.records import PlateEvent
from dashcam.settings import Settings
from dashcam.video import probe

GPS = shared_dir() / "data/gps"
KARMA = GPS / "gopro-gpmf/karma.mp4"
KARMA_CSV = GPS / "gopro-gpmf/karma.exiftool_gps.csv"
STREAMS = GPS / "gopro2gpx-gpmf-streams"
SNIPPETS = GPS / "exiftool-freegps-hex-snippets"
BABEL = GPS / "tracks/gpsbabel"
PIOFO = GPS / "viofo-piofo-expected-only/small_dashcam.expected.gpx"
NO_GPS_CLIP = shared_dir() / "data/road-video/udacity_solidWhiteRight.mp4"

pytestmark = pytest.mark.skipif(not KARMA.exists(), reason=f"shared GPS test data not found at {GPS}")


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


def settings(tmp_path: Path, **kw) -> Settings:
    return Settings(data_dir=tmp_path / "data", camera_tz="UTC", **kw)


def event(video_id: str, ts: datetime, track_id: int = 1) -> PlateEvent:
    return PlateEvent(
        video_id=video_id,
        track_id=track_id,
        frame_idx=0,
        pts_s=0.0,
        ts=ts,
        final_plate="AB123C",
        plate_confidence=0.9,
        car_bbox=(0, 0, 10, 10),
        plate_bbox=(1, 1, 5, 5),
        n_reads=3,
        first_frame_idx=0,
        last_frame_idx=1,
    )


# ---------------------------------------------------------------------------------- GoPro GPMF


def test_karma_mp4_matches_exiftool():
    """Every GPS row ExifTool reads from karma.mp4 is one of our fixes, to 1e-6 deg and 1 ms."""
    points, anchors = read_gpmf_mp4(KARMA)
    assert len(points) == 47  # SOURCES-embedded.md: karma.mp4 holds 47 GPS fixes
    rows = csv_rows(KARMA_CSV)
    assert len(rows) == 12
    for row in rows:
        t = datetime.strptime(row["gps_datetime_utc"], "%Y:%m:%d %H:%M:%S.%f").replace(tzinfo=UTC)
        lat, lon = float(row["lat"]), float(row["lon"])
        p = min(points, key=lambda p: abs((p.time - t).total_seconds()))
        assert p.lat == pytest.approx(lat, abs=1e-6) and p.lon == pytest.approx(lon, abs=1e-6), row
        assert abs((p.time - t).total_seconds()) < 1e-3, row  # ExifTool rounds SYST-based times
        assert p.alt_m == pytest.approx(float(row["alt_m"]), abs=0.05)
    assert all(a.time < b.time for a, b in pairwise(points))
    assert len(anchors) == 12 and anchors[0][0] == 0.0


def test_karma_stream_equals_mp4_track():
    """The raw karma.bin stream (gopro2gpx's fixture) decodes to the same fixes as karma.mp4."""
    from_bin, _ = gpmf_points([(0.0, (STREAMS / "karma.bin").read_bytes())])
    from_mp4, _ = read_gpmf_mp4(KARMA)
    assert [(p.lat, p.lon) for p in from_bin] == [(p.lat, p.lon) for p in from_mp4[: len(from_bin)]]
    assert len(from_bin) >= 40


@pytest.mark.parametrize("name", ["hero05", "hero06", "hero07"])
def test_gopro2gpx_gps5_streams_match_their_gpx(name):
    points, _ = gpmf_points([(0.0, (STREAMS / f"{name}.bin").read_bytes())])
    ref = load_gpx(STREAMS / f"{name}.gpx").points  # gopro2gpx's output, one trkpt per GPS5 sample
    assert len(points) == len(ref) > 400
    for p, r in zip(points, ref, strict=True):
        assert p.lat == pytest.approx(r.lat, abs=1e-7) and p.lon == pytest.approx(r.lon, abs=1e-7)
        assert abs((p.time - r.time).total_seconds()) < 1e-3
        assert p.speed_mps == pytest.approx(r.speed_mps, abs=1e-3)
        assert p.alt_m == pytest.approx(r.alt_m, abs=1e-3)
    assert {p.fix for p in points} <= {"none", "2d", "3d"} and "3d" in {p.fix for p in points}  # GPSF


@pytest.mark.parametrize("name,shift_s", [("hero11", 0), ("hero13", 3600)])
def test_gopro2gpx_gps9_streams_match_their_csv(name, shift_s):
    """HERO11/13 GPS9 samples carry their own UTC time. gopro2gpx's current code subtracts a fixed
    3600 s from GPS9 times (``- timedelta(seconds=3600)`` in BuildGPSPoints), which its hero13
    fixture shows and its older hero11 fixture does not; on hero11 our GPS9 times equal the GPS5
    stream's GPSU times, which confirms ours."""
    points, _ = gpmf_points([(0.0, (STREAMS / f"{name}.bin").read_bytes())])
    ref = [r for r in csv_rows(STREAMS / f"{name}.csv") if r["name"] == "GPS9"]
    assert len(points) == len(ref) > 400
    for p, r in zip(points, ref, strict=True):
        t = datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert p.lat == pytest.approx(float(r["latitude"]), abs=1e-7)
        assert p.lon == pytest.approx(float(r["longitude"]), abs=1e-7)
        assert abs((p.time - t).total_seconds() - shift_s) < 1e-3
        assert p.speed_mps == pytest.approx(float(r["speed"]), abs=1e-3)
    if name == "hero11":
        gps5 = [r for r in csv_rows(STREAMS / f"{name}.csv") if r["name"] == "GPS5"]
        assert gps5[0]["time"] == ref[0]["time"]


# ----------------------------------------------------------------------------- Novatek freeGPS


def test_freegps_viofo_a119v3_record():
    p = decode_freegps((SNIPPETS / "viofo_a119v3_type3_first64.bin").read_bytes())
    assert p.time == utc(2019, 9, 27, 5, 47, 3)
    assert p.lat == pytest.approx(49 + 22.1431 / 60, abs=1e-5)  # 4922.1431 N
    assert p.lon == pytest.approx(-(123 + 5.9854 / 60), abs=1e-5)  # 12305.9854 W
    assert p.speed_mps == pytest.approx(26.30 * 1852 / 3600, abs=1e-3)  # 26.30 kn
    assert p.heading_deg == pytest.approx(16.49, abs=1e-3)


def test_freegps_viofo_a119s_record():
    p = decode_freegps((SNIPPETS / "viofo_a119s_type16_first96.bin").read_bytes())
    assert p.time == utc(2017, 12, 31, 16, 45, 20)
    assert p.lat == pytest.approx(54 + 27.2954 / 60, abs=1e-5)  # 5427.2954 N
    assert p.lon == pytest.approx(18 + 32.9584 / 60, abs=1e-5)  # 1832.9584 E
    assert p.speed_mps == pytest.approx(7.51 * 1852 / 3600, abs=1e-3)
    assert p.heading_deg == pytest.approx(330.74, abs=1e-3)


def test_freegps_void_and_damaged_records():
    rec = bytearray((SNIPPETS / "viofo_a119s_type16_first96.bin").read_bytes())
    rec[0x48:0x49] = b"V"  # receiver says: no valid fix
    assert decode_freegps(bytes(rec)) is None
    assert decode_freegps(b"\0\0\0\x10freeGPS ") is None  # truncated
    assert decode_freegps(bytes(100)) is None  # not a freeGPS block


def _clip_with_freegps_box(tmp_path: Path) -> Path:
    """A real H.264 clip with a real A119S freeGPS record appended as a top-level 0x8000-byte
    ``free`` box (how Novatek cameras store them), under a Viofo-style file name."""
    video = tmp_path / "2017_1231_164520_0001F.MP4"
    shutil.copy(NO_GPS_CLIP, video)
    rec = (SNIPPETS / "viofo_a119s_type16_first96.bin").read_bytes()
    assert struct.unpack(">I", rec[:4])[0] == 0x8000
    with open(video, "ab") as f:
        f.write(rec + bytes(0x8000 - len(rec)))
    return video


def test_freegps_block_in_mp4_is_found_and_video_still_probes(tmp_path):
    video = _clip_with_freegps_box(tmp_path)
    info = probe(video, camera_tz="UTC")
    found = find_track(video, info, settings(tmp_path))
    assert found is not None
    track, source = found
    assert source == "embedded:freegps" and len(track) == 1
    assert track.points[0].lat == pytest.approx(54 + 27.2954 / 60, abs=1e-5)
    assert track.clock_offset_s == pytest.approx(0.0, abs=1.0)  # file name says 16:45:20 UTC too


# ------------------------------------------------------------------------------ NMEA and GPX


def test_nmea_log_matches_gpsbabel_reference():
    track = load_nmea(BABEL / "nmea")
    ref = load_gpx(BABEL / "nmea.gpx")
    assert len(track) == len(ref) == 154
    for p, r in zip(track.points, ref.points, strict=True):
        assert p.time == r.time
        assert p.lat == pytest.approx(r.lat, abs=1e-8) and p.lon == pytest.approx(r.lon, abs=1e-8)
        assert p.heading_deg == pytest.approx(r.heading_deg, abs=1e-4)
        # GPSBabel takes speed from VTG km/h (0.3 -> 0.0833 m/s); we take RMC knots (0.17 -> 0.0875)
        assert p.speed_mps == pytest.approx(r.speed_mps, abs=0.02)
        assert p.alt_m == pytest.approx(r.alt_m, abs=1e-6)
    assert {p.fix for p in track.points[1:]} == {"3d"}


def test_gpx_export_round_trip(tmp_path):
    track = load_nmea(BABEL / "nmea")
    out = tmp_path / "out.gpx"
    out.write_text(track_to_gpx(track, name="nmea"))
    back = load_gpx(out)
    assert len(back) == len(track)
    for a, b in zip(track.points, back.points, strict=True):
        assert (a.time, a.fix) == (b.time, b.fix)
        assert a.lat == pytest.approx(b.lat, abs=1e-9) and a.lon == pytest.approx(b.lon, abs=1e-9)
        assert a.speed_mps == pytest.approx(b.speed_mps) and a.heading_deg == pytest.approx(b.heading_deg, abs=1e-3)


# --------------------------------------------------------------- interpolation, gaps, offsets


def test_interpolation_and_gap_rule_on_real_karma_track():
    points, _ = read_gpmf_mp4(KARMA)
    track = GpsTrack(points, max_gap_s=0.5)  # fixes are ~0.25 s apart
    a, b = track.points[10], track.points[11]
    mid = a.time + (b.time - a.time) / 2
    fix = track.at(mid)
    assert fix.lat == pytest.approx((a.lat + b.lat) / 2, abs=1e-9)
    assert fix.lon == pytest.approx((a.lon + b.lon) / 2, abs=1e-9)
    assert fix.speed_mps == pytest.approx((a.speed_mps + b.speed_mps) / 2)
    # drop fixes 12-19 (~2 s): no position is invented inside that gap, but it is with a larger limit
    gap_points = points[:12] + points[20:]
    inside = points[16].time
    assert GpsTrack(gap_points, max_gap_s=0.5).at(inside) is None
    assert GpsTrack(gap_points, max_gap_s=5).at(inside) is not None
    assert track.at(points[0].time - timedelta(seconds=1)) is None


def test_clock_offset_from_embedded_track(tmp_path):
    """A camera clock one hour off (wrong camera_tz): the embedded track still positions events,
    and their ts is corrected to GPS (UTC) time."""
    info = probe(KARMA, camera_tz="UTC")
    wrong = info.model_copy(update={"recording_start": info.recording_start - timedelta(hours=1)})
    track, _ = find_track(KARMA, wrong, settings(tmp_path))
    assert track.clock_offset_s == pytest.approx(3600, abs=1.0)
    ev = event(info.video_id, wrong.recording_start + timedelta(seconds=5))
    (out,) = align_gps([ev], track)
    assert out.lat == pytest.approx(33.1257, abs=2e-4)
    assert abs((out.ts - ev.ts).total_seconds() - track.clock_offset_s) < 1e-6  # video clock -> GPS time
    route = route_points(track, wrong.recording_start, wrong.recording_start + timedelta(seconds=info.duration_s))
    assert 10 <= len(route) <= 13
    assert route[0][0].startswith("2017-04-17T19:2")


# ------------------------------------------------------------------------------- source order


def test_embedded_wins_over_sidecar_and_sidecar_over_nothing(tmp_path):
    video = tmp_path / "karma.mp4"
    shutil.copy(KARMA, video)
    shutil.copy(BABEL / "nmea.gpx", tmp_path / "karma.GPX")
    info = probe(video, camera_tz="UTC")
    assert find_track(video, info, settings(tmp_path))[1] == "embedded:gpmf"

    plain = tmp_path / "2004_0807_032908_0001F.mp4"
    shutil.copy(NO_GPS_CLIP, plain)
    shutil.copy(BABEL / "nmea", tmp_path / "2004_0807_032908_0001F.nmea")
    info = probe(plain, camera_tz="UTC")
    track, source = find_track(plain, info, settings(tmp_path))
    assert source.startswith("sidecar:") and source.endswith(".nmea") and len(track) == 154
    ev = event(info.video_id, info.recording_start + timedelta(seconds=2))
    (out,) = align_gps([ev], track)
    assert out.lat == pytest.approx(42.5305, abs=1e-4)


def test_track_directory_by_recording_time(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(BABEL / "nmea", logs / "drive.nmea")
    shutil.copy(GPS / "tracks/gpxpy/around-visnjan-with-car.gpx", logs / "other-day.gpx")
    plain = tmp_path / "2004_0807_032930_0001F.mp4"  # 22 s into the NMEA log
    shutil.copy(NO_GPS_CLIP, plain)
    info = probe(plain, camera_tz="UTC")
    assert find_track(plain, info, settings(tmp_path)) is None  # no track dir configured
    track, source = find_track(plain, info, settings(tmp_path, gps_track_dir=logs))
    assert source.endswith("drive.nmea") and source.startswith("trackdir:")
    assert track.at(info.recording_start) is not None
    late = plain.with_name("2004_0808_032930_0001F.mp4")
    shutil.copy(NO_GPS_CLIP, late)
    assert find_track(late, probe(late, camera_tz="UTC"), settings(tmp_path, gps_track_dir=logs)) is None


def test_piofo_viofo_gpx_as_sidecar(tmp_path):
    """The GPX nvtk_mp42gpx made from a real Viofo clip works as a sidecar (stationary, 1 Hz)."""
    video = tmp_path / "2022_0518_170808_0001F.MP4"
    shutil.copy(NO_GPS_CLIP, video)
    shutil.copy(PIOFO, tmp_path / "2022_0518_170808_0001F.gpx")
    info = probe(video, camera_tz="UTC")
    track, source = find_track(video, info, settings(tmp_path))
    assert source.startswith("sidecar:") and len(track) == 6  # the duplicated first point is dropped
    fix = track.at(utc(2022, 5, 18, 17, 8, 9))
    assert fix.lat == pytest.approx(38.0672485, abs=1e-6) and fix.speed_mps < 0.1


def test_video_without_gps_gives_nulls(tmp_path):
    info = probe(NO_GPS_CLIP, camera_tz="UTC")
    assert find_track(NO_GPS_CLIP, info, settings(tmp_path)) is None
    ev = event(info.video_id, info.recording_start)
    assert align_gps([ev], None) == [ev] and ev.lat is None and ev.speed_mps is None
    assert route_points(None, info.recording_start, info.recording_start) == []


# ------------------------------------------------------------------------------ corrupt boxes


def _gpmd_samples(path: Path):
    with open(path, "rb") as f:
        moov = read_moov(f, path.stat().st_size)
    for trak in find(moov, [b"trak"]):
        fmt, samples = track_samples(moov, trak)
        if fmt == b"gpmd":
            return samples
    raise AssertionError("no gpmd track")


def test_corrupt_gpmf_payload_warns_and_keeps_the_rest(tmp_path, caplog):
    bad = tmp_path / "karma_corrupt.mp4"
    shutil.copy(KARMA, bad)
    first = _gpmd_samples(bad)[0]
    with open(bad, "r+b") as f:  # overwrite the first DEVC header: its size now runs past the payload
        f.seek(first.offset + 6)
        f.write(b"\xff\xff")
    with caplog.at_level(logging.WARNING):
        info = probe(bad, camera_tz="UTC")  # the video itself is fine
        track, source = find_track(bad, info, settings(tmp_path))
    assert source == "embedded:gpmf" and 0 < len(track) < 47
    assert "GPMF payloads are damaged" in caplog.text


def test_corrupt_gps_box_index_warns_and_falls_through(tmp_path, caplog):
    bad = tmp_path / "karma.mp4"
    shutil.copy(KARMA, bad)
    data = bytearray(bad.read_bytes())
    # the gpmd track's chunk offsets ('stco' of the 4th trak) point far outside the file
    samples = _gpmd_samples(bad)
    old = struct.pack(">I", samples[0].offset)
    pos = data.find(old, data.find(b"moov"))
    assert pos > 0
    data[pos : pos + 4] = struct.pack(">I", 0x7FFFFFF0)
    bad.write_bytes(bytes(data))
    shutil.copy(BABEL / "nmea.gpx", tmp_path / "karma.gpx")
    with caplog.at_level(logging.WARNING):
        info = probe(bad, camera_tz="UTC")
        found = find_track(bad, info, settings(tmp_path))
    assert "embedded GPS cannot be read" in caplog.text
    assert found is not None and found[1].startswith("sidecar:")  # fell through to the sidecar
    (tmp_path / "karma.gpx").unlink()
    assert find_track(bad, info, settings(tmp_path)) is None  # and without one: no GPS, no error


# --------------------------------------------------------------------------------- route table


def test_route_is_saved_with_the_video(db_url, tmp_path):
    from dashcam.db import get_route, make_engine, query_events, save_video

    info = probe(KARMA, camera_tz="UTC")
    track, source = find_track(KARMA, info, settings(tmp_path))
    end = info.recording_start + timedelta(seconds=info.duration_s)
    route = {"source": source, "points": route_points(track, info.recording_start, end)}
    events = align_gps([event(info.video_id, info.recording_start + timedelta(seconds=3))], track)
    engine = make_engine(db_url)
    try:
        save_video(engine, info, events, None, route=route)
        row = get_route(engine, info.video_id)
        assert row["source"] == "embedded:gpmf" and row["n_points"] == len(route["points"]) >= 10
        assert row["points"][0] == route["points"][0]
        (ev,) = query_events(engine, video_id=info.video_id)
        assert ev["lat"] == pytest.approx(events[0].lat) and ev["heading_deg"] is not None
        save_video(engine, info, events, None)  # route=None leaves the stored route
        assert get_route(engine, info.video_id)["n_points"] == row["n_points"]
        save_video(engine, info, events, None, route={"source": "sidecar:x.gpx", "points": route["points"][:3]})
        assert get_route(engine, info.video_id)["n_points"] == 3
    finally:
        engine.dispose()
