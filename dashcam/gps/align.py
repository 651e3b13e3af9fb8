"""Alignment of a video's events and route to its GPS track (stage ``gps``), and the route file.

Times: an event's ``ts`` and the route's start/end come in as **video-clock** time (recording
start + pts, aware UTC); a track's ``clock_offset_s`` (GPS UTC minus video clock, known for
embedded tracks, 0 for external ones) turns them into GPS time before the lookup
(:meth:`dashcam.gps.track.GpsTrack.at`). Positions are WGS84 degrees, speed m/s, heading degrees
clockwise from true north.

The route file (``<work_dir>/<video_id>/route.json``, :attr:`dashcam.records.Manifest.route_path`)
is ``{"source": "<label>", "points": [[t_iso, lat, lon, speed_mps, heading_deg], ...]}``, stored
by ``persist`` in table ``routes`` (:func:`dashcam.db.save_video`); absent when the video has no GPS.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dashcam.gps.track import GpsTrack
from dashcam.media.files import atomic_write_text
from dashcam.records import PlateEvent

__all__ = ["align_gps", "route_points", "write_route", "read_route"]


def align_gps(events: list[PlateEvent], track: GpsTrack | None, settings: Any = None) -> list[PlateEvent]:
    """Set lat/lon/speed/heading on each event from ``track`` at the event's ``ts``, or return
    the events unchanged when ``track`` is None.

    ``ts`` comes in as video-clock time (recording start + pts); the position is looked up at
    ``ts + track.clock_offset_s`` (:meth:`GpsTrack.at_video`), which corrects a camera clock or
    ``camera_tz`` error when the track is embedded in the video, and the returned events carry
    that corrected (GPS, UTC) ``ts``. Events outside the track, or inside a gap longer than the
    track's ``max_gap_s`` (``settings.gps_max_gap_s`` when it was loaded), keep null positions.
    ``settings`` is not used (kept for the callers that pass it). Returns copies; inputs untouched.
    """
    if track is None:
        return events
    offset = timedelta(seconds=track.clock_offset_s or 0.0)
    out = []
    for e in events:
        update: dict = {"ts": e.ts + offset}
        fix = track.at_video(e.ts)
        if fix is not None:
            update.update(lat=fix.lat, lon=fix.lon, speed_mps=fix.speed_mps, heading_deg=fix.heading_deg)
        out.append(e.model_copy(update=update))
    return out


def route_points(track: GpsTrack | None, start: datetime, end: datetime, step_s: float = 1.0) -> list[list]:
    """The simplified route of a video: ``[[t_iso, lat, lon, speed_mps, heading_deg], ...]``.

    One point every ``step_s`` seconds of video from ``start`` to ``end`` (video-clock times,
    e.g. ``info.recording_start`` and that plus ``duration_s``), interpolated on ``track``; ``t``
    is the GPS (UTC) time of the point. Instants outside the track or inside a gap are left out.
    Coordinates are rounded to 1e-7 deg (about 1 cm), speed/heading to 0.01. ``[]`` without a
    track or with ``step_s <= 0``.
    """
    if track is None or step_s <= 0:
        return []
    out: list[list] = []
    n = int((end - start).total_seconds() // step_s)
    offset = timedelta(seconds=track.clock_offset_s)
    for k in range(n + 1):
        t = start + timedelta(seconds=k * step_s) + offset
        fix = track.at(t)
        if fix is None:
            continue
        out.append(
            [
                t.isoformat(),
                round(fix.lat, 7),
                round(fix.lon, 7),
                None if fix.speed_mps is None else round(fix.speed_mps, 2),
                None if fix.heading_deg is None else round(fix.heading_deg, 2),
            ]
        )
    return out


def write_route(
    path: str | Path,
    track: GpsTrack | None,
    source: str | None,
    start: datetime,
    duration_s: float,
    step_s: float = 1.0,
) -> list[list]:
    """Write the video's route file atomically and return its points (:func:`route_points` from
    ``start`` over ``duration_s`` seconds of video, one per ``step_s``); without a track, remove a
    stale file instead and return ``[]``.

    Raises:
        OSError: the file cannot be written (no partial file is left).
    """
    p = Path(path)
    if track is None:
        p.unlink(missing_ok=True)
        return []
    points = route_points(track, start, start + timedelta(seconds=duration_s), step_s=step_s)
    atomic_write_text(p, json.dumps({"source": source, "points": points}))
    return points


def read_route(path: str | Path) -> dict:
    """The route file written by :func:`write_route`, or ``{}`` when there is none (no GPS: the
    stored route is then dropped).

    Raises:
        ValueError: the file is not JSON (``json.JSONDecodeError``).
    """
    p = Path(path)
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
