"""ffmpeg/ffprobe invocation: the command-line flags, input naming, ffprobe fields, error text.

Everything here shells out to the ``ffmpeg``/``ffprobe`` binaries (found on ``PATH``) through
``ffmpeg-python``, which only builds the command lines; the processes are started through
:mod:`dashcam.procs` (they die with us). Written once here and used by probe, decode, verify
and the archive transcode:

* the global flags (:data:`FF_GLOBAL`: no stdin, no banner, errors only);
* input/output names (:func:`ff_path`: ``file:<absolute path>``, so names containing ``:`` or
  starting with ``-`` are never taken for protocols or options);
* ffprobe's fields: frame rates (:func:`parse_rate`), the video stream (:func:`video_stream`),
  display rotation (:func:`rotation`), :func:`ffprobe_video`;
* ffmpeg's messages as one line (:func:`tail`, :func:`stderr_text`, :func:`ffmpeg_said`,
  :func:`error_line`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import ffmpeg

from dashcam import procs

__all__ = [
    "FFMPEG",
    "FFPROBE",
    "FF_GLOBAL",
    "ff_path",
    "ffmpeg_cmd",
    "parse_rate",
    "video_stream",
    "rotation",
    "ffprobe_json",
    "ffprobe_video",
    "stderr_text",
    "tail",
    "ffmpeg_said",
    "error_line",
]

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
#: Global flags of every ffmpeg/ffprobe run that only needs errors on stderr.
FF_GLOBAL = ["-nostdin", "-hide_banner", "-loglevel", "error"]
_ERROR_TAGS = ("[error]", "[fatal]", "[panic]")


def ff_path(path: str | os.PathLike) -> str:
    """``file:<absolute path>``: how a local file is named on an ffmpeg/ffprobe command line."""
    return "file:" + str(Path(path).resolve())


def ffmpeg_cmd(out: Any, *, global_args: list[str] | None = None, overwrite: bool = False) -> list[str]:
    """The argv of an ``ffmpeg-python`` output node: ``ffmpeg <global_args> [-y] <args>``.

    ``global_args`` default :data:`FF_GLOBAL`; ``overwrite`` adds ``-y`` (ffmpeg then writes into
    a temp file we created and locked, see :func:`dashcam.media.files.atomic_output`).
    """
    return [
        FFMPEG,
        *(FF_GLOBAL if global_args is None else global_args),
        *(["-y"] if overwrite else []),
        *ffmpeg.get_args(out),
    ]


def parse_rate(rate: str | None) -> float:
    """ffprobe rate ``"30000/1001"``, ``"25"``, ``"0/0"`` or None -> frames/s (0.0 when unknown)."""
    if not rate or rate in ("0/0", "0"):
        return 0.0
    try:
        if "/" in rate:
            num, den = rate.split("/", 1)
            return float(num) / float(den) if float(den) else 0.0
        return float(rate)
    except ValueError:
        return 0.0


def video_stream(meta: dict, *, skip_attached_pic: bool = True) -> dict | None:
    """The first video stream of ffprobe's ``meta`` (``-show_streams``), or None.

    ``skip_attached_pic``: pass over cover-art streams (disposition ``attached_pic``), as probe
    does; False takes the stream ffmpeg's ``v:0`` maps (the archive transcode).
    """
    for s in meta.get("streams", []):
        if s.get("codec_type") != "video":
            continue
        if skip_attached_pic and (s.get("disposition") or {}).get("attached_pic"):
            continue
        return s
    return None


def rotation(stream: dict) -> int:
    """Display rotation of an ffprobe video stream in degrees, ``[0, 360)``.

    The display-matrix side data (``side_data_list[].rotation``) wins over the legacy ``rotate``
    tag; unparseable values count as 0. ffmpeg applies this rotation when decoding (autorotate),
    so 90/270 swap the decoded frame's width and height.
    """
    rot = (stream.get("tags") or {}).get("rotate")
    for sd in stream.get("side_data_list") or []:
        if "rotation" in sd:
            rot = sd["rotation"]
    try:
        return int(float(rot or 0)) % 360
    except (TypeError, ValueError):
        return 0


def ffprobe_json(path: str | os.PathLike) -> dict:
    """ffprobe ``-show_format -show_streams`` of a local file as a dict.

    Raises:
        ffmpeg.Error | dashcam.procs.ProbeError: ffprobe failed (stderr attached).
        FileNotFoundError: ffprobe is not on PATH.
    """
    return procs.ffprobe_json(ff_path(path), cmd=FFPROBE, v="error")


def ffprobe_video(path: Path) -> dict[str, Any] | None:
    """First video stream (``v:0``, cover art included) of ``path`` with ``"_duration"`` added
    (stream duration, else container duration; seconds, 0.0 when neither), or None if ffprobe
    cannot read it or finds no video stream."""
    try:
        meta = ffprobe_json(path)
    except (ffmpeg.Error, procs.ProbeError, FileNotFoundError):
        return None
    s = video_stream(meta, skip_attached_pic=False)
    if s is None:
        return None
    out = dict(s)
    dur: Any = s.get("duration") or (meta.get("format") or {}).get("duration")
    try:
        out["_duration"] = float(dur)
    except (TypeError, ValueError):
        out["_duration"] = 0.0
    return out


def stderr_text(e: Exception) -> str:
    """The ``stderr`` attached to an ffmpeg/ffprobe exception, decoded and stripped ('' if none)."""
    err = getattr(e, "stderr", None)
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    return (err or "").strip()


def tail(text: str, n: int = 8) -> str:
    """The last ``n`` non-empty lines of ``text``."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def ffmpeg_said(stderr: bytes, tmp: Path, dst: Path) -> str:
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


def error_line(line: str) -> str | None:
    """ffmpeg's message without its ``[ctx @ 0x..] [level]`` prefix when it is an error, else None.

    For stderr logged with ``-loglevel level+...`` (each line tagged ``[error]``, ``[fatal]``,
    ``[panic]``, ``[info]``...).
    """
    for tag in _ERROR_TAGS:
        i = line.find(tag)
        if i >= 0:
            ctx = line[:i].strip()
            msg = line[i + len(tag) :].strip()
            ctx = re.sub(r"\s*@\s*0x[0-9a-fA-F]+", "", ctx).strip().strip("[]").strip()
            return f"{ctx}: {msg}" if ctx else msg
    return None
