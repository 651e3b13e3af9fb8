"""Clip export: cut the moment of a plate event, front and rear side by side when both exist.

:func:`export_clip` (``dashcam clip EVENT_ID``) re-encodes ``[t - before, t + after]`` around the
event (``vehicles.pts_s`` of its video) from the raw file while it exists, else from the archive
copy, with ffmpeg started through :mod:`dashcam.procs`; the result is verified
(:func:`dashcam.archive.verify_media`, the requested duration clamped to the recording) in a temp
file before it takes its name.

Front/rear pairing (:func:`partner_stem`): Viofo (and most Novatek cameras) record the two
channels of one moment as files of the same name that differ only in the last letter of the
stem, ``2024_0315_143022_0001F.MP4`` / ``..._0001R.MP4`` (also ``..._F`` / ``..._R``), in the same
folder or in ``Front/`` / ``Rear/``. The partner is the ingested video whose file stem is the
event's with F and R swapped; its cut is aligned by recording time (``recording_start``), so a
channel that started a second later is still in step. Front is always on the left.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dashcam import procs
from dashcam.archive import _ffmpeg_said, _fsync_dir, _tmp_name, verify_media

__all__ = ["ClipError", "export_clip", "partner_stem"]

_FR = re.compile(r"^(?P<base>.*\d.*?)(?P<sep>_?)(?P<ch>[FR])$", re.IGNORECASE)


class ClipError(RuntimeError):
    """The clip cannot be made (unknown event, no footage left, ffmpeg failed). One line."""


def partner_stem(stem: str) -> tuple[str, str] | None:
    """``(channel, partner stem)`` of a front/rear file stem, or None when the name has no channel.

    ``"2024_0315_143022_0001F"`` -> ``("F", "2024_0315_143022_0001R")``; the stem must contain a
    digit before the channel letter (so ``"CAR"`` is not a rear file).
    """
    m = _FR.match(stem)
    if not m:
        return None
    ch = m.group("ch")
    other = {"F": "R", "R": "F", "f": "r", "r": "f"}[ch]
    return ch.upper(), f"{m.group('base')}{m.group('sep')}{other}"


def _footage(video: dict) -> str | None:
    """The best file of a video still on disk: the raw file, else the archive copy."""
    if video.get("raw_deleted_at") is None and os.path.isfile(video["path"]):
        return video["path"]
    ap = video.get("archive_path")
    if ap and video.get("archive_deleted_at") is None and os.path.isfile(ap):
        return ap
    return None


def export_clip(
    engine: Engine,
    event_id: str,
    *,
    before_s: float = 10.0,
    after_s: float = 10.0,
    out: str | os.PathLike | None = None,
    crf: int = 23,
    preset: str = "veryfast",
    blur: Callable[[dict], Any] | None = None,
) -> dict[str, Any]:
    """Write the clip of plate event ``event_id`` (``vehicles.id``) to ``out``; return its facts.

    The cut is ``[pts_s - before_s, pts_s + after_s]`` seconds of the event's video, clamped to
    the recording. ``blur`` (``dashcam clip --blur``): a function from a ``videos`` row to its
    :class:`dashcam.blur.BlurPlan` (e.g. :func:`dashcam.blur.clip_plan`); each input's cut then
    goes decode -> plate blur -> encode first (:func:`dashcam.blur.run_blurred`, a temporary file
    beside ``out``), and the clip is made from those cuts. With a front/rear partner (:func:`partner_stem`) still on disk, the two are
    scaled to the smaller height and put side by side (ffmpeg ``hstack``, front left), audio from
    the front. H.264 MP4, ``crf``/``preset`` of libx264. Default ``out``:
    ``./<plate>_<video_id>_<track_id>.mp4``.

    Returns ``{"path", "duration_s", "width", "height", "sources": [files used], "start_s"}``.

    Raises:
        ClipError: unknown event, no footage of it left on disk, or ffmpeg failed.
        dashcam.blur.BlurError: ``blur`` given and a video's plate boxes are missing.
        MediaCheckError: the written clip does not play or has the wrong duration (nothing is
            left at ``out``).
        ValueError: negative ``before_s``/``after_s``.
    """
    from dashcam.db import VEHICLES, VIDEOS

    if before_s < 0 or after_s < 0 or before_s + after_s <= 0:
        raise ValueError(f"--before/--after must be >= 0 and not both 0 (got {before_s}, {after_s})")
    with engine.connect() as conn:
        ev = conn.execute(sa.select(VEHICLES).where(VEHICLES.c.id == event_id)).mappings().first()
        if ev is None:
            raise ClipError(f"no plate event {event_id!r} in the database")
        video = dict(conn.execute(sa.select(VIDEOS).where(VIDEOS.c.id == ev["video_id"])).mappings().one())
        partner = None
        pair = partner_stem(Path(video["path"]).stem)
        if pair is not None:
            for row in conn.execute(sa.select(VIDEOS).where(VIDEOS.c.path.like(f"%{pair[1]}.%"))).mappings():
                if Path(row["path"]).stem == pair[1] and row["id"] != video["id"]:
                    partner = dict(row)
                    break
    src = _footage(video)
    if src is None:
        raise ClipError(f"video {video['id']} has neither its raw file nor an archive copy on disk any more")
    start = max(0.0, float(ev["pts_s"]) - before_s)
    end = min(float(video["duration_s"]), float(ev["pts_s"]) + after_s)
    if end - start <= 0.05:
        raise ClipError(
            f"event {event_id} at {ev['pts_s']:.2f} s leaves nothing to cut in a {video['duration_s']:.2f} s video"
        )
    inputs = [(src, start, video)]
    if partner is not None and (psrc := _footage(partner)) is not None:
        at = video["recording_start"] + timedelta(seconds=start) - partner["recording_start"]
        pstart = at.total_seconds()
        if 0 <= pstart < float(partner["duration_s"]):
            end = min(end, start + float(partner["duration_s"]) - pstart)
            inputs.append((psrc, pstart, partner))
    if len(inputs) == 2 and pair is not None and pair[0] == "R":  # two inputs: a partner was found through pair
        inputs.reverse()  # front on the left
    dur = end - start
    dst = Path(out) if out is not None else Path.cwd() / f"{ev['final_plate']}_{video['id']}_{ev['track_id']}.mp4"
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(dst)
    cuts: list[Path] = []
    sources = [p for p, _s, _v in inputs]
    try:
        if blur is not None:  # issue 16: blurred cuts first (dashcam.blur), the clip is made of them
            inputs = [(str(_blurred_cut(p, ss, dur, v, blur(v), dst, cuts)), 0.0, v) for p, ss, v in inputs]
        facts = _cut(inputs, dur, dst, tmp, event_id, float(video["fps"]), crf, preset)
    finally:
        for c in cuts:
            c.unlink(missing_ok=True)
    return {
        "path": str(dst),
        "duration_s": facts["duration_s"],
        "width": facts["width"],
        "height": facts["height"],
        "sources": sources,
        "start_s": start,
    }


def _blurred_cut(path: str, ss: float, dur: float, video: dict, plan: Any, dst: Path, cuts: list[Path]) -> Path:
    """``[ss, ss + dur]`` of ``path`` with ``plan``'s plates blurred, near-lossless (CRF 12), as a
    temporary file beside ``dst`` (appended to ``cuts`` for the caller to remove)."""
    from dashcam.blur import run_blurred

    cut = _tmp_name(dst.with_name(dst.stem + "-blur.mp4"))
    cuts.append(cut)
    facts = verify_media(path, "video")
    w, h = int(facts["width"]) // 2 * 2, int(facts["height"]) // 2 * 2
    res = run_blurred(
        path,
        cut,
        plan,
        width=w,
        height=h,
        fps=float(video["fps"]),
        crf=12,
        preset="veryfast",
        start_frame=round(ss * float(video["fps"])),
        ss=ss,
        duration=dur,
        audio=True,
    )
    if res.returncode != 0:
        raise ClipError(
            f"ffmpeg could not blur the cut of {path}: {_ffmpeg_said(res.stderr, cut, dst) or res.returncode}"
        )
    return cut


def _cut(
    inputs: list, dur: float, dst: Path, tmp: Path, event_id: str, fps: float, crf: int, preset: str
) -> dict[str, Any]:
    """ffmpeg the clip of ``inputs`` (``[(path, start s, videos row)]``) into ``tmp``, verify it, rename to ``dst``."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for path, ss, _v in inputs:
        cmd += ["-ss", f"{ss:.3f}", "-t", f"{dur:.3f}", "-i", "file:" + str(Path(path).resolve())]
    if len(inputs) == 2:
        h = min(int(inputs[0][2]["height"]), int(inputs[1][2]["height"]), 720) // 2 * 2
        cmd += [
            "-filter_complex",
            f"[0:v]scale=-2:{h},setsar=1[a];[1:v]scale=-2:{h},setsar=1[b];[a][b]hstack=inputs=2[v]",
            "-map",
            "[v]",
            "-map",
            "0:a?",
        ]
    else:
        cmd += ["-map", "0:v:0", "-map", "0:a?", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"]
    cmd += [
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        str(crf),
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        "file:" + str(tmp.resolve()),
    ]
    try:
        res = procs.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        if res.returncode != 0:
            raise ClipError(
                f"ffmpeg could not cut {event_id}: {_ffmpeg_said(res.stderr, tmp, dst) or f'exit {res.returncode}'}"
            )
        facts = verify_media(tmp, "video", codec="h264", duration_s=dur, fps=fps)
        os.replace(tmp, dst)
        _fsync_dir(dst.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return facts
