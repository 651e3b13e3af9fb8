"""Plate formats from where the car is (``plate_formats = "auto"``): real GPS tracks, the tz
database, a real clip analysed by the real models and voted with each track."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import csv_rows, model_dir, shared_dir

from dashcam.gps import GpsTrack, load_gpx
from dashcam.region import country_at, country_of_tz, formats_for_country, plate_priors
from dashcam.settings import Settings

TRACKS = shared_dir() / "data/gps/tracks"
NL_TRACK = TRACKS / "gpxpy/track_with_speed.gpx"  # a real GPX near Lelystad, NL (3 points, 13 s)
US_TRACK = TRACKS / "gpsbabel/nmea.gpx"  # a real NMEA log near Lake Geneva, Wisconsin, US (154 points)
VIDEOS = shared_dir() / "data/plates-video"
CLIP = "TrainingSet/Categorie I/Video10_2.avi"  # a Dutch plate, 3 s

pytestmark = pytest.mark.skipif(not NL_TRACK.exists(), reason=f"shared test data not found at {TRACKS}")


def test_country_of_real_track_positions():
    nl, us = load_gpx(NL_TRACK).points[0], load_gpx(US_TRACK).points[0]
    assert country_at(nl.lat, nl.lon) == "NL"
    assert country_at(us.lat, us.lon) == "US"
    assert country_at(None, None) is None and country_at(95.0, 0.0) is None


def test_country_of_timezone():
    assert country_of_tz("Europe/Amsterdam") == "NL"
    assert country_of_tz("America/Chicago") == "US"
    assert country_of_tz("Europe/Rome") == "IT"
    assert country_of_tz("UTC") is None and country_of_tz("Etc/GMT+2") is None
    assert country_of_tz("Not/AZone") is None


def test_priors_order_explicit_gps_tz_none():
    nl = load_gpx(NL_TRACK).points[0]
    auto_utc = Settings(camera_tz="UTC")
    assert auto_utc.plate_formats == ("auto",)  # the default
    assert plate_priors(auto_utc) == ()  # nothing known: no prior
    assert plate_priors(auto_utc, nl.lat, nl.lon) == ("NL",)  # GPS
    assert plate_priors(Settings(camera_tz="America/New_York")) == ("US",)  # camera timezone
    # GPS beats the camera timezone; an explicit setting beats both
    assert plate_priors(Settings(camera_tz="America/New_York"), nl.lat, nl.lon) == ("NL",)
    assert plate_priors(Settings(camera_tz="UTC", plate_formats="US"), nl.lat, nl.lon) == ("US",)
    assert plate_priors(Settings(camera_tz="UTC", plate_formats=""), nl.lat, nl.lon) == ()
    assert formats_for_country("DE") == ()  # variable-length codes: no prior
    assert Settings(plate_formats="auto").plate_formats == ("auto",)


def _time_matched(path, info) -> GpsTrack:
    """The real track, its clock offset set so that the clip's start is the track's start (as a
    camera clock that is off by years would be corrected by an embedded track's offset)."""
    t = load_gpx(path)
    return GpsTrack(
        t.points, max_gap_s=10.0, source=path.name, clock_offset_s=(t.start - info.recording_start).total_seconds()
    )


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    from dashcam.pipeline import analyze
    from dashcam.video import probe

    s = Settings(model_dir=model_dir(), camera_tz="UTC")
    info = probe(VIDEOS / CLIP, camera_tz="UTC")
    return s, info, analyze(info, s, tmp_path_factory.mktemp("work"))


def test_gps_positioned_events_get_their_country_prior(analysed):
    from dashcam.gps import align_gps
    from dashcam.pipeline import build_events, track_priors
    from dashcam.records import PlateRead, read_jsonl

    s, info, result = analysed
    label = next(r["plate_text"].replace("-", "") for r in csv_rows(VIDEOS / "labels.csv") if r["file"] == CLIP)
    reads = read_jsonl(result.reads_path, PlateRead)
    assert reads and all(r.slot_probs for r in reads)  # the plate recogniser's slot evidence travels
    nl_track, us_track = _time_matched(NL_TRACK, info), _time_matched(US_TRACK, info)
    assert track_priors(info, reads, s, nl_track) == ("NL",)
    assert track_priors(info, reads, s, us_track) == ("US",)
    assert track_priors(info, reads, s, None) == ()  # no GPS, camera_tz UTC: no prior
    # explicit plate_formats still wins over the position
    assert track_priors(info, reads, s.model_copy(update={"plate_formats": ("US",)}), nl_track) == ("US",)

    nl_events = align_gps(build_events(info, result, s, track=nl_track), nl_track)
    assert [e.final_plate for e in nl_events] == [label]
    assert country_at(nl_events[0].lat, nl_events[0].lon) == "NL"
    us_events = align_gps(build_events(info, result, s, track=us_track), us_track)
    assert us_events and country_at(us_events[0].lat, us_events[0].lon) == "US"
    assert us_events[0].ts - nl_events[0].ts != timedelta(0)  # GPS time from each track
