"""GPS tracks: load GPX with gpxpy and look up a position at a given UTC time.

Units and frames: latitude/longitude WGS84 decimal degrees; speed metres per second; heading
(course over ground) degrees clockwise from true north in ``[0, 360)``; times timezone-aware UTC.

Sources of speed/heading, per point: the GPX 1.0 ``<speed>``/``<course>`` elements (as gpxpy
parses them), else a ``speed``/``course`` child in the point's ``<extensions>`` (e.g. Garmin
``gpxtpx:speed``/``gpxtpx:course`` in GPX 1.1); when neither bracketing point has a value it is
derived from the two bracketing points (great-circle distance / time, initial bearing).

Fix quality (``fix``) uses GPX's ``<fix>`` vocabulary: ``"none"`` (no lock), ``"2d"``, ``"3d"``,
``"dgps"``, ``"pps"``; None where the source does not say (e.g. an NMEA RMC sentence only says
"valid"). Points whose source marks them invalid are dropped by the parsers
(:mod:`dashcam.gps_sources`), except GoPro's "no lock" (kept as ``"none"``, like ExifTool does).

Embedded tracks know when each GPS sample was taken in video time; ``GpsTrack.clock_offset_s``
carries the difference "GPS UTC minus video clock" (see :func:`GpsTrack.at` and docs/gps.md).
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import gpxpy
import gpxpy.geo
import gpxpy.gpx

log = logging.getLogger(__name__)

__all__ = ["GpsError", "GpsPoint", "GpsFix", "GpsTrack", "load_gpx", "find_gpx", "track_to_gpx", "FIX_RANK"]

#: Fix qualities, worst first (GPX ``<fix>`` values); None (unknown) ranks below "none" for min().
FIX_RANK = {"none": 0, "2d": 1, "3d": 2, "dgps": 3, "pps": 4}

#: Below this distance (metres) between bracketing points, a derived heading is undefined (None).
MIN_HEADING_DISTANCE_M = 1.0


class GpsError(Exception):
    """A GPS file cannot be used. The message names the file, what is wrong and what to do."""


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

    def __init__(self, points: list[GpsPoint], max_gap_s: float = 10.0, source: str = "",
                 clock_offset_s: float = 0.0):
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
        from datetime import timedelta

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


def _ext_value(point, names: tuple[str, ...]) -> float | None:
    """First numeric value of an extension element whose local tag name is in ``names``."""
    stack = list(getattr(point, "extensions", None) or [])
    while stack:
        el = stack.pop(0)
        tag = el.tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower() if isinstance(el.tag, str) else ""
        if tag in names and el.text:
            try:
                return float(el.text)
            except ValueError:
                pass
        stack.extend(list(el))
    return None


def _to_utc(dt: datetime) -> datetime:
    # GPX times are UTC by specification; a time without zone is taken as UTC.
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def load_gpx(path: str | os.PathLike, max_gap_s: float = 10.0) -> GpsTrack:
    """Load all timed points of all tracks (all segments) and routes of a GPX file.

    Waypoints are ignored (they are places, not a trajectory); points without ``<time>`` are
    ignored. Times become aware UTC. Speed/heading come from the file where present (see the
    module docstring).

    Raises:
        GpsError: file missing/unreadable, not valid GPX XML (corrupt, truncated, garbage),
            or no timed track/route point in it.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise GpsError(f"GPX file not found: {p}. Check the path.") from None
    except OSError as e:
        raise GpsError(f"Cannot read GPX file {p}: {e.strerror or e}.") from e
    if not text.strip():
        raise GpsError(f"GPX file {p} is empty. Re-export the track from the camera/logger.")
    points, n_raw = _gpx_points(text, p)
    if not points:
        raise GpsError(
            f"GPX file {p} has no track points with a time ({n_raw} points without time): it "
            "cannot be matched to video. Export the track with timestamps."
        )
    track = GpsTrack(points, max_gap_s=max_gap_s, source=str(p))
    log.debug("loaded %d GPS points from %s (%s .. %s)", len(track), p, track.start, track.end)
    return track


def _gpx_points(text: str, p: Path) -> tuple[list[GpsPoint], int]:
    """Timed points of all tracks/segments/routes of GPX ``text`` and the number of raw points."""
    try:
        gpx = gpxpy.parse(text)
    except Exception as e:  # gpxpy raises GPXXMLSyntaxException, GPXException, ValueError...
        raise GpsError(
            f"GPX file {p} is corrupt or not GPX ({type(e).__name__}: {str(e)[:200]}). It may be "
            "truncated (interrupted copy) or another format: re-export it as GPX."
        ) from e

    raw = []
    for trk in gpx.tracks:
        for seg in trk.segments:
            raw.extend(seg.points)
    for rte in gpx.routes:
        raw.extend(rte.points)
    points: list[GpsPoint] = []
    for pt in raw:
        if pt.time is None or pt.latitude is None or pt.longitude is None:
            continue
        speed = pt.speed if pt.speed is not None else _ext_value(pt, ("speed",))
        course = getattr(pt, "course", None)
        if course is None:
            course = _ext_value(pt, ("course", "heading", "bearing"))
        fix = getattr(pt, "type_of_gpx_fix", None)
        points.append(
            GpsPoint(
                time=_to_utc(pt.time),
                lat=float(pt.latitude),
                lon=float(pt.longitude),
                speed_mps=float(speed) if speed is not None else None,
                heading_deg=float(course) % 360.0 if course is not None else None,
                fix=fix if fix in FIX_RANK else None,
                alt_m=float(pt.elevation) if pt.elevation is not None else None,
            )
        )
    return points, len(raw)


def track_to_gpx(track: GpsTrack, name: str | None = None) -> str:
    """The track as GPX 1.0 text (one track, one segment), times UTC with milliseconds.

    GPX 1.0 because it has ``<speed>`` (m/s) and ``<course>`` (degrees) elements, so speed and
    heading survive a round trip through :func:`load_gpx`; ``<fix>`` carries the fix quality.
    """
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "dashcam-pipeline"
    trk = gpxpy.gpx.GPXTrack(name=name)
    seg = gpxpy.gpx.GPXTrackSegment()
    for p in track.points:
        pt = gpxpy.gpx.GPXTrackPoint(p.lat, p.lon, elevation=p.alt_m, time=p.time, speed=p.speed_mps)
        if p.heading_deg is not None:
            pt.course = round(p.heading_deg, 3)
        if p.fix is not None:
            pt.type_of_gpx_fix = p.fix
        seg.points.append(pt)
    trk.segments.append(seg)
    gpx.tracks.append(trk)
    return gpx.to_xml(version="1.0")


def find_gpx(video_path: str | os.PathLike, explicit: str | os.PathLike | None = None) -> Path | None:
    """The GPX file to use for ``video_path``.

    ``explicit`` wins when given (it must exist); else ``<stem>.gpx`` or ``<stem>.GPX`` beside
    the video; else None.

    Raises:
        GpsError: ``explicit`` is given but does not exist.
    """
    if explicit is not None:
        e = Path(explicit)
        if not e.is_file():
            raise GpsError(f"GPX file not found: {e} (given explicitly). Check the path.")
        return e
    v = Path(video_path)
    for suffix in (".gpx", ".GPX", ".Gpx"):
        cand = v.with_suffix(suffix)
        if cand.is_file():
            return cand
    return None
