"""Streaming decode: every K-th frame of a video as BGR arrays, through a bounded queue.

Nothing loads a whole video into memory: :func:`iter_frames` streams raw frames from an ffmpeg
subprocess (:class:`_FfmpegFrames`: the process, a reader thread for stdout and one for stderr)
through a ``queue.Queue`` and judges damage at the end (:func:`_judge`).

Conventions (see also :mod:`dashcam.records`):

* ``frame_idx`` is the 0-based index of a frame in the decoded source video stream;
  ``pts_s = frame_idx / fps`` is seconds from the start of that stream (nominal timing: exact for
  constant-frame-rate files, which is what dashcams write; approximate for VFR phone videos).
* Images are ``numpy.ndarray`` of shape ``(height, width, 3)``, dtype ``uint8``, **BGR** channel
  order (OpenCV's), origin top-left, at the decoded stream's full resolution (after ffmpeg's
  automatic display-rotation, which :func:`dashcam.media.probe.probe` accounts for in
  ``width``/``height``).
"""

from __future__ import annotations

import collections
import io
import logging
import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import ffmpeg
import numpy as np

from dashcam import procs
from dashcam.media.errors import VideoError
from dashcam.media.ffmpeg import error_line, ff_path, ffmpeg_cmd, tail
from dashcam.media.hwaccel import choose_hwaccel
from dashcam.records import VideoInfo

log = logging.getLogger(__name__)

__all__ = ["Frame", "DecodeStats", "iter_frames", "frame_step", "decode_only_seconds", "DAMAGED_TAIL_S"]

#: More than this many seconds (and 3 frames) missing at the end of a decode marks the video
#: damaged (:attr:`DecodeStats.damage`); :func:`iter_frames` raises only past ``max_missing_s``.
DAMAGED_TAIL_S = 0.5


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
    ``done``: the generator finished; ``decoder``: what decoded, e.g. ``"ffmpeg-pipe hwaccel=none
    threads=auto"`` (:mod:`dashcam.media.hwaccel` chose the hwaccel); ``hwaccel_note``: the one line
    saying why that hwaccel was chosen; ``wait_s``: seconds the consumer waited for the decoder (an
    empty queue): near 0 when the consumer is the limit, most of the wall time when decode is.
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
    decoder: str = ""
    hwaccel_note: str = ""
    wait_s: float = 0.0
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


def _decode_cmd(
    info: VideoInfo, step: int, threads: int | None, hwaccel: str | None = None, skip_loop_filter: bool = False
) -> list[str]:
    in_kwargs: dict[str, Any] = {}
    if skip_loop_filter:
        in_kwargs["skip_loop_filter"] = "all"
    if hwaccel:
        in_kwargs["hwaccel"] = hwaccel  # frames come back to system memory: the filters below are unchanged
    if threads:
        in_kwargs["threads"] = threads
    stream = ffmpeg.input(ff_path(info.path), **in_kwargs)["v:0"]
    if step > 1:
        stream = stream.filter("select", f"not(mod(n,{step}))")
    stream = stream.filter("showinfo")
    out = ffmpeg.output(stream, "pipe:", format="rawvideo", pix_fmt="bgr24", vsync="passthrough", an=None, sn=None)
    return ffmpeg_cmd(out, global_args=_FF_DECODE_GLOBAL)


class _FfmpegFrames:
    """The ffmpeg process of one :func:`iter_frames` run and its two daemon threads.

    The reader thread reads ``width * height * 3``-byte frames from stdout into ``q`` (items:
    ``(pts_time s | None, image)``, an exception, or ``_EOF``); the stderr thread collects the
    showinfo pts times (``pts_times``, one per frame written, in order), ffmpeg's error lines
    (``err_lines``, the last 40; ``first_errors``, the first 3) and ``error_at``: the number of
    frames shown before the first error line (None: no error).
    """

    def __init__(
        self,
        info: VideoInfo,
        step: int,
        threads: int | None,
        queue_size: int,
        st: DecodeStats,
        hwaccel: str | None = None,
        skip_loop_filter: bool = False,
    ):
        self.info = info
        self.st = st
        self.frame_bytes = info.width * info.height * 3
        cmd = _decode_cmd(info, step, threads, hwaccel, skip_loop_filter)
        log.debug("decode: %s", " ".join(cmd))
        try:
            self.proc = procs.popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise VideoError("ffmpeg was not found on PATH: install ffmpeg.") from None
        st.pid = self.proc.pid
        self.q: queue.Queue = queue.Queue(queue_size)
        self.stop = threading.Event()
        self.err_lines: collections.deque[str] = collections.deque(maxlen=40)
        self.first_errors: list[str] = []
        self.error_at: int | None = None
        self.pts_times: list[float | None] = []
        self.pts_cv = threading.Condition()
        self.stderr_eof = threading.Event()
        self.no_pts = threading.Event()
        pid = self.proc.pid
        self.t_read = threading.Thread(target=self._reader, name=f"dashcam-decode-{pid}", daemon=True)
        self.t_err = threading.Thread(target=self._drain_stderr, name=f"dashcam-stderr-{pid}", daemon=True)
        self.t_read.start()
        self.t_err.start()

    # -- reader thread

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _frame_pts(self, k: int) -> float | None:
        # showinfo logs frame k before the frame is written to stdout; wait for the line (once:
        # if it never comes, count frames as before rather than wait on every frame)
        with self.pts_cv:
            if not self.no_pts.is_set() and not self.pts_cv.wait_for(
                lambda: len(self.pts_times) > k or self.stderr_eof.is_set() or self.stop.is_set(), timeout=10
            ):
                log.warning("%s: ffmpeg gave no frame timestamps; frame indices are counted", self.info.path)
                self.no_pts.set()
            return self.pts_times[k] if len(self.pts_times) > k else None

    def _read_frame(self) -> bytearray | None:
        """One whole frame from stdout, or None at the end (or when ffmpeg died mid-frame: its
        exit status reports that)."""
        stdout = cast(io.BufferedReader, self.proc.stdout)
        buf = bytearray(self.frame_bytes)
        view = memoryview(buf)
        got = 0
        while got < self.frame_bytes:
            n = stdout.readinto(view[got:])
            if not n:
                break
            got += n
        return buf if got == self.frame_bytes else None

    def _reader(self) -> None:
        st, info = self.st, self.info
        try:
            while not self.stop.is_set():
                buf = self._read_frame()
                if buf is None:
                    break
                img = np.frombuffer(buf, dtype=np.uint8).reshape(info.height, info.width, 3)
                pts = self._frame_pts(st.frames_decoded)
                st.frames_decoded += 1
                if not self._put((pts, img)):
                    return
                st.max_queue_depth = max(st.max_queue_depth, self.q.qsize())
        except Exception as e:  # noqa: BLE001 - handed to the consumer
            self._put(e)
            return
        self._put(_EOF)

    # -- stderr thread

    def _on_stderr_line(self, line: str) -> None:
        m = _SHOWINFO_RE.search(line)
        if m:
            try:
                t: float | None = float(m.group(1))
            except ValueError:  # NOPTS
                t = None
            with self.pts_cv:
                self.pts_times.append(t)
                self.pts_cv.notify_all()
            return
        err = error_line(line)
        if err:
            self.err_lines.append(err)
            if len(self.first_errors) < 3:
                self.first_errors.append(err)
            if self.error_at is None:
                self.error_at = len(self.pts_times)  # frames shown before the first error

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        try:
            for raw in self.proc.stderr:
                self._on_stderr_line(raw.decode("utf-8", "replace").rstrip())
        finally:
            with self.pts_cv:
                self.stderr_eof.set()
                self.pts_cv.notify_all()

    # -- consumer side

    def next_item(self) -> Any:
        """The next queue item: ``(pts, image)`` or ``_EOF``.

        Raises:
            VideoError: the reader thread died, or failed reading the pipe.
        """
        while True:
            try:
                item = self.q.get(timeout=1.0)
            except queue.Empty:
                if not self.t_read.is_alive() and self.q.empty():
                    raise VideoError(f"Decoder thread for {self.info.path} stopped unexpectedly.") from None
                continue
            if isinstance(item, BaseException):
                raise VideoError(f"Error reading decoded frames of {self.info.path}: {item}") from item
            return item

    def finish(self, kill: bool) -> int:
        """Wait for ffmpeg to exit (killing it first when ``kill``) and for its stderr; return the status."""
        if kill:
            self.stop.set()
            self.proc.kill()
        rc = self.proc.wait()
        self.t_err.join(timeout=5)
        return rc

    def close(self) -> None:
        """Kill ffmpeg if still running, wait for it, unblock and join both threads, close the pipes."""
        self.stop.set()
        with self.pts_cv:
            self.pts_cv.notify_all()
        proc = self.proc
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill cannot be ignored
            log.error("ffmpeg pid %s did not exit after kill", proc.pid)
        # unblock a reader waiting on a full queue, then join both threads
        while True:
            try:
                self.q.get_nowait()
            except queue.Empty:
                break
        self.t_read.join(timeout=5)
        self.t_err.join(timeout=5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _frames(
    dec: _FfmpegFrames, info: VideoInfo, step: int, st: DecodeStats
) -> Generator[Frame, None, tuple[int | None, int]]:
    """Yield the decoded frames with their true ``frame_idx``; return ``(stopped_at, last_idx)``:
    the source frame where decoding was stopped for damage (None: ran to the end) and the index
    of the last frame yielded (-1: none)."""
    last_idx = -1
    while True:
        t0 = time.perf_counter()
        item = dec.next_item()
        st.wait_s += time.perf_counter() - t0
        if item is _EOF:
            return None, last_idx
        pts, image = item
        if pts is None:  # no timestamp line (should not happen): count
            idx = last_idx + step if last_idx >= 0 else 0
        else:
            idx = max(last_idx + 1, round((pts - info.start_s) * info.fps))
        expected_idx = last_idx + step if last_idx >= 0 else 0
        first_err = dec.error_at
        if idx > expected_idx and first_err is not None and first_err <= st.frames_yielded:
            # frames lost after a decode error: stop here. The timing after such damage cannot
            # be trusted (an AVI demuxer that re-syncs numbers the next packets from where it
            # is: measured, frame 30 came out with the pts of frame 17). A pts gap without a
            # decode error is variable frame timing and goes on.
            return expected_idx, last_idx
        last_idx = idx
        st.frames_yielded += 1
        yield Frame(frame_idx=idx, pts_s=idx / info.fps, image=image)


def _judge(
    info: VideoInfo,
    st: DecodeStats,
    stopped_at: int | None,
    last_idx: int,
    rc: int,
    said: str,
    max_missing_s: float,
    damage_ok: bool,
) -> None:
    """Set ``st.missing_s``/``st.damage`` after the decode ended; raise or log per the damage policy
    of :func:`iter_frames`."""
    if st.frames_yielded == 0:
        what = (
            "is damaged from its first frame"
            if stopped_at is not None
            else f"could not be decoded (ffmpeg exit status {rc})"
        )
        raise VideoError(
            f"No frame of {info.path} could be decoded: the file {what}, it is corrupt or "
            f"unreadable. Re-copy it or check it with ffprobe. ffmpeg said: {said}"
        )
    end_idx = stopped_at if stopped_at is not None else last_idx + st.step
    st.missing_s = max(0, info.frame_count - end_idx) / info.fps
    failed_rc = rc != 0 and stopped_at is None
    parts = []
    if stopped_at is not None:
        parts.append(
            f"frames lost at frame {stopped_at} ({stopped_at / info.fps:.1f} s of "
            f"{info.duration_s:.1f} s), decoding stopped there"
        )
    elif st.missing_s > max(DAMAGED_TAIL_S, 3.0 / info.fps) or failed_rc:
        parts.append(
            f"decoding ended after frame {last_idx} ({end_idx / info.fps:.1f} s of "
            f"{info.duration_s:.1f} s, {st.missing_s:.1f} s missing)"
        )
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
            info.path,
            st.missing_s,
            max_missing_s,
            st.stderr_tail,
        )


def iter_frames(
    info: VideoInfo,
    detect_fps: float,
    queue_size: int = 8,
    *,
    stats: DecodeStats | None = None,
    max_missing_s: float = 1.0,
    threads: int | None = None,
    damage_ok: bool = False,
    hwaccel: str = "none",
    skip_loop_filter: bool = False,
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
    the video length. ``threads`` sets ffmpeg's decoder threads (None or 0: ffmpeg decides).

    ``hwaccel``: ``none`` (CPU decode, the default here), ``auto``, ``cuda``, ``vaapi`` or ``qsv``:
    :func:`dashcam.media.hwaccel.choose_hwaccel` picks a method only after it decoded a frame of
    this codec (cached per process) and falls back to CPU decode with a logged line otherwise;
    ``stats.decoder`` / ``stats.hwaccel_note`` say what ran. Decoded frames are downloaded to
    system memory, so everything below holds for hardware decode too. ``skip_loop_filter``: decode
    with ``-skip_loop_filter all`` (faster, frames drift from the true picture within each GOP;
    ``Settings.decode_skip_loop_filter``).

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
        ValueError: ``detect_fps <= 0``, ``queue_size < 1`` or an unknown ``hwaccel``.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")
    step = frame_step(info.fps, detect_fps)
    st = stats if stats is not None else DecodeStats()
    st.path = info.path
    st.step = step
    st.expected_frames = -(-info.frame_count // step)
    st.started_at = time.monotonic()
    method, st.hwaccel_note = choose_hwaccel(hwaccel, info.path, info.codec)
    st.decoder = f"ffmpeg-pipe hwaccel={method or 'none'} threads={threads or 'auto'}"
    if skip_loop_filter:
        st.decoder += " skip_loop_filter=all"
    dec = _FfmpegFrames(info, step, threads, queue_size, st, method, skip_loop_filter)
    try:
        stopped_at, last_idx = yield from _frames(dec, info, step, st)
        rc = dec.finish(kill=stopped_at is not None)
        st.returncode = rc
        st.stderr_tail = tail("\n".join(dec.err_lines), 12)
        said = " | ".join(dec.first_errors) or "(nothing)"
        _judge(info, st, stopped_at, last_idx, rc, said, max_missing_s, damage_ok)
    finally:
        dec.close()
        st.returncode = dec.proc.returncode
        st.done = True


def decode_only_seconds(path: str | os.PathLike, threads: int | None = None, hwaccel: str | None = None) -> float:
    """Wall-clock seconds ffmpeg takes to decode the first video stream of ``path`` to ``null``.

    The baseline for benchmarks' "pipeline time / pure decode time" ratio: full decode of every
    frame, no scaling, no pixel-format conversion, no pipe. ``threads``: decoder threads
    (None: ffmpeg decides); ``hwaccel``: an ffmpeg ``-hwaccel`` method already known to work
    (:func:`dashcam.media.hwaccel.choose_hwaccel`), None for CPU decode.

    Raises:
        VideoError: missing file or ffmpeg failure (with ffmpeg's stderr tail).
    """
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"Video file not found: {p}. Check the path.")
    in_kwargs: dict[str, Any] = {"threads": threads} if threads else {}
    if hwaccel:
        in_kwargs["hwaccel"] = hwaccel
    out = ffmpeg.output(ffmpeg.input(ff_path(p), **in_kwargs)["v:0"], "-", format="null")
    cmd = ffmpeg_cmd(out)
    t0 = time.perf_counter()
    res = procs.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise VideoError(
            f"ffmpeg could not decode {p} (exit status {res.returncode}).\nffmpeg said: "
            + tail(res.stderr.decode("utf-8", "replace"))
        )
    return dt
