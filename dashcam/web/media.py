"""Serving archive files: only files inside the archive folder, with Range and cache headers."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from fastapi import HTTPException
from fastapi.responses import FileResponse

log = logging.getLogger(__name__)

MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


def archive_file(archive_dir: Path, stored: str | None) -> Path:
    """The real file a database path names, if it lies inside ``archive_dir``.

    ``stored``: a path from the database (absolute, or relative to ``archive_dir``). Symlinks
    and ``..`` are resolved first; the result must be a regular file under the resolved archive
    folder. Raises ``HTTPException`` 404 when there is no such file (None, missing) and 403
    when it resolves outside the archive (``..``, a symlink out, an absolute path elsewhere).
    """
    if not stored:
        raise HTTPException(404, "This item has no archived file.")
    root = Path(archive_dir).resolve()
    p = Path(stored)
    if not p.is_absolute():
        p = root / p
    try:
        real = p.resolve(strict=True)
    except (OSError, RuntimeError):
        raise HTTPException(404, "The archived file is missing.") from None
    if not real.is_relative_to(root):
        log.warning("refused to serve %s: resolves to %s, outside the archive %s", stored, real, root)
        raise HTTPException(403, "That file is outside the archive folder and is not served.")
    if not real.is_file():
        raise HTTPException(404, "The archived file is missing.")
    return real


def file_response(path: Path, max_age: int) -> FileResponse:
    """A FileResponse (Starlette: HTTP Range -> 206 with Content-Range, ``Accept-Ranges: bytes``,
    ETag/Last-Modified) with ``Cache-Control: private, max-age=<max_age>``."""
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"),
        headers={"Cache-Control": f"private, max-age={int(max_age)}"},
    )


def poster(video: Path, cache_dir: Path, video_id: str, at_s: float) -> Path:
    """A 320 px wide JPEG frame of ``video`` at ``at_s`` seconds, cached as
    ``cache_dir/<video_id>.jpg`` (ffmpeg; written under a temporary name, then renamed)."""
    out = cache_dir / f"{video_id}.jpg"
    if out.is_file() and out.stat().st_mtime >= video.stat().st_mtime:
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.jpg")
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-ss",
        f"{max(0.0, at_s):.3f}",
        "-i",
        str(video),
        "-frames:v",
        "1",
        "-vf",
        "scale=320:-2",
        "-q:v",
        "4",
        str(tmp),
    ]
    res = subprocess.run(cmd, capture_output=True, timeout=30)
    if res.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise HTTPException(404, "No poster frame could be taken from this video.")
    os.replace(tmp, out)
    return out
