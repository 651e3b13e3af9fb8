"""GPX 1.0/1.1 tracks, read and written with gpxpy.

Format: GPX 1.1 schema, https://www.topografix.com/GPX/1/1/ (GPX 1.0 for ``<speed>``/``<course>``,
https://www.topografix.com/gpx_manual.asp). Sources of speed/heading, per point: the GPX 1.0
``<speed>`` (m/s) / ``<course>`` (degrees) elements (as gpxpy parses them), else a
``speed``/``course`` child in the point's ``<extensions>`` (e.g. Garmin ``gpxtpx:speed`` /
``gpxtpx:course`` in GPX 1.1); ``<fix>`` is the fix quality; ``<ele>`` the altitude (m).
Times are UTC by specification (a time without zone is taken as UTC).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gpxpy
import gpxpy.gpx

from dashcam.gps.track import FIX_RANK, GpsError, GpsPoint, GpsTrack

log = logging.getLogger(__name__)

__all__ = ["load_gpx", "track_to_gpx"]


def _ext_value(point: Any, names: tuple[str, ...]) -> float | None:
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
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


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

    raw: list[Any] = []
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
            pt.course = round(p.heading_deg, 3)  # type: ignore[assignment]
        if p.fix is not None:
            pt.type_of_gpx_fix = p.fix
        seg.points.append(pt)
    trk.segments.append(seg)
    gpx.tracks.append(trk)
    return gpx.to_xml(version="1.0")
