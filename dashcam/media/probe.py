"""Probe one input video with ffprobe into a :class:`dashcam.records.VideoInfo` (stage ``probe``).

The checks that make a bad input fail here, with one line naming the file and what to do,
before anything is analysed: missing/empty file, a file still being written, not a video (no
video stream, a still image, text), an MP4 cut short (:func:`dashcam.media.isobmff.mp4_truncation`),
no usable timing.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ffmpeg

from dashcam import procs
from dashcam.media.errors import VideoError
from dashcam.media.ffmpeg import ffprobe_json, parse_rate, rotation, stderr_text, tail, video_stream
from dashcam.media.identity import compute_video_id, parse_viofo_name, recording_start
from dashcam.media.isobmff import looks_like_mp4, mp4_truncation
from dashcam.records import VideoInfo

__all__ = ["probe", "RECENT_WRITE_S"]

#: A file modified less than this many seconds ago may still be being written or copied.
RECENT_WRITE_S = 120.0

_IMAGE_FORMATS = {"image2", "tty", "gif", "apng", "webp_pipe"}


def _parse_creation_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt if dt.year >= 1990 else None


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


def _stat_input(p: Path) -> os.stat_result:
    """``p``'s stat; VideoError when it is missing, not a regular file or empty."""
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
    return st


def _ffprobe(p: Path) -> dict:
    """ffprobe's JSON of ``p``; VideoError (missing ``moov``, not readable, no ffprobe) otherwise."""
    try:
        return ffprobe_json(p)
    except (ffmpeg.Error, procs.ProbeError) as e:
        err = stderr_text(e)
        if "moov atom not found" in err and looks_like_mp4(p):
            what = (
                "is an incomplete MP4: its index ('moov' atom) is missing, which happens when the "
                "camera lost power before finalising the file or the copy was interrupted. "
                "Re-copy it, or repair it with a tool such as untrunc."
            )
        else:
            what = "is not a readable video (ffprobe failed). Check that it is a video file and not corrupt."
        raise VideoError(f"{p} {what}{_recent_hint(p)}\nffprobe said: {tail(err, 4)}") from None
    except FileNotFoundError:
        raise VideoError("ffprobe was not found on PATH: install ffmpeg.") from None


def _video_of(p: Path, meta: dict, size: int) -> dict:
    """The video stream of ``meta``; VideoError for no stream, a still image/text, a cut-short MP4."""
    fmt_name = (meta.get("format") or {}).get("format_name") or ""
    vs = video_stream(meta)
    if vs is None:
        raise VideoError(f"{p} has no video stream (format {fmt_name or 'unknown'}). Pass a video file.")
    codec = vs.get("codec_name") or "unknown"
    if fmt_name in _IMAGE_FORMATS or fmt_name.endswith("_pipe") or codec == "ansi":
        raise VideoError(
            f"{p} is not a video but a {'text file' if codec == 'ansi' else 'still image'} "
            f"(ffprobe format {fmt_name}). Pass a video file."
        )
    if "mp4" in fmt_name or "mov" in fmt_name:
        trunc = mp4_truncation(p, size)
        if trunc:
            raise VideoError(
                f"{p} is an incomplete MP4: {trunc}. The copy was probably interrupted or the "
                f"camera lost power while writing. Re-copy it from the card.{_recent_hint(p)}"
            )
    return vs


def _timing(p: Path, vs: dict, fmt: dict) -> tuple[float, float, int]:
    """(fps, duration s, frame count) of the stream; VideoError when fps or duration is 0."""
    fps = parse_rate(vs.get("avg_frame_rate")) or parse_rate(vs.get("r_frame_rate"))
    duration = 0.0
    val: Any
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
    return fps, duration, frame_count


def _decoded_size(p: Path, vs: dict) -> tuple[int, int]:
    """(width, height) of the decoded frames: swapped for a 90/270-degree display rotation."""
    width, height = int(vs.get("width") or 0), int(vs.get("height") or 0)
    if width <= 0 or height <= 0:
        raise VideoError(f"{p}: video stream has no frame size (corrupt header?).")
    if rotation(vs) in (90, 270):
        width, height = height, width
    return width, height


def _start_s(vs: dict, fmt: dict) -> float:
    try:
        return max(0.0, float(vs.get("start_time") or 0.0) - float(fmt.get("start_time") or 0.0))
    except (TypeError, ValueError):
        return 0.0


def probe(path: str | os.PathLike, camera_tz: str = "local") -> VideoInfo:
    """Probe a video with ffprobe and return its :class:`VideoInfo`.

    Fields: ``duration_s`` (video stream duration, else container duration; seconds),
    ``fps`` (``avg_frame_rate``, else ``r_frame_rate``; frames/s), ``size_bytes``, ``codec``
    (ffprobe ``codec_name``, e.g. ``"h264"``, ``"mjpeg"``), ``frame_count`` (container
    ``nb_frames`` when present, else ``round(duration_s * fps)``), ``width``/``height`` (pixels
    of the *decoded* frames, i.e. swapped for 90/270-degree display rotation, which ffmpeg
    applies when decoding), ``creation_time`` (container tag, UTC, or None),
    ``recording_start``/``recording_start_source`` (:func:`dashcam.media.identity.recording_start`),
    ``camera`` (Viofo ``F``/``R`` or None), ``start_s`` (video stream start minus container start,
    seconds: the first frame's pts as :func:`dashcam.media.decode.iter_frames` sees it) and
    ``video_id`` (:func:`dashcam.media.identity.compute_video_id`).

    Raises:
        VideoError: missing or empty file; file still growing while probed; not a video (no
            video stream, a still image or text); MP4 cut short (missing ``moov`` index or a box
            running past the end of the file, e.g. an interrupted copy or a camera that lost
            power before finalising); zero duration or frame rate.
        ValueError: unknown ``camera_tz``.
    """
    p = Path(path)
    st = _stat_input(p)
    meta = _ffprobe(p)
    size_after = p.stat().st_size
    if size_after != st.st_size:
        raise VideoError(
            f"Video file {p} is still being written (size changed from {st.st_size} to "
            f"{size_after} bytes while probing). Wait until the camera/copy has finished."
        )
    fmt = meta.get("format") or {}
    vs = _video_of(p, meta, st.st_size)
    fps, duration, frame_count = _timing(p, vs, fmt)
    width, height = _decoded_size(p, vs)
    creation = _parse_creation_time((fmt.get("tags") or {}).get("creation_time")) or (
        _parse_creation_time((vs.get("tags") or {}).get("creation_time"))
    )
    start, source = recording_start(p, creation, camera_tz, duration_s=duration)
    parsed = parse_viofo_name(p)
    return VideoInfo(
        path=str(p.resolve()),
        video_id=compute_video_id(p),
        size_bytes=st.st_size,
        duration_s=duration,
        fps=fps,
        frame_count=frame_count,
        width=width,
        height=height,
        codec=vs.get("codec_name") or "unknown",
        creation_time=creation,
        recording_start=start,
        recording_start_source=source,
        camera=parsed[1] if parsed else None,
        start_s=_start_s(vs, fmt),
    )
