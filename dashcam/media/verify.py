"""Verification of produced media files: the check every media writer runs before the rename.

ffmpeg can report a full disk on stderr ("Error writing trailer: No space left on device") and
still exit 0, so an exit status or a completed write alone does not prove a playable file:
:func:`verify_media` reads the file back (ISO-BMFF boxes, ffprobe, OpenCV for images).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from dashcam.media.errors import MediaCheckError
from dashcam.media.ffmpeg import ffprobe_video
from dashcam.media.isobmff import looks_like_mp4, mp4_truncation

__all__ = ["verify_media", "verify_jpeg", "duration_tolerance_s"]


def duration_tolerance_s(duration_s: float, fps: float | None = None) -> float:
    """Allowed |actual - expected| duration of a re-encoded copy: max(0.5 s, 3 frames, 2 %)."""
    frames3 = 3.0 / fps if fps and fps > 0 else 0.5
    return max(0.5, frames3, 0.02 * float(duration_s))


def verify_jpeg(path: str | os.PathLike) -> tuple[int, int]:
    """Check that ``path`` is an image OpenCV decodes (a complete JPEG/PNG); return ``(w, h)``.

    Raises:
        MediaCheckError: missing, empty, or not decodable (e.g. cut short by a full disk).
    """
    import cv2
    import numpy as np

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise MediaCheckError(p, f"cannot read it back: {e.strerror or e}") from None
    if not data:
        raise MediaCheckError(p, "the file is empty")
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise MediaCheckError(p, "the JPEG is cut short (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise MediaCheckError(p, "OpenCV cannot decode it")
    return int(img.shape[1]), int(img.shape[0])


def verify_media(
    path: str | os.PathLike,
    kind: Literal["video", "image"] = "video",
    *,
    width: int | None = None,
    height: int | None = None,
    duration_s: float | None = None,
    fps: float | None = None,
    codec: str | None = None,
    min_duration_s: float | None = None,
) -> dict[str, Any]:
    """Verify that a produced media file is complete and what was asked for; return its facts.

    The one check every media writer runs on its temporary file before renaming it to its final
    name (archive transcode, plate crops, thumbnails; also reusable to re-verify an archive later,
    e.g. to record when it was last verified).

    ``kind="video"``:

    * the file is not empty;
    * an ISO-BMFF file (MP4/MOV) has a ``moov`` box and no top-level box runs past the end of the
      file (:func:`dashcam.media.isobmff.mp4_truncation`: what a full disk or a killed ffmpeg leaves);
    * ffprobe reads the container and finds a video stream, of codec ``codec`` when given
      (ffprobe ``codec_name``, e.g. ``"h264"``);
    * the frame size is ``width`` x ``height`` pixels when given;
    * the duration (video stream, else container; seconds) is within
      :func:`duration_tolerance_s` (max(0.5 s, 3 frames at ``fps``, 2 %)) of ``duration_s`` when
      given; with ``min_duration_s`` (a damaged source that decodes only in part) the duration
      may be anything from ``min_duration_s`` to ``duration_s``, each within that tolerance.

    ``kind="image"``: :func:`verify_jpeg` (OpenCV decodes it), size checked when given.

    Returns:
        ``{"kind", "width", "height", "duration_s", "codec"}`` as found (``duration_s`` and
        ``codec`` are None for images).

    Raises:
        MediaCheckError: the first check that failed, as one line (the file and the cause).
    """
    p = Path(path)
    if kind == "image":
        w, h = verify_jpeg(p)
        if (width is not None and w != width) or (height is not None and h != height):
            raise MediaCheckError(p, f"image is {w}x{h}, expected {width}x{height}")
        return {"kind": kind, "width": w, "height": h, "duration_s": None, "codec": None}
    if kind != "video":
        raise ValueError(f"unknown media kind {kind!r}")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise MediaCheckError(p, f"cannot stat it: {e.strerror or e}") from None
    if size == 0:
        raise MediaCheckError(p, "the file is empty")
    if looks_like_mp4(p):
        trunc = mp4_truncation(p, size)
        if trunc is not None:
            raise MediaCheckError(p, f"incomplete MP4: {trunc}")
    vs = ffprobe_video(p)
    if vs is None:
        raise MediaCheckError(p, "ffprobe cannot read it or finds no video stream")
    got_codec = vs.get("codec_name")
    if codec is not None and got_codec != codec:
        raise MediaCheckError(p, f"video codec is {got_codec}, expected {codec}")
    vw, vh = vs.get("width"), vs.get("height")
    if (width is not None and vw != width) or (height is not None and vh != height):
        raise MediaCheckError(p, f"frame size is {vw}x{vh}, expected {width}x{height}")
    dur = float(vs.get("_duration") or 0.0)
    if duration_s is not None:
        tol = duration_tolerance_s(duration_s, fps)
        lo = duration_s if min_duration_s is None else min(min_duration_s, duration_s)
        if not lo - tol <= dur <= duration_s + tol:
            want = f"{duration_s:.2f} s" if min_duration_s is None else f"{lo:.2f}-{duration_s:.2f} s"
            raise MediaCheckError(p, f"duration is {dur:.2f} s, expected {want} (+-{tol:.2f} s): cut short?")
    return {"kind": kind, "width": vw, "height": vh, "duration_s": dur, "codec": got_codec}
