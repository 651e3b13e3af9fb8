"""GPS: where a video's track comes from, how each format is read, and how events are placed on it.

=============================  ===================================================================
module                         what it does
=============================  ===================================================================
:mod:`~dashcam.gps.track`       the track model: ``GpsPoint``, ``GpsTrack`` (interpolation by
                                time, clock offset), ``GpsFix``, ``GpsError``
:mod:`~dashcam.gps.gpx`         GPX files (gpxpy): ``load_gpx``, ``track_to_gpx``
:mod:`~dashcam.gps.nmea`        NMEA 0183 logs (pynmea2): ``parse_nmea``, ``load_nmea``
:mod:`~dashcam.gps.freegps`     Novatek/Viofo ``freeGPS`` blocks embedded in MP4s
:mod:`~dashcam.gps.gpmf`        GoPro GPMF telemetry (``gpmd`` track: GPS5, GPS9, Karma GLPI)
:mod:`~dashcam.gps.sources`     source discovery: explicit -> embedded -> sidecar -> track dir
                                (``find_track``), ``load_track_file``
:mod:`~dashcam.gps.align`       events and route on the track (``align_gps``, ``route_points``),
                                the ``route.json`` file (``write_route``, ``read_route``)
=============================  ===================================================================

The names callers use are re-exported here (``from dashcam.gps import find_track, GpsTrack``).
Units: WGS84 degrees, m/s, degrees clockwise from true north, aware UTC datetimes.
"""

from __future__ import annotations

from dashcam.gps.align import align_gps, read_route, route_points, write_route
from dashcam.gps.freegps import decode_freegps, read_freegps
from dashcam.gps.gpmf import gpmf_points, parse_gpmf, read_gpmf_mp4
from dashcam.gps.gpx import load_gpx, track_to_gpx
from dashcam.gps.nmea import load_nmea, parse_nmea
from dashcam.gps.sources import (
    TRACK_SUFFIXES,
    find_in_track_dir,
    find_sidecar,
    find_track,
    load_track_file,
    read_embedded,
)
from dashcam.gps.track import FIX_RANK, EmbeddedGpsError, GpsError, GpsFix, GpsPoint, GpsTrack

__all__ = [
    "GpsError",
    "EmbeddedGpsError",
    "GpsPoint",
    "GpsFix",
    "GpsTrack",
    "FIX_RANK",
    "load_gpx",
    "track_to_gpx",
    "load_nmea",
    "parse_nmea",
    "decode_freegps",
    "read_freegps",
    "parse_gpmf",
    "gpmf_points",
    "read_gpmf_mp4",
    "find_track",
    "read_embedded",
    "find_sidecar",
    "find_in_track_dir",
    "load_track_file",
    "TRACK_SUFFIXES",
    "align_gps",
    "route_points",
    "write_route",
    "read_route",
]
