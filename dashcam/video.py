"""Video input: identify, probe and stream-decode dashcam clips with ffmpeg.

Everything here shells out to the ``ffmpeg``/``ffprobe`` binaries (found on ``PATH``) through
``ffmpeg-python``, which only builds the command lines. Nothing loads a whole video into memory:
:func:`iter_frames` streams raw BGR frames from an ffmpeg subprocess through a bounded queue.

Conventions (see also :mod:`dashcam.records`):

* ``frame_idx`` is the 0-based index of a frame in the decoded source video stream;
  ``pts_s = frame_idx / fps`` is seconds from the start of that stream (nominal timing: exact for
  constant-frame-rate files, which is what dashcams write; approximate for VFR phone videos).
* Images are ``numpy.ndarray`` of shape ``(height, width, 3)``, dtype ``uint8``, **BGR** channel
  order (OpenCV's), origin top-left, at the decoded stream's full resolution (after ffmpeg's
  automatic display-rotation, which :func:`probe` accounts for in ``width``/``height``).
* All datetimes returned are timezone-aware UTC, except :func:`parse_viofo_name` (naive local
  camera clock time, as written in the file name).

Input paths are passed to ffmpeg as ``file:<absolute path>`` so that names containing ``:`` or
starting with ``-`` are never taken for protocols or options.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ffmpeg
import numpy as np

from dashcam import procs
from dashcam.records import VideoInfo

log = logging.getLogger(__name__)

__all__ = [
    "VideoError",
    "compute_video_id",
    "parse_viofo_name",
    "recording_start",
    "probe",
    "Frame",
    "DecodeStats",
    "iter_frames",
    "decode_only_seconds",
    "frame_step",
    "mp4_truncation",
]

#: Bytes hashed from each end of the file by :func:`compute_video_id`.
ID_CHUNK = 4 * 1024 * 1024

#: More than this many seconds (and 3 frames) missing at the end of a decode marks the video
#: damaged (:attr:`DecodeStats.damage`); :func:`iter_frames` raises only past ``max_missing_s``.
DAMAGED_TAIL_S = 0.5

#: A file modified less than this many seconds ago may still be being written or copied.
RECENT_WRITE_S = 120.0

_FFMPEG = "ffmpeg"
_FFPROBE = "ffprobe"
_FF_GLOBAL = ["-nostdin", "-hide_banner", "-loglevel", "error"]


class VideoError(Exception):
    """A video cannot be used. The message names the file, what is wrong, and what to do."""


# --------------------------------------------------------------------------------------------
# identity and names


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
        dt = datetime(
            int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), int(m["s"])
        )
    except ValueError:
        return None
    cam = m["cam"].upper() if m["cam"] else None
    return dt, cam


def _camera_zone(camera_tz: str):
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
        if zone is None:
            aware = local_dt.astimezone()  # naive -> system local zone
        else:
            aware = local_dt.replace(tzinfo=zone)
        return aware.astimezone(timezone.utc), "filename"
    if creation_time is not None:
        ct = creation_time if creation_time.tzinfo else creation_time.replace(tzinfo=timezone.utc)
        if ct.year >= 1990:
            return ct.astimezone(timezone.utc), "creation_time"
    try:
        mtime = Path(path).stat().st_mtime
    except FileNotFoundError:
        raise VideoError(f"Video file not found: {path}. Check the path.") from None
    start = datetime.fromtimestamp(mtime, tz=timezone.utc)
    if duration_s:
        start -= timedelta(seconds=float(duration_s))
    return start, "mtime"


# --------------------------------------------------------------------------------------------
# probe


def _ff_path(path: str | os.PathLike) -> str:
    return "file:" + str(Path(path).resolve())


def _parse_rate(rate: str | None) -> float:
    if not rate or rate in ("0/0", "0"):
        return 0.0
    try:
        if "/" in rate:
            num, den = rate.split("/", 1)
            return float(num) / float(den) if float(den) else 0.0
        return float(rate)
    except ValueError:
        return 0.0


def _parse_creation_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    return dt if dt.year >= 1990 else None


def _stderr_text(e: Exception) -> str:
    err = getattr(e, "stderr", None)
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    return (err or "").strip()


def _tail(text: str, n: int = 8) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def _recent_hint(p: Path) -> str:
    try:
        age = time.time() - p.stat().st_mtime
    except OSError:
        return ""
    if age < RECENT_WRITE_S:
        return (
            f" It was modified {max(age, 0):.0f} s ago and may still be being written or copied:"
            " wait until the camera/copy has finished and try again."
        )
    return ""


def mp4_truncation(p: Path, size: int) -> str | None:
    """Walk the top-level boxes of an ISO-BMFF (MP4/MOV) file; describe truncation or None.

    Reads 16 bytes per top-level box (a handful per file). Detects a box that declares more bytes
    than the file holds, i.e. a file cut short (interrupted copy, camera power loss) even when its
    index (``moov``) sits at the start and ffprobe therefore succeeds.
    """
    try:
        with open(p, "rb") as f:
            pos = 0
            seen_moov = False
            while pos + 8 <= size:
                f.seek(pos)
                hdr = f.read(16)
                box_size = int.from_bytes(hdr[0:4], "big")
                box_type = hdr[4:8]
                if box_type == b"moov":
                    seen_moov = True
                if box_size == 1 and len(hdr) >= 16:
                    box_size = int.from_bytes(hdr[8:16], "big")
                elif box_size == 0:  # "extends to end of file": only legal for the last box
                    break
                if box_size < 8:
                    return f"corrupt MP4 box structure at byte {pos}"
                if pos + box_size > size:
                    return (
                        f"the '{box_type.decode('latin-1')}' box at byte {pos} declares "
                        f"{box_size} bytes but the file ends after {size - pos}"
                    )
                pos += box_size
            if not seen_moov:
                return "the MP4 index ('moov' box) is missing"
    except OSError:
        return None
    return None


_MP4_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"pnot"}


def _looks_like_mp4(p: Path) -> bool:
    """True when the file starts with an ISO-BMFF box (so a missing moov means truncation)."""
    try:
        with open(p, "rb") as f:
            return f.read(8)[4:8] in _MP4_FIRST_BOXES
    except OSError:
        return False


def _video_stream(meta: dict) -> dict | None:
    for s in meta.get("streams", []):
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic"):
            return s
    return None


def _rotation(stream: dict) -> int:
    rot = (stream.get("tags") or {}).get("rotate")
    for sd in stream.get("side_data_list") or []:
        if "rotation" in sd:
            rot = sd["rotation"]
    try:
        return int(float(rot or 0)) % 360
    except (TypeError, ValueError):
        return 0


_IMAGE_FORMATS = {"image2", "tty", "gif", "apng", "webp_pipe"}


def probe(path: str | os.PathLike, camera_tz: str = "local") -> VideoInfo:
    """Probe a video with ffprobe (``ffmpeg.probe``) and return its :class:`VideoInfo`.

    Fields: ``duration_s`` (video stream duration, else container duration; seconds),
    ``fps`` (``avg_frame_rate``, else ``r_frame_rate``; frames/s), ``size_bytes``, ``codec``
    (ffprobe ``codec_name``, e.g. ``"h264"``, ``"mjpeg"``), ``frame_count`` (container
    ``nb_frames`` when present, else ``round(duration_s * fps)``), ``width``/``height`` (pixels
    of the *decoded* frames, i.e. swapped for 90/270-degree display rotation, which ffmpeg
    applies when decoding), ``creation_time`` (container tag, UTC, or None),
    ``recording_start``/``recording_start_source`` (:func:`recording_start`), ``camera``
    (Viofo ``F``/``R`` or None), ``start_s`` (video stream start minus container start,
    seconds: the first frame's pts as :func:`iter_frames` sees it) and ``video_id``
    (:func:`compute_video_id`).

    Raises:
        VideoError: missing or empty file; file still growing while probed; not a video (no
            video stream, a still image or text); MP4 cut short (missing ``moov`` index or a box
            running past the end of the file, e.g. an interrupted copy or a camera that lost
            power before finalising); zero duration or frame rate.
        ValueError: unknown ``camera_tz``.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise VideoError(f"Video file not found: {p}. Check the path.") from None
    except OSError as e:
        raise VideoError(f"Cannot access video file {p}: {e.strerror or e}.") from e
    if not p.is_file():
        raise VideoError(f"{p} is not a regular file (a directory?). Pass a video file.")
    if st.st_size == 0:
        raise VideoError(
            f"Video file {p} is empty (0 bytes): the copy failed or the camera is still writing "
            "it. Re-copy it from the card." + _recent_hint(p)
        )

    try:
        meta = procs.ffprobe_json(_ff_path(p), cmd=_FFPROBE, v="error")
    except (ffmpeg.Error, procs.ProbeError) as e:
        err = _stderr_text(e)
        if "moov atom not found" in err and _looks_like_mp4(p):
            what = (
                "is an incomplete MP4: its index ('moov' atom) is missing, which happens when the "
                "camera lost power before finalising the file or the copy was interrupted. "
                "Re-copy it, or repair it with a tool such as untrunc."
            )
        else:
            what = (
                "is not a readable video (ffprobe failed). Check that it is a video file and not "
                "corrupt."
            )
        raise VideoError(f"{p} {what}{_recent_hint(p)}\nffprobe said: {_tail(err, 4)}") from None
    except FileNotFoundError:
        raise VideoError("ffprobe was not found on PATH: install ffmpeg.") from None

    size_after = p.stat().st_size
    if size_after != st.st_size:
        raise VideoError(
            f"Video file {p} is still being written (size changed from {st.st_size} to "
            f"{size_after} bytes while probing). Wait until the camera/copy has finished."
        )

    fmt = meta.get("format") or {}
    fmt_name = fmt.get("format_name") or ""
    vs = _video_stream(meta)
    if vs is None:
        raise VideoError(
            f"{p} has no video stream (format {fmt_name or 'unknown'}). Pass a video file."
        )
    codec = vs.get("codec_name") or "unknown"
    if fmt_name in _IMAGE_FORMATS or fmt_name.endswith("_pipe") or codec == "ansi":
        raise VideoError(
            f"{p} is not a video but a {'text file' if codec == 'ansi' else 'still image'} "
            f"(ffprobe format {fmt_name}). Pass a video file."
        )

    if "mp4" in fmt_name or "mov" in fmt_name:
        trunc = mp4_truncation(p, st.st_size)
        if trunc:
            raise VideoError(
                f"{p} is an incomplete MP4: {trunc}. The copy was probably interrupted or the "
                f"camera lost power while writing. Re-copy it from the card.{_recent_hint(p)}"
            )

    fps = _parse_rate(vs.get("avg_frame_rate")) or _parse_rate(vs.get("r_frame_rate"))
    duration = 0.0
    for val in (vs.get("duration"), fmt.get("duration")):
        try:
            duration = float(val)
        except (TypeError, ValueError):
            continue
        if duration > 0:
            break
    if fps <= 0 or duration <= 0:
        raise VideoError(
            f"{p} has no usable timing (fps={fps:g}, duration={duration:g} s): it is empty, "
            "corrupt or not a video. Re-copy it or check the file."
        )
    try:
        frame_count = int(vs.get("nb_frames") or 0)
    except ValueError:
        frame_count = 0
    if frame_count <= 0:
        frame_count = max(1, round(duration * fps))

    width, height = int(vs.get("width") or 0), int(vs.get("height") or 0)
    if width <= 0 or height <= 0:
        raise VideoError(f"{p}: video stream has no frame size (corrupt header?).")
    if _rotation(vs) in (90, 270):
        width, height = height, width

    creation = _parse_creation_time((fmt.get("tags") or {}).get("creation_time")) or (
        _parse_creation_time((vs.get("tags") or {}).get("creation_time"))
    )
    start, source = recording_start(p, creation, camera_tz, duration_s=duration)
    parsed = parse_viofo_name(p)
    start_s = 0.0
    try:
        start_s = float(vs.get("start_time") or 0.0) - float(fmt.get("start_time") or 0.0)
    except (TypeError, ValueError):
        pass
    return VideoInfo(
        path=str(p.resolve()),
        video_id=compute_video_id(p),
        size_bytes=st.st_size,
        duration_s=duration,
        fps=fps,
        frame_count=frame_count,
        width=width,
        height=height,
        codec=codec,
        creation_time=creation,
        recording_start=start,
        recording_start_source=source,
        camera=parsed[1] if parsed else None,
        start_s=max(0.0, start_s),
    )


# --------------------------------------------------------------------------------------------
# streaming decode


@dataclass
class Frame:
    """One decoded frame.

    ``frame_idx``: 0-based index in the source video stream; ``pts_s``: ``frame_idx / fps``
    (seconds from stream start); ``image``: ``(H, W, 3)`` ``uint8`` BGR, writable, owned by the
    consumer (not reused by the decoder).
    """

    frame_idx: int
    pts_s: float
    image: np.ndarray


@dataclass
class DecodeStats:
    """Live counters of one :func:`iter_frames` run (pass one in to watch progress).

    ``step``: K, every K-th source frame is yielded; ``expected_frames``: frames the run should
    yield (``ceil(frame_count / K)``); ``frames_decoded``: frames read from ffmpeg so far (yielded
    + waiting in the queue); ``frames_yielded``: frames handed to the consumer;
    ``max_queue_depth``: most frames ever waiting in the queue (<= ``queue_size``);
    ``pid``: the ffmpeg process id; ``returncode``: its exit status once finished;
    ``missing_s``: seconds of video expected but not decoded at the end (0 when complete);
    ``damage``: one line saying where decoding failed and why, when the video is damaged (see
    :func:`iter_frames`), else None; ``stderr_tail``: last lines ffmpeg logged (errors only);
    ``done``: the generator finished.
    """

    path: str = ""
    step: int = 1
    expected_frames: int = 0
    frames_decoded: int = 0
    frames_yielded: int = 0
    max_queue_depth: int = 0
    pid: int | None = None
    returncode: int | None = None
    missing_s: float = 0.0
    damage: str | None = None
    stderr_tail: str = ""
    done: bool = False
    started_at: float = field(default_factory=time.monotonic)

    @property
    def progress(self) -> float:
        """Fraction in [0, 1] of the expected frames yielded so far."""
        if self.expected_frames <= 0:
            return 0.0
        return min(1.0, self.frames_yielded / self.expected_frames)


_EOF = object()


def frame_step(fps: float, detect_fps: float) -> int:
    """K = max(1, round(fps / detect_fps)): every K-th source frame is analysed."""
    if detect_fps <= 0:
        raise ValueError(f"detect_fps must be > 0, got {detect_fps}")
    return max(1, round(fps / detect_fps))


# decode runs at log level info, with each line tagged by its level, for the showinfo filter's
# per-frame pts lines (how a frame that follows lost frames gets its true frame_idx); only
# [error]/[fatal]/[panic] lines are kept as ffmpeg's messages
_FF_DECODE_GLOBAL = ["-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info"]
_SHOWINFO_RE = re.compile(r"Parsed_showinfo.*\sn:\s*\d+\s+pts:\s*\S+\s+pts_time:\s*(\S+)")
_ERROR_TAGS = ("[error]", "[fatal]", "[panic]")


def _decode_cmd(info: VideoInfo, step: int, threads: int | None) -> list[str]:
    in_kwargs: dict[str, Any] = {}
    if threads:
        in_kwargs["threads"] = threads
    stream = ffmpeg.input(_ff_path(info.path), **in_kwargs)["v:0"]
    if step > 1:
        stream = stream.filter("select", f"not(mod(n,{step}))")
    stream = stream.filter("showinfo")
    out = ffmpeg.output(
        stream, "pipe:", format="rawvideo", pix_fmt="bgr24", vsync="passthrough", an=None, sn=None
    )
    args = ffmpeg.get_args(out)
    return [_FFMPEG, *_FF_DECODE_GLOBAL, *args]


def _error_line(line: str) -> str | None:
    """ffmpeg's message without its ``[ctx @ 0x..] [level]`` prefix when it is an error, else None."""
    for tag in _ERROR_TAGS:
        i = line.find(tag)
        if i >= 0:
            ctx = line[:i].strip()
            msg = line[i + len(tag):].strip()
            ctx = re.sub(r"\s*@\s*0x[0-9a-fA-F]+", "", ctx).strip().strip("[]").strip()
            return f"{ctx}: {msg}" if ctx else msg
    return None


def iter_frames(
    info: VideoInfo,
    detect_fps: float,
    queue_size: int = 8,
    *,
    stats: DecodeStats | None = None,
    max_missing_s: float = 1.0,
    threads: int | None = None,
    damage_ok: bool = False,
) -> Iterator[Frame]:
    """Stream-decode every K-th frame of ``info.path`` (K = ``max(1, round(fps/detect_fps))``).

    Yields :class:`Frame` with ``frame_idx = 0, K, 2K, ...`` and ``pts_s = frame_idx / fps``.
    Selection happens inside ffmpeg (``select='not(mod(n,K))'`` with passthrough frame timing,
    so no frame is duplicated or dropped to fill a constant rate); only selected frames cross the
    pipe as ``rawvideo`` ``bgr24`` of ``info.width x info.height``. Each frame's index comes from
    its presentation timestamp (ffmpeg's ``showinfo`` filter: ``frame_idx = round((pts -
    info.start_s) * fps)``), so frames after lost ones keep their true index and time.

    A decode thread reads the pipe into a ``queue.Queue(queue_size)``. When the consumer is slow
    the queue fills, the thread blocks, the pipe fills and ffmpeg blocks: memory stays at
    ``queue_size + 2`` frames (queue, one in the reader's hands, one in the consumer's) whatever
    the video length. ``threads`` sets ffmpeg's decoder threads (None: ffmpeg decides).

    Cleanup: when the consumer stops early (``break`` then ``close()``, garbage collection,
    or an exception thrown into the generator), the generator kills ffmpeg, waits for it and
    joins its threads. Wrap in ``contextlib.closing`` for deterministic cleanup if the generator
    object may outlive the loop.

    Damage policy: decode errors are concealed (no ``-xerror``): ffmpeg decodes what it can and
    a frame with a few broken blocks is still yielded. A file that ends early by at most
    ``max_missing_s`` seconds (camera power cut at the very end) is accepted (``stats.missing_s``
    says how much). The video is **damaged** when, after at least one good frame:

    * frames are lost after a decode error (a pts gap following ffmpeg's first error line):
      decoding **stops there**, because the timing of what follows such damage cannot be trusted
      (an AVI demuxer that re-syncs numbers the next packets from where it is);
    * more than :data:`DAMAGED_TAIL_S` (and 3 frames) is missing at the end; or
    * ffmpeg exits non-zero.

    ``stats.damage`` then holds one line saying where and why. With ``damage_ok=True`` the
    generator ends normally (every frame before the damage was yielded); with ``damage_ok=False``
    it raises :class:`VideoError` *after* yielding them, unless the only damage is a tail of at
    most ``max_missing_s`` seconds. A video of which no frame decodes always raises.

    Raises:
        VideoError: ffmpeg missing; no frame decoded; or damage with ``damage_ok=False``.
        ValueError: ``detect_fps <= 0`` or ``queue_size < 1``.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")
    step = frame_step(info.fps, detect_fps)
    st = stats if stats is not None else DecodeStats()
    st.path = info.path
    st.step = step
    st.expected_frames = -(-info.frame_count // step)
    st.started_at = time.monotonic()
    w, h = info.width, info.height
    frame_bytes = w * h * 3
    cmd = _decode_cmd(info, step, threads)
    log.debug("decode: %s", " ".join(cmd))

    try:
        proc = procs.popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise VideoError("ffmpeg was not found on PATH: install ffmpeg.") from None
    st.pid = proc.pid
    q: queue.Queue = queue.Queue(queue_size)
    stop = threading.Event()
    err_lines: collections.deque[str] = collections.deque(maxlen=40)
    first_errors: list[str] = []  # the first few error lines (where the damage began)
    error_at: list[int | None] = [None]  # frames written before ffmpeg's first error line
    pts_times: list[float | None] = []  # showinfo pts_time (s) of each frame written, in order
    pts_cv = threading.Condition()
    stderr_eof = threading.Event()
    no_pts = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def frame_pts(k: int) -> float | None:
        # showinfo logs frame k before the frame is written to stdout; wait for the line (once:
        # if it never comes, count frames as before rather than wait on every frame)
        with pts_cv:
            if not no_pts.is_set() and not pts_cv.wait_for(
                lambda: len(pts_times) > k or stderr_eof.is_set() or stop.is_set(), timeout=10
            ):
                log.warning("%s: ffmpeg gave no frame timestamps; frame indices are counted", info.path)
                no_pts.set()
            return pts_times[k] if len(pts_times) > k else None

    def reader() -> None:
        stdout = proc.stdout
        assert stdout is not None
        try:
            while not stop.is_set():
                buf = bytearray(frame_bytes)
                view = memoryview(buf)
                got = 0
                while got < frame_bytes:
                    n = stdout.readinto(view[got:])
                    if not n:
                        break
                    got += n
                if got == 0:
                    break
                if got < frame_bytes:  # ffmpeg died mid-frame; reported via its exit status
                    break
                img = np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)
                pts = frame_pts(st.frames_decoded)
                st.frames_decoded += 1
                if not put((pts, img)):
                    return
                st.max_queue_depth = max(st.max_queue_depth, q.qsize())
        except Exception as e:  # noqa: BLE001 - handed to the consumer
            put(e)
            return
        put(_EOF)

    def drain_stderr() -> None:
        assert proc.stderr is not None
        try:
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                m = _SHOWINFO_RE.search(line)
                if m:
                    try:
                        t: float | None = float(m.group(1))
                    except ValueError:  # NOPTS
                        t = None
                    with pts_cv:
                        pts_times.append(t)
                        pts_cv.notify_all()
                    continue
                err = _error_line(line)
                if err:
                    err_lines.append(err)
                    if len(first_errors) < 3:
                        first_errors.append(err)
                    if error_at[0] is None:
                        error_at[0] = len(pts_times)  # frames shown before the first error
        finally:
            with pts_cv:
                stderr_eof.set()
                pts_cv.notify_all()

    t_read = threading.Thread(target=reader, name=f"dashcam-decode-{proc.pid}", daemon=True)
    t_err = threading.Thread(target=drain_stderr, name=f"dashcam-stderr-{proc.pid}", daemon=True)
    t_read.start()
    t_err.start()
    last_idx = -1
    stopped_at: int | None = None  # source frame at which decoding was stopped (damage)
    try:
        while True:
            try:
                item = q.get(timeout=1.0)
            except queue.Empty:
                if not t_read.is_alive() and q.empty():
                    raise VideoError(f"Decoder thread for {info.path} stopped unexpectedly.")
                continue
            if item is _EOF:
                break
            if isinstance(item, BaseException):
                raise VideoError(f"Error reading decoded frames of {info.path}: {item}") from item
            pts, image = item
            if pts is None:  # no timestamp line (should not happen): count
                idx = last_idx + step if last_idx >= 0 else 0
            else:
                idx = max(last_idx + 1, round((pts - info.start_s) * info.fps))
            expected_idx = last_idx + step if last_idx >= 0 else 0
            first_err = error_at[0]
            if idx > expected_idx and first_err is not None and first_err <= st.frames_yielded:
                # frames lost after a decode error: stop here. The timing after such damage cannot
                # be trusted (an AVI demuxer that re-syncs numbers the next packets from where it
                # is: measured, frame 30 came out with the pts of frame 17). A pts gap without a
                # decode error is variable frame timing and goes on.
                stopped_at = expected_idx
                break
            last_idx = idx
            st.frames_yielded += 1
            yield Frame(frame_idx=idx, pts_s=idx / info.fps, image=image)

        if stopped_at is not None:
            stop.set()
            proc.kill()
        rc = proc.wait()
        t_err.join(timeout=5)
        st.returncode = rc
        st.stderr_tail = _tail("\n".join(err_lines), 12)
        said = " | ".join(first_errors) or "(nothing)"
        if st.frames_yielded == 0:
            what = "is damaged from its first frame" if stopped_at is not None else f"could not be decoded (ffmpeg exit status {rc})"
            raise VideoError(
                f"No frame of {info.path} could be decoded: the file {what}, it is corrupt or "
                f"unreadable. Re-copy it or check it with ffprobe. ffmpeg said: {said}"
            )
        end_idx = stopped_at if stopped_at is not None else last_idx + step
        st.missing_s = max(0, info.frame_count - end_idx) / info.fps
        failed_rc = rc != 0 and stopped_at is None
        parts = []
        if stopped_at is not None:
            parts.append(f"frames lost at frame {stopped_at} ({stopped_at / info.fps:.1f} s of "
                         f"{info.duration_s:.1f} s), decoding stopped there")
        elif st.missing_s > max(DAMAGED_TAIL_S, 3.0 / info.fps) or failed_rc:
            parts.append(f"decoding ended after frame {last_idx} ({end_idx / info.fps:.1f} s of "
                         f"{info.duration_s:.1f} s, {st.missing_s:.1f} s missing)")
        if failed_rc:
            parts.append(f"ffmpeg exit status {rc}")
        if parts:
            st.damage = f"damaged: {'; '.join(parts)}; ffmpeg said: {said}"
            if not damage_ok and (stopped_at is not None or failed_rc or st.missing_s > max_missing_s):
                what = "ended early" if stopped_at is None and st.missing_s > max_missing_s else "is damaged"
                raise VideoError(
                    f"{info.path} {what}: decoded {st.frames_yielded} of {st.expected_frames} "
                    f"expected frames ({st.damage}). The file is truncated or corrupt "
                    "(interrupted copy, power loss while recording). Re-copy it; frames up to "
                    "the damage were yielded."
                )
            log.warning("%s: %s (the %d frames before it were used)", info.path, st.damage, st.frames_yielded)
        elif st.missing_s > 0:
            log.warning(
                "%s: last %.2f s did not decode (tolerated, <= %.1f s); ffmpeg: %s",
                info.path, st.missing_s, max_missing_s, st.stderr_tail,
            )
    finally:
        stop.set()
        with pts_cv:
            pts_cv.notify_all()
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill cannot be ignored
            log.error("ffmpeg pid %s did not exit after kill", proc.pid)
        # unblock a reader waiting on a full queue, then join both threads
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                break
        t_read.join(timeout=5)
        t_err.join(timeout=5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        st.returncode = proc.returncode
        st.done = True


def decode_only_seconds(path: str | os.PathLike, threads: int | None = None) -> float:
    """Wall-clock seconds ffmpeg takes to decode the first video stream of ``path`` to ``null``.

    The baseline for benchmarks' "pipeline time / pure decode time" ratio: full decode of every
    frame, no scaling, no pixel-format conversion, no pipe. ``threads``: decoder threads
    (None: ffmpeg decides).

    Raises:
        VideoError: missing file or ffmpeg failure (with ffmpeg's stderr tail).
    """
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"Video file not found: {p}. Check the path.")
    in_kwargs: dict[str, Any] = {"threads": threads} if threads else {}
    out = ffmpeg.output(ffmpeg.input(_ff_path(p), **in_kwargs)["v:0"], "-", format="null")
    cmd = [_FFMPEG, *_FF_GLOBAL, *ffmpeg.get_args(out)]
    t0 = time.perf_counter()
    res = procs.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise VideoError(
            f"ffmpeg could not decode {p} (exit status {res.returncode}).\nffmpeg said: "
            + _tail(res.stderr.decode("utf-8", "replace"))
        )
    return dt
