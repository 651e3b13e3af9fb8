"""Where a video's GPS track comes from: source discovery, in order, and the embedded-track reader.

:func:`find_track` tries, per video, in this order and takes the first that yields points:

1. **embedded** in the video file (MP4/MOV, :func:`read_embedded`): GoPro GPMF
   (:mod:`dashcam.gps.gpmf`), then Novatek ``freeGPS`` (:mod:`dashcam.gps.freegps`);
2. a **sidecar** beside the video with the same stem: ``.gpx``, ``.nmea``, ``.log`` (any case;
   :func:`find_sidecar`, read by :func:`load_track_file`);
3. the configured **track directory** (``settings.gps_track_dir``): the GPX/NMEA log in it whose
   time range overlaps the recording most (:func:`find_in_track_dir`);
4. none: positions stay null.

An explicit ``settings.gpx`` wins over all of these (the CLI's ``--gpx``).

Failure policy: an embedded box that cannot be decoded logs a WARNING and the search falls
through to the next source; nothing in here raises for bad GPS data (a damaged GPS box must
never fail the ingest of the video). Only an explicitly given track that cannot be read raises
:class:`dashcam.gps.track.GpsError`.
"""

from __future__ import annotations

import logging
import os
import statistics
import struct
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from dashcam.gps.freegps import read_freegps
from dashcam.gps.gpmf import read_gpmf_mp4
from dashcam.gps.gpx import load_gpx
from dashcam.gps.nmea import load_nmea
from dashcam.gps.track import EmbeddedGpsError, GpsError, GpsTrack
from dashcam.media.isobmff import MP4_FIRST_BOXES, read_moov

log = logging.getLogger(__name__)

__all__ = ["find_track", "read_embedded", "find_sidecar", "find_in_track_dir", "load_track_file", "TRACK_SUFFIXES"]

TRACK_SUFFIXES = (".gpx", ".nmea", ".log")  # sidecar suffixes, tried in this order (any case)


def load_track_file(path: str | os.PathLike, max_gap_s: float = 10.0, date_hint: date | None = None) -> GpsTrack:
    """A GPX (by content: starts with ``<``) or NMEA track file.

    Raises:
        GpsError: the file is missing, unreadable or has no timed point.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    except FileNotFoundError:
        raise GpsError(f"GPS track file not found: {p}. Check the path.") from None
    except OSError as e:
        raise GpsError(f"Cannot read GPS track file {p}: {e.strerror or e}.") from e
    if head.startswith(b"<"):
        return load_gpx(p, max_gap_s=max_gap_s)
    return load_nmea(p, max_gap_s=max_gap_s, date_hint=date_hint)


def _median_offset(pairs: list[tuple[float, datetime]], start: datetime) -> float:
    """Median of GPS time - (video start + video time): the video clock's error, seconds."""
    if not pairs:
        return 0.0
    return float(statistics.median((g - start).total_seconds() - vt for vt, g in pairs))


def read_embedded(path: Path, recording_start: datetime | None, max_gap_s: float) -> GpsTrack | None:
    """The GPS track embedded in ``path`` (GPMF first, then freeGPS), or None.

    ``recording_start`` (aware UTC, the video clock's start) gives the track's
    ``clock_offset_s``: the median over samples of GPS time minus (start + video time); 0 without
    it. Sources: ``embedded:gpmf`` / ``embedded:freegps``.

    Never raises for damaged data: a damaged box logs a WARNING and gives None.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 8 or head[4:8] not in MP4_FIRST_BOXES:
                return None  # not an MP4/MOV
            moov = read_moov(f, size)
        gpmf = read_gpmf_mp4(path, moov)
        if gpmf is not None and gpmf[0]:
            points, anchors = gpmf
            off = _median_offset(anchors, recording_start) if recording_start else 0.0
            return GpsTrack(points, max_gap_s=max_gap_s, source="embedded:gpmf", clock_offset_s=off)
        fg = read_freegps(path, moov)
        if fg is not None and fg[0]:
            points, vtimes = fg
            off = (
                _median_offset([(vt, p.time) for vt, p in zip(vtimes, points, strict=False)], recording_start)
                if recording_start
                else 0.0
            )
            return GpsTrack(points, max_gap_s=max_gap_s, source="embedded:freegps", clock_offset_s=off)
    except (EmbeddedGpsError, struct.error, OSError, ValueError, OverflowError) as exc:
        log.warning("%s: embedded GPS cannot be read (%s); trying sidecar/track files instead", path.name, exc)
    return None


def find_sidecar(video_path: Path) -> Path | None:
    """``<stem>.gpx``, ``<stem>.nmea`` or ``<stem>.log`` (any case, tried in that order) beside
    the video, or None (also when the folder cannot be listed)."""
    try:
        siblings = {p.name.lower(): p for p in video_path.parent.iterdir() if p.is_file()}
    except OSError:
        return None
    for suffix in TRACK_SUFFIXES:
        cand = siblings.get((video_path.stem + suffix).lower())
        if cand is not None:
            return cand
    return None


# (path, size, mtime_ns) -> (start, end) of tracks in the track directory, per process
_range_cache: dict[tuple[str, int, int], tuple[datetime, datetime] | None] = {}


def _track_range(p: Path, max_gap_s: float) -> tuple[datetime, datetime] | None:
    """(start, end) of a track file, cached per (path, size, mtime); None when it is unusable."""
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _range_cache:
        try:
            t = load_track_file(p, max_gap_s)
            _range_cache[key] = (t.start, t.end) if t.start and t.end else None
        except GpsError as exc:
            log.debug("track dir: %s skipped: %s", p, exc)
            _range_cache[key] = None
    return _range_cache[key]


def find_in_track_dir(track_dir: Path, start: datetime, end: datetime, max_gap_s: float) -> GpsTrack | None:
    """The track of ``track_dir`` (``.gpx/.nmea/.log/.txt`` files, recursively) whose time range
    overlaps [start, end] (aware UTC) most, with source ``trackdir:<path>``; None when none overlaps
    or the folder cannot be listed.

    Raises:
        GpsError: the chosen file became unreadable between the scan and the load.
    """
    best: tuple[float, Path] | None = None
    try:
        files = sorted(
            p
            for p in Path(track_dir).rglob("*")
            if p.is_file() and p.suffix.lower() in (".gpx", ".nmea", ".log", ".txt")
        )
    except OSError as exc:
        log.warning("GPS track directory %s cannot be listed: %s", track_dir, exc)
        return None
    for p in files:
        rng = _track_range(p, max_gap_s)
        if rng is None:
            continue
        overlap = (min(end, rng[1]) - max(start, rng[0])).total_seconds()
        if overlap >= 0 and (best is None or overlap > best[0]):
            best = (overlap, p)
    if best is None:
        return None
    track = load_track_file(best[1], max_gap_s)
    track.source = f"trackdir:{best[1]}"
    return track


def find_track(
    video_path: Path, info: Any, settings: Any, problems: list[str] | None = None
) -> tuple[GpsTrack, str] | None:
    """The best GPS track for a video and its source label, or None.

    Order: ``settings.gpx`` when set (explicit; it must be readable) -> embedded in the file
    (``embedded:gpmf`` / ``embedded:freegps``) -> same-stem sidecar ``.gpx/.nmea/.log``
    (``sidecar:<path>``) -> ``settings.gps_track_dir`` (``trackdir:<path>``) -> None.

    Tracks from files are in GPS (UTC) time and are matched to the video through
    ``info.recording_start`` (file-name time interpreted in ``settings.camera_tz``); an embedded
    track also knows the video clock's offset from GPS time (``track.clock_offset_s``).

    ``problems``: when given, a one-line message is appended for each track file that exists
    but could not be used (a corrupt same-stem sidecar, an unreadable track dir), so callers can
    report it instead of a bare "no GPS"; they are logged as warnings either way.

    Raises:
        GpsError: only for an explicit ``settings.gpx`` that is missing or unreadable.
    """
    video_path = Path(video_path)
    track: GpsTrack | None
    gap = settings.gps_max_gap_s
    start = getattr(info, "recording_start", None)
    explicit = getattr(settings, "gpx", None)
    if explicit:
        track = load_track_file(explicit, gap, date_hint=start.date() if start else None)
        return track, f"explicit:{explicit}"
    track = read_embedded(video_path, start, gap)
    if track is not None and len(track):
        return track, track.source
    side = find_sidecar(video_path)
    if side is not None:
        try:
            track = load_track_file(side, gap, date_hint=start.date() if start else None)
            return track, f"sidecar:{side}"
        except GpsError as exc:
            log.warning("%s: sidecar %s cannot be used: %s", video_path.name, side.name, exc)
            if problems is not None:
                problems.append(f"GPS sidecar {side} is unreadable: {_one_line(exc)}")
    track_dir = getattr(settings, "gps_track_dir", None)
    if track_dir and start is not None:
        end = start + timedelta(seconds=float(getattr(info, "duration_s", 0.0) or 0.0))
        try:
            track = find_in_track_dir(Path(track_dir), start, end, gap)
        except GpsError as exc:
            log.warning("GPS track directory %s: %s", track_dir, exc)
            if problems is not None:
                problems.append(f"GPS track directory {track_dir}: {_one_line(exc)}")
            track = None
        if track is not None:
            return track, track.source
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
