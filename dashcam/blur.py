"""Privacy blur of plates in the archive copy and in exported clips (issue 16, ``archive_blur``).

Size (~580 lines, over the project's ~500): the plate plan, the face pass and the decode -> blur ->
encode runner share :class:`BlurPlan`; the face pass (:class:`FaceBlur`) is the part to split out next.

What is blurred: the plate of every track for which the analysis found a plate box, in every
source frame of the track, so that no frame between two analysed ones shows a readable plate.
The analysis (:func:`dashcam.pipeline.analyze`) writes ``boxes.jsonl``
(:class:`dashcam.records.TrackBox`): every track's box in every analysed frame (every K-th
source frame, K = round(fps / detect_fps)) and the plate box where the plate detector found one
in that frame (read or not: OCR may have rejected the crop).
Plate boxes are sparse (the scheduler reads a settled track about once a second), so
:func:`plan_plate_blur` builds one plate box per track and analysed frame and then per source
frame:

1. analysed frame with a detected plate: its plate box;
2. analysed frame without one: the track's nearest-in-time plate box, as a box *relative to its
   vehicle box* (fractions of the vehicle box width/height), placed on this frame's vehicle box;
   close-up plate tracks (no vehicle) are the plate box itself;
3. source frames between two analysed frames of the track, at most ``max_gap`` frames apart:
   linear interpolation of the two boxes' corners; across a longer gap (the tracker lost it) and
   for ``hold`` frames before the first / after the last analysed frame: the nearest box held;
4. every box padded by ``PAD_X`` / ``PAD_Y`` of its size on each side (motion between analysed
   frames is not linear) and clipped to the frame.

Tracks without any plate box (the detector never found a plate on them: too small or absent) are
not blurred: there is nothing known to follow. The blur (:func:`blur_boxes`): each box averaged down to 16 x 6 cells (at
most 2 cells across a character), smoothed, and scaled back up bilinearly.

Frames travel decode -> OpenCV -> encode through pipes (:func:`run_blurred`): ``ffmpeg`` decodes
``rawvideo bgr24`` at the output size, this process blurs, a second ``ffmpeg`` encodes H.264
(libx264, yuv420p, +faststart, container metadata from the source), so the archive stays
browser-playable. Only when blur is on: the no-blur transcode is one ffmpeg as before. The caller
verifies the result (:func:`dashcam.archive.verify_media`) before renaming it.

Faces (``archive_blur = "plates+faces"``, :class:`FaceBlur`): dlib's frontal face detector
(HOG features + a linear SVM over an image pyramid, N. Dalal and B. Triggs, "Histograms of
Oriented Gradients for Human Detection", CVPR 2005; the trained model is compiled into dlib, PyPI
``dlib-bin``, Boost Software Licence) runs on every ``FACE_EVERY``-th frame being blurred, as a
grey image at most ``FACE_MAX_WIDTH`` px wide, upsample ``FACE_UPSAMPLE``; each frame blurs the
faces of every detection frame at most ``FACE_EVERY`` frames away (both neighbours between two
detections, three on a detection frame), padded ``FACE_PAD``, so a face detected on a frame's
neighbours is blurred on it too. It finds frontal faces about 60 px wide and larger (upsample 0;
about 32 px with upsample 1, at about 4x the time); measured by bench/face_limits.py, see
docs/storage.md.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import subprocess
import tempfile
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from dashcam import procs
from dashcam.records import BBox, TrackBox, read_jsonl

__all__ = [
    "BlurError",
    "BlurPlan",
    "FaceBlur",
    "plan_plate_blur",
    "load_plan",
    "blur_boxes",
    "run_blurred",
    "BOXES_FILE",
]

PAD_X = 0.20  # of the plate box width, each side
PAD_Y = 0.35  # of the plate box height, each side
MOSAIC = (16, 6)  # cells across / down a plate box
BOXES_FILE = "plate_boxes.jsonl"  # the TrackBox records kept beside the archive copy (clip --blur)
# faces (plates+faces): measured on the shared 2-core machine, see docs/storage.md and bench/blur_cost.py
FACE_EVERY = 3  # detect on every 3rd frame (0.1 s at 30 fps); the frames between get both neighbours' faces
FACE_MAX_WIDTH = 1280  # grey detection image at most this wide (720p archive frames: full size)
FACE_UPSAMPLE = 0  # dlib pyramid upsampling: 0 finds faces >= ~60 px wide, 1 >= ~32 px at ~4x the time
FACE_PAD = 0.25  # of the face box size, each side (the HOG box is eyebrows to chin)
FACE_MOSAIC = (8, 8)  # cells across / down a face box


class BlurError(RuntimeError):
    """The blur cannot be done (no plate boxes for the video, ffmpeg failed). One line."""


@dataclass
class BlurPlan:
    """Plate boxes to blur per source frame: ``boxes[frame_idx] = [(x1, y1, x2, y2), ...]`` in
    source-frame pixels (``src_w`` x ``src_h``), padded and clipped. Frames not in it are left
    (apart from faces when ``faces`` is set: :class:`FaceBlur` in :func:`run_blurred`)."""

    src_w: int
    src_h: int
    boxes: dict[int, list[BBox]] = field(default_factory=dict)
    faces: bool = False  # also blur faces (FaceBlur, detected on the frames themselves): plates+faces

    def at(self, frame_idx: int) -> list[BBox]:
        """The boxes of source frame ``frame_idx`` (empty list: nothing to blur)."""
        return self.boxes.get(frame_idx, [])

    @property
    def n_frames(self) -> int:
        """Source frames with at least one box."""
        return len(self.boxes)


def _rel(plate: BBox, car: BBox) -> BBox:
    cw, ch = max(car[2] - car[0], 1e-6), max(car[3] - car[1], 1e-6)
    return ((plate[0] - car[0]) / cw, (plate[1] - car[1]) / ch, (plate[2] - car[0]) / cw, (plate[3] - car[1]) / ch)


def _on(rel: BBox, car: BBox) -> BBox:
    cw, ch = car[2] - car[0], car[3] - car[1]
    return (car[0] + rel[0] * cw, car[1] + rel[1] * ch, car[0] + rel[2] * cw, car[1] + rel[3] * ch)


def _key_boxes(track: list[TrackBox]) -> list[tuple[int, BBox]]:
    """(frame_idx, plate box) for each analysed frame of one track with a known plate (rules 1-2)."""
    read = [(b.frame_idx, _rel(b.plate_bbox, b.car_bbox)) for b in track if b.plate_bbox is not None]
    if not read:
        return []
    frames = [f for f, _ in read]
    out = []
    for b in track:
        if b.plate_bbox is not None:
            out.append((b.frame_idx, b.plate_bbox))
            continue
        i = bisect.bisect_left(frames, b.frame_idx)
        near = min((j for j in (i - 1, i) if 0 <= j < len(read)), key=lambda j: abs(frames[j] - b.frame_idx))
        out.append((b.frame_idx, _on(read[near][1], b.car_bbox)))
    return out


def _pad(b: BBox, w: int, h: int) -> BBox:
    bw, bh = b[2] - b[0], b[3] - b[1]
    return (
        max(0.0, b[0] - PAD_X * bw),
        max(0.0, b[1] - PAD_Y * bh),
        min(float(w), b[2] + PAD_X * bw),
        min(float(h), b[3] + PAD_Y * bh),
    )


def plan_plate_blur(
    boxes: Iterable[TrackBox],
    src_w: int,
    src_h: int,
    step: int,
    *,
    n_frames: int | None = None,
    skip_tracks: Iterable[int] = (),
) -> BlurPlan:
    """Per-source-frame plate boxes of every track with a plate box (module doc, rules 1-4).

    Args:
        boxes: :class:`~dashcam.records.TrackBox` records of one video (any order).
        src_w, src_h: source frame size in pixels (the boxes' coordinate frame).
        step: source frames between analysed frames (K = round(fps / detect_fps), >= 1);
            interpolation spans gaps up to ``3 * step`` frames, ends are held ``step`` frames.
        n_frames: source frame count (held boxes are not planned past it); None: no limit.
        skip_tracks: track ids left unblurred (e.g. watch-list plates in the owner's copy).

    Returns:
        :class:`BlurPlan` in source pixels.
    """
    step = max(1, int(step))
    max_gap, hold = 3 * step, step
    skip = set(skip_tracks)
    by_track: dict[int, list[TrackBox]] = defaultdict(list)
    for b in boxes:
        if b.track_id not in skip:
            by_track[b.track_id].append(b)
    plan = BlurPlan(src_w, src_h)
    last = None if n_frames is None else n_frames - 1

    def put(f: int, box: BBox) -> None:
        if f >= 0 and (last is None or f <= last):
            plan.boxes.setdefault(f, []).append(_pad(box, src_w, src_h))

    for track in by_track.values():
        track.sort(key=lambda b: b.frame_idx)
        keys = _key_boxes(track)
        if not keys:
            continue
        for f in range(keys[0][0] - hold, keys[0][0]):
            put(f, keys[0][1])
        for (f0, b0), (f1, b1) in zip(keys, keys[1:], strict=False):
            if f1 - f0 <= max_gap:
                for f in range(f0, f1):
                    t = (f - f0) / (f1 - f0)
                    put(f, tuple(a + t * (c - a) for a, c in zip(b0, b1, strict=True)))  # type: ignore[arg-type]
            else:
                for f in range(f0, f0 + hold + 1):
                    put(f, b0)
                for f in range(f1 - hold, f1):
                    put(f, b1)
        for f in range(keys[-1][0], keys[-1][0] + hold + 1):
            put(f, keys[-1][1])
    return plan


def load_plan(
    boxes_path: str | os.PathLike,
    src_w: int,
    src_h: int,
    fps: float,
    detect_fps: float,
    *,
    n_frames: int | None = None,
    skip_tracks: Iterable[int] = (),
) -> BlurPlan:
    """:func:`plan_plate_blur` of a ``boxes.jsonl`` file written by the analysis.

    ``step`` is the analysis's K = max(1, round(fps / detect_fps)) (:func:`dashcam.video.iter_frames`).

    Raises:
        BlurError: the file is missing (heavy output written before issue 16, or cleaned).
    """
    p = Path(boxes_path)
    if not p.is_file():
        raise BlurError(
            f"cannot blur plates: the plate boxes {p} are missing (analysed before the blur existed, "
            "or the heavy output was cleaned); re-run the analysis of this video"
        )
    step = max(1, round(fps / detect_fps)) if detect_fps > 0 else 1
    return plan_plate_blur(read_jsonl(p, TrackBox), src_w, src_h, step, n_frames=n_frames, skip_tracks=skip_tracks)


def blur_boxes(
    frame: np.ndarray,
    boxes: Iterable[BBox],
    scale_x: float = 1.0,
    scale_y: float = 1.0,
    cells: tuple[int, int] = MOSAIC,
) -> np.ndarray:
    """Blur ``boxes`` (source pixels, times ``scale_x``/``scale_y`` = frame pixels) in ``frame``
    (``(H, W, 3)`` uint8, modified in place and returned): the box averaged down to ``cells``
    (across, down; default ``MOSAIC`` 16 x 6: at most 2 cells across a plate character, faces
    ``FACE_MOSAIC`` 8 x 8), a 3x3 Gaussian over the cells, then scaled back up bilinearly (smooth,
    no block edges). Costs about 1-3 ms for a box, whatever its size."""
    import cv2

    h, w = frame.shape[:2]
    for b in boxes:
        x1, y1 = max(0, int(b[0] * scale_x)), max(0, int(b[1] * scale_y))
        x2, y2 = min(w, int(np.ceil(b[2] * scale_x))), min(h, int(np.ceil(b[3] * scale_y)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = frame[y1:y2, x1:x2]
        small = cv2.resize(roi, (min(cells[0], x2 - x1), min(cells[1], y2 - y1)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (3, 3), 0)  # on the cells: cheap, whatever the box size
        frame[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    return frame


class FaceBlur:
    """Frontal faces on a stream of frames, for ``archive_blur = "plates+faces"``.

    Detector: ``dlib.get_frontal_face_detector()`` (HOG + linear SVM, sliding window over an image
    pyramid; Dalal & Triggs, CVPR 2005; model built into dlib, PyPI ``dlib-bin``). It runs on
    every ``every``-th frame of the stream (the first frame, then every ``every``-th, and the last
    one), on the frame converted to grey and scaled down by ``scale = min(1, max_width / W)``
    (INTER_AREA), with ``upsample`` pyramid doublings; its boxes are mapped back to the frame's
    pixels (divided by ``scale``) and padded ``pad`` of their size on each side.

    Every frame then gets the faces of all detection frames at most ``every`` frames away from it
    (between two detection frames: both; on a detection frame: itself and its two neighbouring
    detection frames), so a face detected on a frame's neighbours is also blurred on it, and a
    single missed detection is covered by the detections on either side.
    """

    def __init__(
        self,
        every: int = FACE_EVERY,
        max_width: int = FACE_MAX_WIDTH,
        upsample: int = FACE_UPSAMPLE,
        pad: float = FACE_PAD,
    ) -> None:
        """Raises:
        BlurError: dlib is not installed (one line naming the package)."""
        try:
            import dlib
        except ImportError:
            raise BlurError(
                "archive_blur=plates+faces needs dlib: pip install dlib-bin "
                "(a runtime dependency of dashcam-pipeline; docs/storage.md)"
            ) from None
        self.detector = dlib.get_frontal_face_detector()
        self.every, self.max_width, self.upsample, self.pad = max(1, int(every)), max_width, upsample, pad
        self.detections = 0  # frames detected on so far
        self.found = 0  # faces found so far (over all detection frames)

    def detect(self, frame: np.ndarray) -> list[BBox]:
        """Faces in ``frame`` (``(H, W, 3)`` BGR uint8) as ``(x1, y1, x2, y2)`` in ``frame``'s
        pixels (float, padded by ``pad``, clipped to the frame)."""
        import cv2

        h, w = frame.shape[:2]
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        scale = min(1.0, self.max_width / w)
        if scale < 1.0:
            grey = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        self.detections += 1
        out = []
        for r in self.detector(grey, self.upsample):
            x1, y1, x2, y2 = r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale
            px, py = self.pad * (x2 - x1), self.pad * (y2 - y1)
            out.append((max(0.0, x1 - px), max(0.0, y1 - py), min(float(w), x2 + px), min(float(h), y2 + py)))
        self.found += len(out)
        return out

    def stream(self, frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray, list[BBox]]]:
        """``(frame_idx, frame, face boxes)`` for each ``(frame_idx, frame)`` of ``frames`` (consecutive
        frame indexes), in order, delayed by ``every`` frames (at most ``every + 1`` frames held)."""
        buf: deque[tuple[int, np.ndarray]] = deque()
        dets: dict[int, list[BBox]] = {}
        first: int | None = None
        last: int | None = None

        def near(j: int) -> list[BBox]:
            return [b for d, bs in dets.items() if abs(d - j) <= self.every for b in bs]

        for i, frame in frames:
            first = i if first is None else first
            last = i
            if (i - first) % self.every == 0:
                dets[i] = self.detect(frame)
            buf.append((i, frame))
            while buf and buf[0][0] + self.every <= i:
                j, f = buf.popleft()
                yield j, f, near(j)
                for d in [d for d in dets if d < j - self.every]:
                    del dets[d]
        if last is not None and first is not None and (last - first) % self.every and buf:
            dets[last] = self.detect(buf[-1][1])  # the last frame: no detection after it to hold from
        while buf:
            j, f = buf.popleft()
            yield j, f, near(j)


def _read_exact(f: IO[bytes], n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def run_blurred(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    plan: BlurPlan,
    *,
    width: int,
    height: int,
    fps: float | str,
    crf: int = 28,
    preset: str = "veryfast",
    threads: int | None = None,
    start_frame: int = 0,
    ss: float | None = None,
    duration: float | None = None,
    audio: bool = False,
) -> subprocess.CompletedProcess:
    """Decode ``src``, blur ``plan``'s boxes, encode H.264 MP4 to ``dst`` (decode -> OpenCV -> encode).

    Args:
        src: source video; its first video stream is decoded, scaled to ``width`` x ``height``
            (even, aspect kept by the caller), ``rawvideo bgr24``, one frame per source frame
            (``-fps_mode passthrough``).
        dst: output file (normally the caller's temporary name; written with ``-y``).
        plan: boxes in source pixels (``plan.src_w`` x ``plan.src_h``), scaled to the output;
            ``plan.faces``: also faces (:class:`FaceBlur` on the output-size frames, in their pixels).
        fps: output frame rate (the source's ``avg_frame_rate``, e.g. ``"30000/1001"``, or a float).
        crf, preset, threads: libx264 settings (as :func:`dashcam.archive.transcode`).
        start_frame, ss, duration: for a cut: decode from ``ss`` seconds for ``duration`` seconds,
            whose first frame is source frame ``start_frame``.
        audio: re-encode the source's first audio stream to AAC 96 kb/s (default: none).

    Returns:
        A ``CompletedProcess`` with the worse of the two ffmpeg exit statuses as ``returncode``
        and both ffmpegs' stderr as ``stderr`` (bytes), as :func:`dashcam.procs.run` would.
        ``dst`` is not verified here: the caller does (:func:`dashcam.archive.verify_media`).

    Raises:
        BlurError: ``plan.faces`` and dlib is not installed.
    """
    s = "file:" + str(Path(src).resolve())
    g = ["-nostdin", "-hide_banner", "-loglevel", "error"]
    th = ["-threads", str(threads)] if threads else []
    cut_in = ["-ss", f"{ss:.3f}"] if ss is not None else []
    cut_t = ["-t", f"{duration:.3f}"] if duration is not None else []
    dec = [
        "ffmpeg",
        *g,
        *th,
        *cut_in,
        "-i",
        s,
        *cut_t,
        "-map",
        "0:v:0",
        "-vf",
        f"scale={width}:{height}",
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "pipe:1",
    ]
    enc = [
        "ffmpeg",
        *g,
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
        f"{width}x{height}",
        "-framerate",
        str(fps),
        "-i",
        "pipe:0",
        *cut_in,
        "-i",
        s,
        "-map",
        "0:v",
        "-map_metadata",
        "1",
    ]
    enc += ["-map", "1:a:0?", "-c:a", "aac", "-b:a", "96k", *cut_t] if audio else ["-an"]
    enc += [
        "-c:v",
        "libx264",
        "-crf",
        str(crf),
        "-preset",
        preset,
        "-pix_fmt",
        "yuv420p",
        *th,
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        "file:" + str(Path(dst).resolve()),
    ]
    sx, sy = width / plan.src_w, height / plan.src_h
    size = width * height * 3
    faces = FaceBlur() if plan.faces else None  # before any ffmpeg starts: a missing dlib loses nothing
    with tempfile.TemporaryFile() as dec_err, tempfile.TemporaryFile() as enc_err:
        pdec = procs.popen(dec, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=dec_err)
        penc = procs.popen(enc, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=enc_err)
        assert pdec.stdout is not None and penc.stdin is not None
        broken = False
        out = pdec.stdout

        def decoded() -> Iterator[tuple[int, np.ndarray]]:
            i = start_frame
            while len(raw := _read_exact(out, size)) == size:
                yield i, np.frombuffer(raw, np.uint8).reshape(height, width, 3)
                i += 1

        frames: Iterator[tuple[int, np.ndarray, list[BBox]]] = (
            faces.stream(decoded()) if faces is not None else ((i, f, []) for i, f in decoded())
        )
        try:
            for i, frame, face_boxes in frames:
                boxes = plan.at(i)
                if boxes or face_boxes:
                    frame = blur_boxes(frame.copy(), boxes, sx, sy)
                    blur_boxes(frame, face_boxes, cells=FACE_MOSAIC)  # frame pixels
                try:
                    penc.stdin.write(frame.tobytes())
                except BrokenPipeError:
                    broken = True  # the encoder died: its stderr says why
                    break
        finally:
            if broken:
                pdec.kill()
            pdec.stdout.close()
            with contextlib.suppress(BrokenPipeError):
                penc.stdin.close()
            rc_dec, rc_enc = pdec.wait(), penc.wait()
        dec_err.seek(0)
        enc_err.seek(0)
        stderr = dec_err.read() + enc_err.read()
    # the encoder's status first (it wrote the file); a decoder that failed, or was cut off by a dead encoder
    rc = rc_enc or (1 if broken else rc_dec)
    return subprocess.CompletedProcess(dec + ["|"] + enc, rc, b"", stderr)


def frames_in(plan: BlurPlan) -> dict[str, Any]:
    """Small summary for logs: ``{"frames": n frames with boxes, "boxes": total boxes}``."""
    return {"frames": plan.n_frames, "boxes": sum(len(v) for v in plan.boxes.values())}


def boxes_file(manifest: Any) -> Path:
    """The ``boxes.jsonl`` of a :class:`dashcam.records.Manifest` (its recorded path, else the
    default name in its folder)."""
    return Path(manifest.analyze.boxes_path or Path(manifest.analyze.work_dir) / "boxes.jsonl")


def archive_plan(manifest: Any, settings: Any) -> BlurPlan | None:
    """The blur of one video's archive copy under ``settings.archive_blur``; None for ``"none"``;
    ``plates+faces``: the plate plan with ``faces`` set.

    Also keeps a copy of the plate boxes beside the archive copy
    (``ARCHIVE/<video_id>/plate_boxes.jsonl``, atomic) so ``dashcam clip --blur`` works after the
    heavy output is cleaned.

    Raises:
        BlurError: blur is on and the analysis's plate boxes are missing.
    """
    from dashcam.archive import atomic_copy

    src = boxes_file(manifest)
    if src.is_file():
        atomic_copy(src, Path(settings.archive_dir) / manifest.info.video_id / BOXES_FILE)
    if settings.archive_blur == "none":
        return None
    info = manifest.info
    plan = load_plan(src, info.width, info.height, info.fps, settings.detect_fps, n_frames=info.frame_count)
    plan.faces = settings.archive_blur == "plates+faces"
    return plan


def clip_plan(
    archive_dir: str | os.PathLike,
    work_dir: str | os.PathLike,
    video: dict,
    detect_fps: float,
    *,
    skip_tracks: Iterable[int] = (),
    faces: bool = False,
) -> BlurPlan:
    """The blur of a clip of ``video`` (a ``videos`` row: ``id``, ``width``, ``height``, ``fps``):
    the plate boxes kept beside its archive copy, else in its heavy output folder; ``skip_tracks``
    left unblurred (:func:`watched_tracks` for the owner's copy); ``faces``: faces too
    (``archive_blur = "plates+faces"``).

    Raises:
        BlurError: neither file exists.
    """
    p = Path(archive_dir) / video["id"] / BOXES_FILE
    if not p.is_file():
        p = Path(work_dir) / video["id"] / "boxes.jsonl"
    plan = load_plan(
        p, int(video["width"]), int(video["height"]), float(video["fps"]), detect_fps, skip_tracks=skip_tracks
    )
    plan.faces = faces
    return plan


def watched_tracks(engine: Any, video_id: str) -> set[int]:
    """Track ids of ``video_id``'s plate events that have a watch-list hit (table ``watch_hits``,
    :mod:`dashcam.watch_lists`): the plates an owner's copy may leave readable."""
    import sqlalchemy as sa

    from dashcam.db import VEHICLES, WATCH_HITS

    stmt = (
        sa.select(VEHICLES.c.track_id)
        .join(WATCH_HITS, WATCH_HITS.c.event_id == VEHICLES.c.id)
        .where(VEHICLES.c.video_id == video_id)
        .distinct()
    )
    with engine.connect() as conn:
        return {int(t) for (t,) in conn.execute(stmt)}
