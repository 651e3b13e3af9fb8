"""The GPS track model: timed points, and the position at any instant by interpolation.

Every format reader of this package (:mod:`~dashcam.gps.gpx`, :mod:`~dashcam.gps.nmea`,
:mod:`~dashcam.gps.freegps`, :mod:`~dashcam.gps.gpmf`) produces :class:`GpsPoint` lists that a
:class:`GpsTrack` holds; :meth:`GpsTrack.at` interpolates a :class:`GpsFix` at a UTC time.

Units and frames: latitude/longitude WGS84 decimal degrees; speed metres per second; heading
(course over ground) degrees clockwise from true north in ``[0, 360)``; times timezone-aware UTC.
Speed/heading of a point are those recorded in the source; where neither bracketing point has one
they are derived from the two bracketing points (great-circle distance / time, initial bearing).

Fix quality (``fix``) uses GPX's ``<fix>`` vocabulary: ``"none"`` (no lock), ``"2d"``, ``"3d"``,
``"dgps"``, ``"pps"``; None where the source does not say (e.g. an NMEA RMC sentence only says
"valid"). Points whose source marks them invalid are dropped by the parsers, except GoPro's
"no lock" (kept as ``"none"``, like ExifTool does).

Embedded tracks know when each GPS sample was taken in video time; ``GpsTrack.clock_offset_s``
carries the difference "GPS UTC minus video clock" (see :meth:`GpsTrack.at_video` and docs/gps.md).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import gpxpy.geo

from dashcam.media.isobmff import BoxError

__all__ = [
    "GpsError",
    "EmbeddedGpsError",
    "GpsPoint",
    "GpsFix",
    "GpsTrack",
    "FIX_RANK",
    "KNOTS",
    "MIN_HEADING_DISTANCE_M",
    "checked_point",
]

KNOTS = 1852.0 / 3600.0  # m/s per knot (NMEA and freeGPS speeds)

#: Fix qualities, worst first (GPX ``<fix>`` values); None (unknown) ranks below "none" for min().
FIX_RANK = {"none": 0, "2d": 1, "3d": 2, "dgps": 3, "pps": 4}

#: Below this distance (metres) between bracketing points, a derived heading is undefined (None).
MIN_HEADING_DISTANCE_M = 1.0


class GpsError(Exception):
    """A GPS file cannot be used. The message names the file, what is wrong and what to do."""


class EmbeddedGpsError(BoxError):
    """An embedded GPS structure is damaged (caught by :func:`dashcam.gps.sources.read_embedded`:
    it becomes a warning, never a failure of the video)."""


@dataclass(frozen=True)
class GpsPoint:
    """One timed track point: ``time`` aware UTC; ``lat``/``lon`` degrees; ``speed_mps`` m/s and
    ``heading_deg`` degrees from north as recorded in the file, else None; ``fix`` the fix
    quality (see the module docstring) or None; ``alt_m`` metres (informational) or None."""

    time: datetime
    lat: float
    lon: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    fix: str | None = None
    alt_m: float | None = None


@dataclass(frozen=True)
class GpsFix:
    """Position at one instant: WGS84 degrees, speed m/s (None if unknown), heading degrees
    clockwise from true north in [0, 360) (None if unknown, e.g. standing still)."""

    lat: float
    lon: float
    speed_mps: float | None
    heading_deg: float | None
    fix: str | None = None  # the worse of the two bracketing points' fix qualities


def _worse_fix(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b if a is None else None
    return a if FIX_RANK.get(a, 0) <= FIX_RANK.get(b, 0) else b


def _bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, degrees in [0, 360)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(x, y)) % 360.0


def _lerp_angle(a: float, b: float, f: float) -> float:
    """Interpolate angles in degrees along the shorter arc."""
    d = ((b - a + 180.0) % 360.0) - 180.0
    return (a + f * d) % 360.0


class GpsTrack:
    """A time-sorted sequence of :class:`GpsPoint` with interpolation by time.

    ``points``: sorted by time, duplicates of the same instant dropped (first kept).
    ``max_gap_s``: no position is invented across two consecutive points further apart in time.
    ``clock_offset_s``: GPS UTC minus the video's clock (``recording_start + pts``) at the same
    instant, when the source can tell (embedded tracks); 0 for external tracks, whose alignment
    rests on ``camera_tz``. :meth:`at` takes GPS time; :meth:`at_video` takes video-clock time.
    """

    def __init__(self, points: list[GpsPoint], max_gap_s: float = 10.0, source: str = "", clock_offset_s: float = 0.0):
        pts = sorted(points, key=lambda p: p.time)
        dedup: list[GpsPoint] = []
        for p in pts:
            if p.time.tzinfo is None:
                raise ValueError("GpsPoint.time must be timezone-aware (UTC)")
            if dedup and p.time == dedup[-1].time:
                continue
            dedup.append(p)
        self.points = dedup
        self.max_gap_s = float(max_gap_s)
        self.source = source
        self.clock_offset_s = float(clock_offset_s)
        self._t = [p.time.timestamp() for p in dedup]

    def __len__(self) -> int:
        return len(self.points)

    @property
    def start(self) -> datetime | None:
        return self.points[0].time if self.points else None

    @property
    def end(self) -> datetime | None:
        return self.points[-1].time if self.points else None

    def at_video(self, ts: datetime) -> GpsFix | None:
        """Position at video-clock time ``ts`` (``recording_start + pts``): ``at(ts + clock_offset_s)``."""
        return self.at(ts + timedelta(seconds=self.clock_offset_s))

    def _derived(self, i: int, j: int) -> tuple[float | None, float | None]:
        """Speed (m/s) and heading (deg) from point i to point j, or None across a gap."""
        a, b = self.points[i], self.points[j]
        dt = self._t[j] - self._t[i]
        if dt <= 0 or dt > self.max_gap_s:
            return None, None
        dist = gpxpy.geo.haversine_distance(a.lat, a.lon, b.lat, b.lon)
        heading = _bearing_deg(a.lat, a.lon, b.lat, b.lon) if dist >= MIN_HEADING_DISTANCE_M else None
        return dist / dt, heading

    def at(self, ts: datetime) -> GpsFix | None:
        """Position at ``ts`` (timezone-aware), or None outside the track / inside a long gap.

        * Exactly at a point's time: that point's lat/lon; its own speed/heading if recorded,
          else derived from the segment to the next point (or from the previous one at the end).
        * Between two points at most ``max_gap_s`` apart: lat/lon interpolated linearly in time
          (at GPS rates of 1-10 Hz the points are metres apart, where a straight line in
          degrees and the great circle differ by far less than GPS error; longitude is unwrapped
          across the antimeridian). Speed: linear between the two recorded speeds when both have
          one, else the one recorded, else great-circle distance / time between the points.
          Heading: shortest-arc interpolation of the recorded courses, else the one recorded,
          else the bearing from the earlier to the later point (None below 1 m of movement).
        * Before the first point, after the last, or between points more than ``max_gap_s``
          apart: None.

        Raises:
            ValueError: ``ts`` is naive (ambiguous: pass an aware UTC datetime).
        """
        if ts.tzinfo is None:
            raise ValueError("GpsTrack.at() needs a timezone-aware datetime (UTC)")
        if not self.points:
            return None
        t = ts.timestamp()
        if t < self._t[0] or t > self._t[-1]:
            return None
        j = bisect.bisect_left(self._t, t)
        if self._t[j] == t:
            p = self.points[j]
            speed, heading = p.speed_mps, p.heading_deg
            if speed is None or heading is None:
                k = (j, j + 1) if j + 1 < len(self.points) else (j - 1, j)
                d_speed, d_heading = self._derived(*k) if k[0] >= 0 else (None, None)
                speed = speed if speed is not None else d_speed
                heading = heading if heading is not None else d_heading
            return GpsFix(p.lat, p.lon, speed, heading, p.fix)

        i = j - 1
        a, b = self.points[i], self.points[j]
        dt = self._t[j] - self._t[i]
        if dt > self.max_gap_s:
            return None
        f = (t - self._t[i]) / dt
        lat = a.lat + f * (b.lat - a.lat)
        dlon = ((b.lon - a.lon + 180.0) % 360.0) - 180.0
        lon = ((a.lon + f * dlon + 180.0) % 360.0) - 180.0

        d_speed, d_heading = self._derived(i, j)
        if a.speed_mps is not None and b.speed_mps is not None:
            speed = a.speed_mps + f * (b.speed_mps - a.speed_mps)
        else:
            speed = a.speed_mps if a.speed_mps is not None else b.speed_mps
            if speed is None:
                speed = d_speed
        if a.heading_deg is not None and b.heading_deg is not None:
            heading = _lerp_angle(a.heading_deg, b.heading_deg, f)
        else:
            heading = a.heading_deg if a.heading_deg is not None else b.heading_deg
            if heading is None:
                heading = d_heading
        return GpsFix(lat, lon, speed, heading, _worse_fix(a.fix, b.fix))


def checked_point(
    t: datetime | None,
    lat: float,
    lon: float,
    spd: float | None,
    trk: float | None,
    fix: str | None = None,
    alt: float | None = None,
) -> GpsPoint | None:
    """A :class:`GpsPoint` from a parser's raw values, or None when it is not a usable fix.

    ``t`` aware UTC (None: no point); ``lat``/``lon`` WGS84 degrees (outside [-90, 90] x [-180, 180]
    or exactly (0, 0), a receiver without lock: no point); ``spd`` m/s (outside [0, 1000): dropped
    to None); ``trk`` course degrees (outside [-360, 720]: None; else taken modulo 360); ``fix``
    and ``alt`` (metres) as given.
    """
    if t is None or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat == 0.0 and lon == 0.0):
        return None
    if spd is not None and not (0.0 <= spd < 1000.0):
        spd = None
    if trk is not None and not (-360.0 <= trk <= 720.0):
        trk = None
    return GpsPoint(t, lat, lon, spd, trk % 360.0 if trk is not None else None, fix, alt)
