"""Archive: the H.264 archive transcode and the per-video archive folders.

Layout written by :func:`archive_video`::

    ARCHIVE/<video_id>/video_<height>p.mp4   H.264 yuv420p, +faststart, no audio
    ARCHIVE/<video_id>/plates/<track_id>.jpg  best plate crop of each event (copied from work dir)
    ARCHIVE/<video_id>/thumbs/<track_id>.jpg  vehicle thumbnail of each event

``<height>`` in the file name is the requested archive profile (``Settings.archive_height``); a
source smaller than that is never upscaled, so the pixel height may be lower.

Every file appears complete or not at all and is verified before it takes its final name: the
atomic writes (:mod:`dashcam.media.files`) and the check (:func:`verify_media`,
:mod:`dashcam.media.verify`) are the media layer's. Their names, and the errors, are re-exported
here for the callers that import them as ``dashcam.archive.*`` (the pipeline, ``dashcam.clip``,
``dashcam.storage``, the CLI).
"""

from __future__ import annotations

import filecmp
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import ffmpeg

from dashcam import procs
from dashcam.media.errors import ArchiveError, MediaCheckError
from dashcam.media.ffmpeg import ff_path, ffmpeg_cmd, ffmpeg_said, ffprobe_video, parse_rate, rotation
from dashcam.media.files import (
    STALE_TMP_MIN_AGE_S,
    _atomic_write,
    atomic_copy,
    atomic_output,
    atomic_write_bytes,
    atomic_write_text,
    fsync_dir,
    sweep_stale_tmp,
    tmp_name,
)
from dashcam.media.verify import duration_tolerance_s, verify_jpeg, verify_media
from dashcam.records import PlateEvent, VideoInfo

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
    "STALE_TMP_MIN_AGE_S",
    "transcode",
    "archive_video",
    "archive_video_path",
]

# the media layer's private-looking names that dashcam.clip and tests still import from here
_ffmpeg_said = ffmpeg_said
_fsync_dir = fsync_dir
_tmp_name = tmp_name
_atomic_write = _atomic_write


# --------------------------------------------------------------------------------------------
# transcode


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
    vs = ffprobe_video(s)
    if vs is None or not vs.get("width") or not vs.get("height"):
        raise ArchiveError(f"Cannot archive {s}: not a readable video (ffprobe found no video stream).")
    src_w, src_h = int(vs["width"]), int(vs["height"])
    if rotation(vs) % 180 == 90:  # ffmpeg auto-rotates before the scale filter
        src_w, src_h = src_h, src_w
    w, h = _target_size(src_w, src_h, height)
    expected = float(vs["_duration"])
    fps = parse_rate(vs.get("avg_frame_rate")) or parse_rate(vs.get("r_frame_rate"))

    with atomic_output(d) as tmp:
        in_kwargs: dict[str, Any] = {"threads": threads} if threads else {}
        inp = ffmpeg.input(ff_path(s), **in_kwargs)
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
        out = ffmpeg.output(*streams, ff_path(tmp), **out_kwargs)
        # -y: ffmpeg writes into the temp file atomic_output created (and flock'd, see sweep_stale_tmp)
        cmd = ffmpeg_cmd(out, overwrite=True)
        log.debug("transcode: %s", " ".join(cmd))
        if blur is None:
            res = procs.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        else:  # issue 16 privacy blur (dashcam.blur): decode -> OpenCV -> encode, verified below as usual
            from dashcam.blur import run_blurred

            res = run_blurred(
                s,
                tmp,
                blur,
                width=w,
                height=h,
                fps=vs.get("avg_frame_rate") or fps,
                crf=crf,
                preset=preset,
                threads=threads,
                audio=audio,
            )
        said = ffmpeg_said(res.stderr, tmp, d)
        if res.returncode != 0:
            raise ArchiveError(
                f"ffmpeg failed (exit status {res.returncode}) transcoding {s.name} to {d}: "
                f"{said or 'no error message'}; {d.name} was not written"
            )
        _fsync_file(tmp, d)
        try:
            verify_media(
                tmp,
                "video",
                width=w,
                height=h,
                duration_s=expected,
                fps=fps,
                codec="h264",
                min_duration_s=min_duration_s,
            )
        except MediaCheckError as e:
            # ffmpeg's own reason ("No space left on device") first, then what the check found
            cause = f"{said} ({e.cause})" if said else e.cause
            raise MediaCheckError(
                d,
                cause,
                f"Could not write {d}: ffmpeg exited 0 transcoding {s.name} but the file is "
                f"unusable: {cause}; {d.name} was not written (no partial file left)",
            ) from None
    return d


def _fsync_file(tmp: Path, d: Path) -> None:
    """fsync the file ffmpeg wrote; ArchiveError naming the final name ``d`` when that fails."""
    try:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except OSError as e:
        raise ArchiveError(f"Could not write {d}: {e.strerror or e}; {d.name} was not written") from None


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
        verify_media(
            path,
            "video",
            width=w,
            height=h,
            codec="h264",
            fps=info.fps,
            duration_s=info.duration_s,
            min_duration_s=min_duration_s,
        )
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
            transcode(
                info.path,
                video_dst,
                height=height,
                crf=crf,
                preset=preset,
                threads=threads,
                min_duration_s=min_duration_s,
                blur=blur,
            )
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
