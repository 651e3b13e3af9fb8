"""Video identity and the file-name clock: which video a file is, and when its recording started.

* :func:`compute_video_id`: a stable, content-derived id (16 hex characters), the key of a video
  in the work dir, the archive and the results DB, whatever the file's path.
* :func:`parse_viofo_name`: the camera clock time and the camera (front/rear) in a Viofo-style
  file name ``YYYY_MMDD_HHMMSS_NNNN[F|R].MP4``.
* :func:`recording_start`: recording start as timezone-aware UTC (file name in ``camera_tz``,
  else the container's ``creation_time``, else the file's mtime).
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dashcam.media.errors import VideoError

__all__ = ["compute_video_id", "parse_viofo_name", "recording_start", "ID_CHUNK"]

#: Bytes hashed from each end of the file by :func:`compute_video_id`.
ID_CHUNK = 4 * 1024 * 1024


def compute_video_id(path: str | os.PathLike) -> str:
    """Return a stable, content-derived id for a video file: 16 lower-case hex characters.

    The id is ``sha256(b"dashcam-video-id/v1" + size as 8-byte big-endian + first 4 MiB +
    last 4 MiB)``, truncated to 64 bits. It reads at most 8 MiB whatever the file size (a
    multi-GB clip hashes in milliseconds), survives renames/copies/moves, and changes when
    the file is re-encoded, trimmed or otherwise altered at either end.

    Trade-off: bytes in the middle of a file larger than 8 MiB are not hashed, so two files of the
    same size that differ only in the middle get the same id. For camera-written MP4/AVI files
    this does not happen in practice: the index (``moov``/``idx1``, at one end) lists the byte size
    of every frame, and the first/last frames' compressed bytes are in the hashed ranges. A
    deliberately crafted file could collide; random collisions among 64-bit ids need ~4e9 files.

    Raises:
        VideoError: the file is missing or unreadable.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        h = hashlib.sha256(b"dashcam-video-id/v1")
        h.update(size.to_bytes(8, "big"))
        with open(p, "rb") as f:
            h.update(f.read(ID_CHUNK))
            if size > ID_CHUNK:
                f.seek(max(ID_CHUNK, size - ID_CHUNK))
                h.update(f.read(ID_CHUNK))
    except FileNotFoundError:
        raise VideoError(f"Video file not found: {p}. Check the path.") from None
    except OSError as e:
        raise VideoError(f"Cannot read video file {p}: {e.strerror or e}. Check permissions.") from e
    return h.hexdigest()[:16]


_VIOFO_RE = re.compile(
    r"^(?P<y>\d{4})_(?P<mo>\d{2})(?P<d>\d{2})_(?P<h>\d{2})(?P<mi>\d{2})(?P<s>\d{2})"
    r"_(?P<seq>\d{3,6})(?P<cam>[FR])?\.(?:mp4|mov|ts|avi)$",
    re.IGNORECASE,
)


def parse_viofo_name(name: str | os.PathLike) -> tuple[datetime, str | None] | None:
    """Parse a Viofo-style dashcam file name into ``(start, camera)``.

    Accepts ``YYYY_MMDD_HHMMSS_NNNN[F|R].EXT`` (e.g. ``2024_0315_143022_0001F.MP4``), the
    sequence number having 3-6 digits, ``F``/``R`` optional, any case, EXT one of mp4/mov/ts/avi.
    A path is accepted; only its final component is parsed.

    Returns:
        ``(datetime, camera)`` where the datetime is **naive** and is the camera's local clock
        time at recording start (interpret it with :func:`recording_start`), and camera is
        ``"F"`` (front), ``"R"`` (rear) or ``None``; or ``None`` when the name does not match or
        names an impossible date/time (e.g. month 13).
    """
    m = _VIOFO_RE.match(Path(name).name)
    if not m:
        return None
    try:
        dt = datetime(int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), int(m["s"]))
    except ValueError:
        return None
    cam = m["cam"].upper() if m["cam"] else None
    return dt, cam


def _camera_zone(camera_tz: str) -> tzinfo | None:
    """Return a tzinfo for ``camera_tz`` ("local" -> None meaning the system zone)."""
    if camera_tz in ("", "local"):
        return None
    try:
        return ZoneInfo(camera_tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"Unknown camera timezone {camera_tz!r}: use 'local' (this machine's timezone) or an "
            "IANA name such as 'Europe/Amsterdam' or 'UTC'."
        ) from None


def recording_start(
    path: str | os.PathLike,
    creation_time: datetime | None,
    camera_tz: str = "local",
    *,
    duration_s: float | None = None,
) -> tuple[datetime, str]:
    """Best estimate of when recording of ``path`` started, as timezone-aware UTC.

    Sources, first that applies wins:

    1. ``"filename"``: a Viofo-style name (:func:`parse_viofo_name`) gives the camera's local
       clock time, interpreted in ``camera_tz`` (``"local"`` = this machine's timezone, else an
       IANA name). For wall times that are ambiguous/non-existent around DST changes the first
       occurrence is used (``fold=0``). The name wins over the container tag because many
       dashcams write their local clock into the (nominally UTC) ``creation_time`` tag.
    2. ``"creation_time"``: the container's ``creation_time`` tag (naive values are taken as UTC).
       Values before 1990 are ignored (unset MP4 times decode as 1904/1970).
    3. ``"mtime"``: the file's modification time. A camera's last write is at the *end* of the
       recording, so when ``duration_s`` is given it is subtracted. Note a copy that did not
       preserve timestamps carries the copy time: this is the least reliable source.

    Raises:
        ValueError: ``camera_tz`` is not ``"local"`` or a known IANA zone name.
        VideoError: the mtime fallback is needed and the file does not exist.
    """
    parsed = parse_viofo_name(path)
    if parsed is not None:
        local_dt, _cam = parsed
        zone = _camera_zone(camera_tz)
        # naive -> the system's local zone, else the camera's
        aware = local_dt.astimezone() if zone is None else local_dt.replace(tzinfo=zone)
        return aware.astimezone(UTC), "filename"
    if creation_time is not None:
        ct = creation_time if creation_time.tzinfo else creation_time.replace(tzinfo=UTC)
        if ct.year >= 1990:
            return ct.astimezone(UTC), "creation_time"
    try:
        mtime = Path(path).stat().st_mtime
    except FileNotFoundError:
        raise VideoError(f"Video file not found: {path}. Check the path.") from None
    start = datetime.fromtimestamp(mtime, tz=UTC)
    if duration_s:
        start -= timedelta(seconds=float(duration_s))
    return start, "mtime"
