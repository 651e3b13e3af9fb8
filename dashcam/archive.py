"""Archive: atomic file writes, H.264 archive transcode, and per-video archive folders.

Layout written by :func:`archive_video`::

    ARCHIVE/<video_id>/video_<height>p.mp4   H.264 yuv420p, +faststart, no audio
    ARCHIVE/<video_id>/plates/<track_id>.jpg  best plate crop of each event (copied from work dir)
    ARCHIVE/<video_id>/thumbs/<track_id>.jpg  vehicle thumbnail of each event

``<height>`` in the file name is the requested archive profile (``Settings.archive_height``); a
source smaller than that is never upscaled, so the pixel height may be lower.

Every file appears complete or not at all: it is written under a hidden temporary name in the
destination folder (``.<name>.<random>.tmp``), fsynced, then renamed over the destination with
``os.replace`` (atomic on POSIX and Windows within one filesystem); the folder is fsynced too.
A crash can at worst leave a stray ``.*.tmp`` file, never a truncated destination.
"""

from __future__ import annotations

import errno
import filecmp
import logging
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, BinaryIO

import ffmpeg

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from dashcam import procs
from dashcam.records import PlateEvent, VideoInfo
from dashcam.video import mp4_truncation

log = logging.getLogger(__name__)

__all__ = [
    "ArchiveError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_copy",
    "sweep_stale_tmp",
    "transcode",
    "archive_video",
    "archive_video_path",
]

_FF_GLOBAL = ["-nostdin", "-hide_banner", "-loglevel", "error"]


class ArchiveError(Exception):
    """Archiving failed (transcode error, missing source file). The message says what and why."""


# --------------------------------------------------------------------------------------------
# atomic writes


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: directories cannot be opened; rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.tmp")


def _atomic_write(path: str | os.PathLike, fill: Callable[[BinaryIO], None]) -> Path:
    dst = Path(path)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"Cannot create folder {dst.parent}: {e.strerror or e}") from e
    tmp = _tmp_name(dst)
    try:
        # 0o666 & ~umask, like an ordinary open(); O_EXCL: never reuse someone else's file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        _lock(fd)
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, dst)  # still locked: sweep_stale_tmp never takes a file being renamed
    except BaseException as e:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not remove temporary file %s", tmp)
        if isinstance(e, OSError):
            hint = " (disk full?)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
            raise OSError(
                e.errno, f"Could not write {dst}{hint}: {e.strerror or e}; nothing was written"
            ) from e
        raise
    _fsync_dir(dst.parent)
    return dst


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + fsync + rename).

    Creates missing parent folders. Returns the destination path.

    Raises:
        OSError: the write failed (e.g. ``ENOSPC`` disk full); the message names the file, no
            partial or temporary file is left and an existing ``path`` is untouched.
    """
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` (encoded with ``encoding``, no newline translation) atomically.

    See :func:`atomic_write_bytes` for guarantees and errors.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy file ``src`` to ``dst`` atomically (streamed in 1 MiB chunks; content only, not
    permissions or times). Creates missing parent folders of ``dst``. Returns ``dst``.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        OSError: reading or writing failed; no partial ``dst`` is left.
    """
    s = Path(src)
    with open(s, "rb") as fin:
        return _atomic_write(dst, lambda f: shutil.copyfileobj(fin, f, 1024 * 1024))


# --------------------------------------------------------------------------------------------
# transcode


def _ffprobe_video(path: Path) -> dict[str, Any] | None:
    """First video stream + format duration of ``path`` via ffprobe, or None if unreadable."""
    try:
        meta = procs.ffprobe_json("file:" + str(path.resolve()), v="error")
    except (ffmpeg.Error, procs.ProbeError, FileNotFoundError):
        return None
    for s in meta.get("streams", []):
        if s.get("codec_type") == "video":
            out = dict(s)
            fmt_dur = (meta.get("format") or {}).get("duration")
            try:
                out["_duration"] = float(s.get("duration") or fmt_dur)
            except (TypeError, ValueError):
                out["_duration"] = 0.0
            return out
    return None


def _target_size(src_w: int, src_h: int, height: int) -> tuple[int, int]:
    """Output (w, h): h = min(height, src_h), both even, aspect kept, never upscaled."""
    h = min(int(height), src_h)
    h -= h % 2
    w = round(src_w * h / src_h / 2) * 2
    return max(2, w), max(2, h)


def transcode(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    height: int = 720,
    crf: int = 28,
    preset: str = "veryfast",
    *,
    audio: bool = False,
    threads: int | None = None,
) -> Path:
    """Transcode ``src`` to a small H.264 MP4 at ``dst``; return ``dst``.

    Video: first video stream, libx264 at ``crf``/``preset``, scaled to ``height`` pixels high
    with the aspect ratio kept and an even width (a source lower than ``height`` keeps its size,
    rounded down to even dimensions: never upscaled), ``yuv420p`` (plays everywhere), frame rate
    and timestamps unchanged, container metadata (creation_time) kept, ``+faststart`` (index at
    the front: streams from a web server before fully downloaded).

    Audio: dropped by default. Dashcam audio is mostly cabin conversation (personal data that
    the plate archive does not need) and engine noise; dropping it also avoids failures on
    cameras' odd PCM/ADPCM tracks. ``audio=True`` re-encodes the first audio stream (if any) to
    AAC 96 kb/s.

    ``threads``: x264/decoder threads (None: ffmpeg decides; set 1-2 on shared machines).

    Written to a temporary name in ``dst``'s folder, fsynced, then renamed: ``dst`` is either
    the complete new file or untouched.

    Raises:
        ArchiveError: ``src`` missing or not a video, or ffmpeg failed (message carries the tail
            of ffmpeg's stderr); no file is left at ``dst`` or under a temporary name.
    """
    s, d = Path(src), Path(dst)
    if not s.is_file():
        raise ArchiveError(f"Cannot archive {s}: file not found.")
    vs = _ffprobe_video(s)
    if vs is None or not vs.get("width") or not vs.get("height"):
        raise ArchiveError(f"Cannot archive {s}: not a readable video (ffprobe found no video stream).")
    src_w, src_h = int(vs["width"]), int(vs["height"])
    rot = 0
    for sd in vs.get("side_data_list") or []:
        rot = int(float(sd.get("rotation", rot) or 0))
    rot = rot or int(float((vs.get("tags") or {}).get("rotate", 0) or 0))
    if rot % 180 == 90:  # ffmpeg auto-rotates before the scale filter
        src_w, src_h = src_h, src_w
    w, h = _target_size(src_w, src_h, height)

    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(d)
    in_kwargs: dict[str, Any] = {"threads": threads} if threads else {}
    inp = ffmpeg.input("file:" + str(s.resolve()), **in_kwargs)
    video = inp["v:0"].filter("scale", w, h)
    streams = [video]
    out_kwargs: dict[str, Any] = {
        "format": "mp4",
        "vcodec": "libx264",
        "crf": crf,
        "preset": preset,
        "pix_fmt": "yuv420p",
        "movflags": "+faststart",
        "map_metadata": 0,
    }
    if threads:
        out_kwargs["threads"] = threads
    if audio:
        streams.append(inp["a:0?"])
        out_kwargs.update({"acodec": "aac", "audio_bitrate": "96k"})
    else:
        out_kwargs["an"] = None
    out = ffmpeg.output(*streams, "file:" + str(tmp.resolve()), **out_kwargs)
    # -y: ffmpeg writes into the temp file we created (and flock, see sweep_stale_tmp)
    cmd = ["ffmpeg", *_FF_GLOBAL, "-y", *ffmpeg.get_args(out)]
    log.debug("transcode: %s", " ".join(cmd))
    lock_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _lock(lock_fd)
        res = procs.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        if res.returncode != 0:
            err = res.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ArchiveError(
                f"ffmpeg failed (exit status {res.returncode}) transcoding {s} to {d}; nothing "
                "was written. ffmpeg said:\n" + "\n".join(err[-10:])
            )
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, d)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    finally:
        os.close(lock_fd)
    _fsync_dir(d.parent)
    return d


# --------------------------------------------------------------------------------------------
# archive folder


def archive_video_path(archive_dir: str | os.PathLike, video_id: str, height: int) -> Path:
    """``ARCHIVE/<video_id>/video_<height>p.mp4``."""
    return Path(archive_dir) / video_id / f"video_{int(height)}p.mp4"


def _complete_archive(path: Path, info: VideoInfo, height: int) -> bool:
    """True when ``path`` is a whole archive copy of ``info``: an MP4 whose boxes all fit in the
    file (not cut short), whose video stream ffprobe reads as H.264 of the expected size, and
    whose duration matches the source within max(0.5 s, 3 frames, 2 %)."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size == 0 or mp4_truncation(path, size) is not None:
        return False
    vs = _ffprobe_video(path)
    if vs is None or vs.get("codec_name") != "h264":
        return False
    if (vs.get("width"), vs.get("height")) != _target_size(info.width, info.height, height):
        return False
    fps = info.fps
    tol = max(0.5, 3.0 / fps if fps > 0 else 0.5, 0.02 * info.duration_s)
    return abs(vs["_duration"] - info.duration_s) <= tol


def _same_file(a: Path, b: Path) -> bool:
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _archive_file(src: str | None, dst: Path, what: str) -> str | None:
    """Copy ``src`` to ``dst`` (atomic, skipped if identical); return the path to record."""
    if src is None:
        return None
    s = Path(src)
    if s.exists() and dst.exists() and s.resolve() == dst.resolve():
        return str(dst)
    if not s.is_file():
        if dst.is_file():  # re-run after the work dir was cleaned: the archive copy stands
            log.info("%s %s gone; keeping archived %s", what, s, dst)
            return str(dst)
        raise ArchiveError(f"Cannot archive {what} {s}: file not found (work dir cleaned?).")
    if dst.is_file() and _same_file(s, dst):
        return str(dst)
    atomic_copy(s, dst)
    return str(dst)


def archive_video(
    info: VideoInfo,
    events: list[PlateEvent],
    archive_dir: str | os.PathLike,
    height: int = 720,
    crf: int = 28,
    preset: str = "veryfast",
    *,
    threads: int | None = None,
) -> tuple[Path, list[PlateEvent]]:
    """Archive one video and its events' images under ``archive_dir/<info.video_id>/``.

    * ``video_<height>p.mp4``: :func:`transcode` of ``info.path``; skipped when a file is
      already there whose MP4 boxes are all complete and that ffprobe reads as H.264 of the
      expected size with the source's duration (within max(0.5 s, 3 frames, 2 %)); otherwise
      (absent, cut short, corrupt, other profile) it is redone.
    * ``plates/<track_id><ext>`` and ``thumbs/<track_id><ext>``: atomic copies of each event's
      ``crop_path``/``thumb_path`` (``ext`` = the source's lower-cased suffix, normally
      ``.jpg``); skipped when an identical file is there. If the source has vanished but the
      archive copy exists (a re-run after the work dir was cleaned), the copy is kept.

    Returns ``(archive video path, events)`` where the events are copies (inputs untouched) with
    ``crop_path``/``thumb_path`` pointing at the archive files (None stays None). Idempotent:
    running it twice gives the same files and does no work the second time.

    Raises:
        ArchiveError: transcode failed or an event's image is missing (and not archived yet).
        OSError: writing the archive failed (e.g. disk full).
    """
    base = Path(archive_dir) / info.video_id
    video_dst = archive_video_path(archive_dir, info.video_id, height)
    if _complete_archive(video_dst, info, height):
        log.info("archive copy %s already complete; skipping transcode", video_dst)
    else:
        if video_dst.exists():
            log.warning("archive copy %s incomplete or unreadable; redoing it", video_dst)
        transcode(info.path, video_dst, height=height, crf=crf, preset=preset, threads=threads)

    out: list[PlateEvent] = []
    for ev in events:
        update: dict[str, Any] = {}
        for field_name, sub in (("crop_path", "plates"), ("thumb_path", "thumbs")):
            src = getattr(ev, field_name)
            if src is None:
                continue
            ext = Path(src).suffix.lower() or ".jpg"
            dst = base / sub / f"{ev.track_id}{ext}"
            update[field_name] = _archive_file(src, dst, field_name.replace("_path", ""))
        out.append(ev.model_copy(update=update))
    return video_dst, out


# --------------------------------------------------------------------------------------------
# temp files of killed writers
#
# Writers hold an ``flock`` on their temp file until it has been renamed; the next
# ``dashcam ingest`` (and the archive task, per video) removes the ones whose writer died.

# ``.<name>.<8 hex>.tmp``: the temporary names this module (and only it) creates
_TMP_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
STALE_TMP_MIN_AGE_S = 10.0  # younger temp files are never swept (covers create -> lock)


def _lock(fd: int) -> None:
    """Hold an exclusive ``flock`` on the temp file while it is written and renamed: a live
    writer's temp file is locked, a dead one's is not (the kernel drops locks of dead processes),
    which is how :func:`sweep_stale_tmp` tells them apart. No-op without ``fcntl`` (Windows)."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # e.g. a filesystem without locks: the age rule alone protects it
            pass


def sweep_stale_tmp(*dirs: str | os.PathLike, min_age_s: float = STALE_TMP_MIN_AGE_S) -> list[Path]:
    """Remove temp files left by killed writers under ``dirs`` (recursively); return them.

    Only our own names (``.<name>.<8 hex>.tmp``, see :func:`atomic_write_bytes` and
    :func:`transcode`) are considered, and only stale ones: not modified for ``min_age_s``
    seconds AND not locked. Every writer here holds an exclusive ``flock`` on its temp file
    until it has been renamed, and the lock dies with the process, so a temp file that another
    live process (another ``dashcam ingest``, a worker; NFS forwards flock as POSIX locks) is
    still writing is never removed. Missing folders are skipped; files that cannot be removed
    are logged and left.
    """
    removed: list[Path] = []
    now = time.time()
    for d in dirs:
        for root, _subdirs, files in os.walk(d):
            for name in files:
                if not _TMP_RE.match(name):
                    continue
                p = Path(root) / name
                try:
                    if now - p.lstat().st_mtime < min_age_s:
                        continue
                    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                except OSError:
                    continue  # renamed or removed meanwhile
                try:
                    if fcntl is not None:
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        except BlockingIOError:
                            continue  # a live writer holds it
                        except OSError:
                            pass  # no locks on this filesystem: the age rule decides
                    try:
                        p.unlink()
                        removed.append(p)
                    except OSError as e:
                        log.warning("could not remove stale temporary file %s: %s", p, e)
                finally:
                    os.close(fd)
    return removed
