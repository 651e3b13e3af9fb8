"""dashcam.gps on real GPX tracks (gpxpy, GPSBabel test data)."""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime, timedelta

import gpxpy.geo
import pytest
from helpers import shared_dir

from dashcam.gps import GpsError, GpsTrack, find_sidecar, find_track, load_gpx, load_track_file

TRACKS = shared_dir() / "data/gps/tracks"
SPEED = TRACKS / "gpxpy/track_with_speed.gpx"  # GPX 1.0, 3 points with <speed>, no course
CAR = TRACKS / "gpxpy/around-visnjan-with-car.gpx"  # GPX 1.1 car drive, no speed/course
NMEA = TRACKS / "gpsbabel/nmea.gpx"  # GPX 1.0 with <speed> and <course> (from NMEA)

pytestmark = pytest.mark.skipif(not SPEED.exists(), reason=f"shared test data not found at {TRACKS}")


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


def _haversine(lat1, lon1, lat2, lon2):
    r = gpxpy.geo.EARTH_RADIUS
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def test_load_track_with_speed():
    track = load_gpx(SPEED, max_gap_s=10)
    assert len(track) == 3
    assert track.start == utc(2009, 3, 2, 14, 5, 52) and track.end == utc(2009, 3, 2, 14, 6, 5)
    assert [p.speed_mps for p in track.points] == [1.2, 2.2, 3.2]
    assert all(p.time.tzinfo is not None and p.time.utcoffset() == timedelta(0) for p in track.points)


def test_midpoint_interpolation_with_recorded_speed():
    track = load_gpx(SPEED, max_gap_s=10)
    fix = track.at(utc(2009, 3, 2, 14, 5, 55))  # half-way between 14:05:52 and 14:05:58
    assert fix.lat == pytest.approx((52.330848 + 52.330951) / 2, abs=1e-9)
    assert fix.lon == pytest.approx((5.541371 + 5.541344) / 2, abs=1e-9)
    assert fix.speed_mps == pytest.approx((1.2 + 2.2) / 2)  # from the file, interpolated
    assert 340 < fix.heading_deg < 360  # no course in the file: bearing, a little west of north


def test_exact_point_time_returns_the_point():
    track = load_gpx(SPEED, max_gap_s=10)
    fix = track.at(utc(2009, 3, 2, 14, 5, 58))
    assert (fix.lat, fix.lon, fix.speed_mps) == (52.330951, 5.541344, 2.2)
    last = track.at(utc(2009, 3, 2, 14, 6, 5))
    assert (last.lat, last.lon, last.speed_mps) == (52.331014, 5.541333, 3.2)


def test_outside_the_track_is_none():
    track = load_gpx(SPEED, max_gap_s=10)
    assert track.at(utc(2009, 3, 2, 14, 5, 51)) is None
    assert track.at(utc(2009, 3, 2, 14, 6, 5, 1)) is None
    assert track.at(utc(2024, 1, 1)) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        track.at(datetime(2009, 3, 2, 14, 5, 55))


def test_gap_rule():
    track = load_gpx(SPEED, max_gap_s=5)  # points are 6 s and 7 s apart
    assert track.at(utc(2009, 3, 2, 14, 5, 55)) is None
    fix = track.at(utc(2009, 3, 2, 14, 5, 58))  # a real point still counts
    assert (fix.lat, fix.lon, fix.speed_mps) == (52.330951, 5.541344, 2.2)
    assert fix.heading_deg is None  # no course in the file and no neighbour within the gap
    # a real car track: 06:16:00 -> 06:16:12 is a 12 s gap
    car = load_gpx(CAR, max_gap_s=10)
    assert car.at(utc(2020, 12, 18, 6, 16, 6)) is None
    assert load_gpx(CAR, max_gap_s=15).at(utc(2020, 12, 18, 6, 16, 6)) is not None


def test_car_track_derived_speed_and_heading():
    car = load_gpx(CAR, max_gap_s=10)
    assert len(car) > 100 and all(p.speed_mps is None for p in car.points)
    # points at 06:17:05 (45.2725250088, 13.7124552112) and 06:17:06 (45.2724903915, 13.7123416364)
    a, b = (45.2725250088, 13.7124552112), (45.2724903915, 13.7123416364)
    fix = car.at(utc(2020, 12, 18, 6, 17, 5, 500000))
    assert fix.lat == pytest.approx((a[0] + b[0]) / 2, abs=1e-9)
    assert fix.lon == pytest.approx((a[1] + b[1]) / 2, abs=1e-9)
    assert fix.speed_mps == pytest.approx(_haversine(*a, *b) / 1.0, rel=1e-3)  # ~9.6 m/s
    # moving south-west (lat and lon both decreasing, lon by more metres)
    assert 225 < fix.heading_deg < 270
    quarter = car.at(utc(2020, 12, 18, 6, 17, 5, 250000))
    assert quarter.lat == pytest.approx(a[0] + 0.25 * (b[0] - a[0]), abs=1e-9)


def test_recorded_course_is_used():
    track = load_gpx(NMEA, max_gap_s=10)
    fix = track.at(utc(2004, 8, 7, 3, 29, 9, 379000))
    assert fix.heading_deg == pytest.approx(145.850006)
    assert fix.speed_mps == pytest.approx(0.083333)
    mid = track.at(utc(2004, 8, 7, 3, 29, 8, 879000))  # between courses 138.92 and 145.85
    assert mid.heading_deg == pytest.approx((138.919998 + 145.850006) / 2)


def test_heading_interpolates_across_north():
    from dashcam.gps import GpsPoint

    t0 = utc(2024, 1, 1)
    pts = [GpsPoint(t0, 0.0, 0.0, 1.0, 350.0), GpsPoint(t0 + timedelta(seconds=1), 0.0, 0.0, 1.0, 10.0)]
    fix = GpsTrack(pts, max_gap_s=5).at(t0 + timedelta(seconds=0.5))
    assert fix.heading_deg == pytest.approx(0.0, abs=1e-9) or fix.heading_deg == pytest.approx(360.0)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_truncated_gpx_is_an_error(tmp_path, fraction):
    data = CAR.read_bytes()
    bad = tmp_path / "cut.gpx"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(GpsError, match="corrupt or not GPX") as ei:
        load_gpx(bad, max_gap_s=10)
    assert str(bad) in str(ei.value)


def test_garbage_empty_and_timeless_gpx(tmp_path):
    garbage = tmp_path / "garbage.gpx"
    garbage.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(GpsError):
        load_gpx(garbage, 10)
    empty = tmp_path / "empty.gpx"
    empty.write_text("")
    with pytest.raises(GpsError, match="empty"):
        load_gpx(empty, 10)
    timeless = tmp_path / "timeless.gpx"
    timeless.write_text(
        '<?xml version="1.0"?><gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">'
        '<trk><trkseg><trkpt lat="45.1" lon="13.7"/><trkpt lat="45.2" lon="13.8"/></trkseg></trk></gpx>'
    )
    with pytest.raises(GpsError, match="no track points with a time"):
        load_gpx(timeless, 10)
    with pytest.raises(GpsError, match="not found"):
        load_gpx(tmp_path / "missing.gpx", 10)


def test_sidecar_and_explicit_track(tmp_path):
    """The same-stem sidecar is found in any case; an explicit track wins; a missing one is an error
    (what the removed ``dashcam.gps.find_gpx`` did, now through the source discovery in use)."""
    from dashcam.settings import Settings

    video = tmp_path / "2024_0315_143022_0001F.MP4"
    video.write_bytes(b"")
    assert find_sidecar(video) is None
    sidecar = tmp_path / "2024_0315_143022_0001F.GPX"
    shutil.copy(SPEED, sidecar)
    assert find_sidecar(video) == sidecar
    found = find_track(video, None, Settings(data_dir=tmp_path / "data", gpx=CAR))
    assert found is not None and found[1] == f"explicit:{CAR}" and len(found[0]) > 0
    with pytest.raises(GpsError, match="not found"):
        load_track_file(tmp_path / "other.gpx")
