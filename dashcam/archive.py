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

Every media file (the archive MP4, plate crops, thumbnails) is also *verified* before it takes
its final name (:func:`verify_media`): ffmpeg can report a full disk on stderr ("Error writing
trailer: No space left on device") and still exit 0, so an exit status or a completed write
alone does not prove a playable file.
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
from typing import Any, BinaryIO, Callable, Literal

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
    "MediaCheckError",
    "verify_media",
    "verify_jpeg",
    "duration_tolerance_s",
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


class MediaCheckError(ArchiveError):
    """A produced media file is not complete/readable (see :func:`verify_media`).

    ``path``: the file checked; ``cause``: one line saying what is wrong.
    """

    def __init__(self, path: str | os.PathLike, cause: str, message: str | None = None):
        self.path = Path(path)
        self.cause = cause
        super().__init__(message or f"{self.path} is not a usable media file: {cause}")


# --------------------------------------------------------------------------------------------
# verification of produced media


def duration_tolerance_s(duration_s: float, fps: float | None = None) -> float:
    """Allowed |actual - expected| duration of a re-encoded copy: max(0.5 s, 3 frames, 2 %)."""
    frames3 = 3.0 / fps if fps and fps > 0 else 0.5
    return max(0.5, frames3, 0.02 * float(duration_s))


def _is_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide")
    except OSError:
        return False


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
      file (:func:`dashcam.video.mp4_truncation`: what a full disk or a killed ffmpeg leaves);
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
    if _is_mp4(p):
        trunc = mp4_truncation(p, size)
        if trunc is not None:
            raise MediaCheckError(p, f"incomplete MP4: {trunc}")
    vs = _ffprobe_video(p)
    if vs is None:
        raise MediaCheckError(p, "ffprobe cannot read it or finds no video stream")
    got_codec = vs.get("codec_name")
    if codec is not None and got_codec != codec:
        raise MediaCheckError(p, f"video codec is {got_codec}, expected {codec}")
    w, h = vs.get("width"), vs.get("height")
    if (width is not None and w != width) or (height is not None and h != height):
        raise MediaCheckError(p, f"frame size is {w}x{h}, expected {width}x{height}")
    dur = float(vs.get("_duration") or 0.0)
    if duration_s is not None:
        tol = duration_tolerance_s(duration_s, fps)
        lo = duration_s if min_duration_s is None else min(min_duration_s, duration_s)
        if not lo - tol <= dur <= duration_s + tol:
            want = f"{duration_s:.2f} s" if min_duration_s is None else f"{lo:.2f}-{duration_s:.2f} s"
            raise MediaCheckError(p, f"duration is {dur:.2f} s, expected {want} (+-{tol:.2f} s): cut short?")
    return {"kind": kind, "width": w, "height": h, "duration_s": dur, "codec": got_codec}


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


def _atomic_write(
    path: str | os.PathLike, fill: Callable[[BinaryIO], None], verify: Callable[[Path], Any] | None = None
) -> Path:
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
            if verify is not None:
                try:
                    verify(tmp)
                except MediaCheckError as e:
                    raise MediaCheckError(dst, e.cause, f"Could not write {dst}: the written file is unusable "
                                          f"({e.cause}); {dst.name} was not written (no partial file left)") from None
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
                e.errno,
                f"Could not write {dst}{hint}: {e.strerror or e}; {dst.name} was not written (no partial file left)",
            ) from e
        raise
    _fsync_dir(dst.parent)
    return dst


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, *, verify: Callable[[Path], Any] | None = None
) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + fsync + rename).

    Creates missing parent folders. Returns the destination path. ``verify``: called with the
    fsynced temporary file before the rename (e.g. ``partial(verify_media, kind="image")``); a
    :class:`MediaCheckError` from it removes the temporary file and is re-raised naming ``path``.

    Raises:
        OSError: the write failed (e.g. ``ENOSPC`` disk full); the message names the file, no
            partial or temporary file is left and an existing ``path`` is untouched.
        MediaCheckError: ``verify`` rejected the written file (same guarantees).
    """
    return _atomic_write(path, lambda f: f.write(data), verify)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` (encoded with ``encoding``, no newline translation) atomically.

    See :func:`atomic_write_bytes` for guarantees and errors.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_copy(
    src: str | os.PathLike, dst: str | os.PathLike, *, verify: Callable[[Path], Any] | None = None
) -> Path:
    """Copy file ``src`` to ``dst`` atomically (streamed in 1 MiB chunks; content only, not
    permissions or times). Creates missing parent folders of ``dst``. Returns ``dst``.
    ``verify``: as in :func:`atomic_write_bytes`.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        OSError: reading or writing failed; no partial ``dst`` is left.
        MediaCheckError: ``verify`` rejected the copy; no ``dst`` is left.
    """
    s = Path(src)
    with open(s, "rb") as fin:
        return _atomic_write(dst, lambda f: shutil.copyfileobj(fin, f, 1024 * 1024), verify)


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


def _rate(rate: str | None) -> float:
    try:
        num, _, den = (rate or "0").partition("/")
        return float(num) / float(den or 1) if float(den or 1) else 0.0
    except ValueError:
        return 0.0


def _ffmpeg_said(stderr: bytes, tmp: Path, dst: Path) -> str:
    """ffmpeg's error lines as one line (temporary name replaced by the final one), '' if none.

    A line naming a full disk or quota wins: it is the cause the user must act on.
    """
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    lines = [ln.replace(str(tmp.resolve()), str(dst)).replace(str(tmp), str(dst)).replace("file:", "") for ln in lines]
    # "[mp4 @ 0x55d0...] msg" -> "mp4: msg" (no pointer noise, no brackets a terminal may eat)
    lines = [re.sub(r"^\[([\w-]+) @ 0x[0-9a-fA-F]+\]\s*", r"\1: ", ln) for ln in lines]
    lines = [ln for ln in lines if not ln.startswith("Last message repeated")]
    full = [ln for ln in lines if "No space left" in ln or "quota" in ln.lower()]
    pick = full[:1] or lines[-3:]
    return " | ".join(pick)


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
    min_duration_s: float | None = None,
    blur: Any = None,
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

    ``blur``: a :class:`dashcam.blur.BlurPlan` (issue 16 privacy blur): frames go decode ->
    OpenCV blur of its plate boxes -> encode (:func:`dashcam.blur.run_blurred`), same output
    format and the same verification. None (default): the plain one-ffmpeg transcode.

    Written to a temporary name in ``dst``'s folder, fsynced, verified with :func:`verify_media`
    (complete MP4 with its ``moov`` index, H.264 of the target size, duration within
    :func:`duration_tolerance_s` of the source's ffprobe duration, or from ``min_duration_s`` up
    to it for a damaged source that decodes only in part), then renamed: ``dst`` is either the
    complete new file or untouched. ffmpeg's exit status alone is not trusted (ffmpeg 5.1 exits 0
    after "Error writing trailer: No space left on device").

    Raises:
        ArchiveError: ``src`` missing or not a video, or ffmpeg failed; one line naming ``dst``
            and the cause (ffmpeg's own error line when it printed one, e.g. "No space left on
            device"); no file is left at ``dst`` or under a temporary name.
        MediaCheckError: (an ArchiveError) the output failed verification; same guarantees.
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
    expected = float(vs["_duration"])
    fps = _rate(vs.get("avg_frame_rate")) or _rate(vs.get("r_frame_rate"))
    lock_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _lock(lock_fd)
        if blur is None:
            res = procs.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        else:  # issue 16 privacy blur (dashcam.blur): decode -> OpenCV -> encode, verified below as usual
            from dashcam.blur import run_blurred

            res = run_blurred(s, tmp, blur, width=w, height=h, fps=vs.get("avg_frame_rate") or fps, crf=crf,
                              preset=preset, threads=threads, audio=audio)
        said = _ffmpeg_said(res.stderr, tmp, d)
        if res.returncode != 0:
            raise ArchiveError(
                f"ffmpeg failed (exit status {res.returncode}) transcoding {s.name} to {d}: "
                f"{said or 'no error message'}; {d.name} was not written"
            )
        try:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        except OSError as e:
            raise ArchiveError(f"Could not write {d}: {e.strerror or e}; {d.name} was not written") from None
        try:
            verify_media(tmp, "video", width=w, height=h, duration_s=expected, fps=fps, codec="h264",
                         min_duration_s=min_duration_s)
        except MediaCheckError as e:
            # ffmpeg's own reason ("No space left on device") first, then what the check found
            cause = f"{said} ({e.cause})" if said else e.cause
            raise MediaCheckError(
                d, cause, f"Could not write {d}: ffmpeg exited 0 transcoding {s.name} but the file is "
                f"unusable: {cause}; {d.name} was not written (no partial file left)"
            ) from None
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


def _complete_archive(path: Path, info: VideoInfo, height: int, min_duration_s: float | None = None) -> bool:
    """True when ``path`` is a whole archive copy of ``info`` (:func:`verify_media`: a complete
    MP4 that ffprobe reads as H.264 of the expected size, whose duration matches the source's
    within :func:`duration_tolerance_s`, or lies between ``min_duration_s`` and it)."""
    if not path.is_file():
        return False
    w, h = _target_size(info.width, info.height, height)
    try:
        verify_media(path, "video", width=w, height=h, codec="h264", fps=info.fps,
                     duration_s=info.duration_s, min_duration_s=min_duration_s)
    except MediaCheckError as e:
        log.warning("existing archive copy is not usable: %s", e)
        return False
    return True


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
    atomic_copy(s, dst, verify=_verify_image)
    return str(dst)


def _verify_image(path: Path) -> None:
    verify_media(path, "image")


def archive_video(
    info: VideoInfo,
    events: list[PlateEvent],
    archive_dir: str | os.PathLike,
    height: int = 720,
    crf: int = 28,
    preset: str = "veryfast",
    *,
    threads: int | None = None,
    min_duration_s: float | None = None,
    blur: Any = None,
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

    Every file is verified (:func:`verify_media`) before it takes its final name.
    ``min_duration_s``: for a damaged source, the span that decoded: the archive copy may be
    anything from that to ``info.duration_s`` long (default: it must match ``info.duration_s``).
    ``blur``: a :class:`dashcam.blur.BlurPlan` passed to :func:`transcode` (None: no blur).

    Returns ``(archive video path, events)`` where the events are copies (inputs untouched) with
    ``crop_path``/``thumb_path`` pointing at the archive files (None stays None). Idempotent:
    running it twice gives the same files and does no work the second time.

    Raises:
        ArchiveError: transcode failed, a file failed verification, or an event's image is
            missing (and not archived yet). One line: the file, the cause, and which of this
            video's archive files are complete (those stay; a rerun keeps them).
            Writing errors (``OSError``, e.g. a full disk) are raised as ArchiveError too, chained.
    """
    base = Path(archive_dir) / info.video_id
    video_dst = archive_video_path(archive_dir, info.video_id, height)
    done: list[str] = []  # archive files complete on disk (kept or written by this call)

    def failed(cause: str) -> str:
        have = f"complete so far: {', '.join(done)}" if done else "no archive file of it is complete"
        return f"archiving video {info.video_id} failed: {cause} ({have})"

    try:
        if _complete_archive(video_dst, info, height, min_duration_s):
            log.info("archive copy %s already complete; skipping transcode", video_dst)
        else:
            if video_dst.exists():
                log.warning("archive copy %s incomplete or unreadable; redoing it", video_dst)
            transcode(info.path, video_dst, height=height, crf=crf, preset=preset, threads=threads,
                      min_duration_s=min_duration_s, blur=blur)
        done.append(video_dst.name)

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
                done.append(f"{sub}/{dst.name}")
            out.append(ev.model_copy(update=update))
    except (ArchiveError, OSError) as e:
        cause = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ArchiveError(failed(cause)) from e
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
