"""Drives: consecutive videos of one camera, grouped. The one definition every page uses.

Derived (not stored) from the ``videos`` table on every read, so it never goes stale:

1. **Camera** = the folder the source file was in (``videos.path``'s parent). A dashcam writes
   all its files into one folder (Viofo: ``DCIM/Movie``, front and rear side by side); two
   cameras, or two cards copied to two NAS folders, give two cameras.
2. **Segment** = one moment of one camera: a Viofo front file ``…_NNNNF.MP4`` and its rear
   partner ``…_NNNNR.MP4`` (same ``YYYY_MMDD_HHMMSS_NNNN`` stem, same folder) form one segment
   with two channels ``F`` and ``R``; any other file is a segment of its own (channel ``""``).
   A segment spans [earliest ``recording_start``, latest ``recording_start + duration_s``] of
   its files.
3. **Drive** = the segments of one camera in time order, a new drive starting whenever a
   segment begins more than ``gap_min`` minutes (:attr:`Settings.drive_gap_min`, default 10)
   after the end of everything before it in the drive. Dashcams cut a drive into 1-5 minute
   files with no gap, and stop recording when parked, so a gap means the car stood still.
4. **Drive id** = the id of the first segment's primary video (front, else the only file, else
   rear): stable while videos are added after or beside a drive; it changes only when an
   earlier video joins the drive (a late upload of the drive's first minutes).

Times are timezone-aware UTC datetimes throughout.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Any

__all__ = ["Drive", "Segment", "camera_of", "channel_of", "group_drives", "load_drives", "route_length_m"]

_VIOFO_STEM = re.compile(r"^(\d{4}_\d{4}_\d{6}_\d{3,6})([FR])$", re.IGNORECASE)


def _start(v: Mapping) -> datetime:
    s = v["recording_start"]
    return datetime.fromisoformat(s) if isinstance(s, str) else s


def camera_of(path: str) -> str:
    """The camera key of a video: the folder its source file was in (as stored, not resolved)."""
    return str(PurePath(path).parent)


def channel_of(path: str) -> tuple[str, str]:
    """``(segment stem, channel)`` of a video file name: ``("2024_0315_143022_0001", "F")`` for a
    Viofo front file, ``R`` for rear; ``(file stem, "")`` for any other name."""
    stem = PurePath(path).stem
    m = _VIOFO_STEM.match(stem)
    if m:
        return m.group(1), m.group(2).upper()
    return stem, ""


@dataclass
class Segment:
    """One moment of one camera: ``channels`` maps ``"F"``/``"R"``/``""`` to its videos row."""

    stem: str
    channels: dict[str, dict] = field(default_factory=dict)

    @property
    def primary(self) -> dict:
        """The front video if there is one, else the single file, else the rear."""
        for ch in ("F", "", "R"):
            if ch in self.channels:
                return self.channels[ch]
        raise ValueError("empty segment")

    @property
    def start(self) -> datetime:
        return min(_start(v) for v in self.channels.values())

    @property
    def end(self) -> datetime:
        return max(_start(v) + timedelta(seconds=float(v["duration_s"])) for v in self.channels.values())

    @property
    def videos(self) -> list[dict]:
        """Its videos rows, primary first."""
        p = self.primary
        return [p] + [v for v in self.channels.values() if v is not p]


@dataclass
class Drive:
    """Consecutive segments of one camera (see the module docstring for the rule)."""

    id: str
    camera: str
    segments: list[Segment]

    @property
    def start(self) -> datetime:
        return self.segments[0].start

    @property
    def end(self) -> datetime:
        return max(s.end for s in self.segments)

    @property
    def duration_s(self) -> float:
        """Wall-clock span from the first start to the last end, seconds."""
        return (self.end - self.start).total_seconds()

    @property
    def video_s(self) -> float:
        """Seconds of primary-channel video (a front+rear pair counts once)."""
        return sum(float(s.primary["duration_s"]) for s in self.segments)

    @property
    def videos(self) -> list[dict]:
        """Every videos row of the drive, segment by segment, primary first."""
        return [v for s in self.segments for v in s.videos]

    @property
    def video_ids(self) -> list[str]:
        return [v["id"] for v in self.videos]

    @property
    def n_events(self) -> int:
        return sum(int(v.get("n_events") or 0) for v in self.videos)

    def segment_of(self, video_id: str) -> Segment | None:
        for s in self.segments:
            if any(v["id"] == video_id for v in s.channels.values()):
                return s
        return None


def group_drives(videos: Iterable[Mapping[str, Any]], gap_min: float = 10.0) -> list[Drive]:
    """Group ``videos`` rows into drives, newest drive first.

    ``videos``: mappings with at least ``id``, ``path``, ``recording_start`` (aware datetime or
    ISO 8601 string), ``duration_s`` (seconds); other keys are carried along. ``gap_min``:
    minutes; a segment starting more than this after the drive's end so far starts a new drive.
    Deterministic for a given set of rows (ties broken by path).
    """
    if gap_min < 0:
        raise ValueError(f"gap_min must be >= 0 minutes, got {gap_min}")
    segs: dict[tuple[str, str], Segment] = {}
    for v in videos:
        v = dict(v)
        stem, ch = channel_of(v["path"])
        key = (camera_of(v["path"]), stem if ch else f"\0{v['id']}")
        seg = segs.setdefault(key, Segment(stem))
        if ch in seg.channels:  # the same name ingested twice (two ids): keep both as segments
            seg = segs.setdefault((key[0], f"\0{v['id']}"), Segment(stem))
        seg.channels[ch] = v
    by_camera: dict[str, list[Segment]] = defaultdict(list)
    for (cam, _), seg in segs.items():
        by_camera[cam].append(seg)
    gap = timedelta(minutes=gap_min)
    drives: list[Drive] = []
    for cam, ss in by_camera.items():
        ss.sort(key=lambda s: (s.start, s.primary["path"]))
        cur: list[Segment] = []
        end: datetime | None = None
        for s in ss:
            if end is not None and s.start - end > gap:  # end is None only before the first segment
                drives.append(Drive(cur[0].primary["id"], cam, cur))
                cur, end = [], None
            cur.append(s)
            end = s.end if end is None else max(end, s.end)
        if cur:
            drives.append(Drive(cur[0].primary["id"], cam, cur))
    drives.sort(key=lambda d: (d.start, d.id), reverse=True)
    return drives


def load_drives(conn, gap_min: float = 10.0) -> list[Drive]:
    """All drives of the results database (``conn``: an open SQLAlchemy Connection), newest first.

    Reads ``videos`` (id, path, recording_start, duration_s, camera, archive_path, n_events,
    width, height, codec, damage) once; see :func:`group_drives`.
    """
    import sqlalchemy as sa

    from dashcam.db import VIDEOS

    cols = [
        VIDEOS.c[c]
        for c in (
            "id",
            "path",
            "recording_start",
            "duration_s",
            "camera",
            "archive_path",
            "n_events",
            "width",
            "height",
            "codec",
            "damage",
            "fps",
        )
    ]
    rows = conn.execute(sa.select(*cols)).mappings().all()
    return group_drives(rows, gap_min)


def route_length_m(points: list) -> float:
    """Length in metres of a route (``[[t, lat, lon, ...], ...]``, WGS84 degrees): the sum of
    great-circle (haversine, gpxpy.geo.haversine_distance, mean Earth radius) distances."""
    from gpxpy.geo import haversine_distance

    total = 0.0
    prev = None
    for p in points:
        lat, lon = p[1], p[2]
        if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
            continue
        if prev is not None:
            total += haversine_distance(prev[0], prev[1], lat, lon)
        prev = (lat, lon)
    return total
