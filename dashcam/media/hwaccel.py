"""Hardware video decode for :func:`dashcam.media.decode.iter_frames`: which ffmpeg ``-hwaccel`` to use.

:func:`choose_hwaccel` turns the ``hwaccel`` setting (``auto``, ``none``, ``cuda``, ``vaapi``,
``qsv``) into the method the decoder runs with, or None for CPU decode:

* a method is used only after ffmpeg has **decoded a frame of the video's codec with it**
  (:func:`probe_hwaccel`: ``ffmpeg -hwaccel M -i VIDEO -frames:v 1 -f null -``, exit status 0 and
  no error line); the answer is cached per process for each (method, codec), so a batch pays it
  once. Cheap pre-checks skip a method without starting ffmpeg: not in ``ffmpeg -hwaccels``; for
  ``cuda``, ``libcuda.so.1`` cannot be loaded (no NVIDIA driver); for ``vaapi``/``qsv``, no
  ``/dev/dri/renderD*`` node.
* ``auto`` tries ``cuda`` (NVDEC), then ``vaapi``, then ``qsv`` and takes the first that decodes;
  none: CPU decode.
* an explicit method that does not work **falls back to CPU decode** with a WARNING naming the
  method and why (a missing driver on one worker should slow a run down, not fail it; the
  decoder string in :class:`dashcam.records.AnalyzeResult` and the run report shows it).

Each choice is logged once per process and (setting, codec): INFO for ``auto``, WARNING for a
fallback. With ``-hwaccel`` and no ``-hwaccel_output_format``, ffmpeg downloads every decoded frame
to system memory, so the rest of the decode (``select``, ``showinfo``, ``bgr24`` conversion, the
pipe) and every guarantee of ``iter_frames`` stay as on CPU.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import logging
import subprocess
import threading
from pathlib import Path
from typing import Literal

from dashcam import procs
from dashcam.media.ffmpeg import error_line, ff_path

log = logging.getLogger(__name__)

__all__ = ["HWACCEL_ORDER", "HwaccelSetting", "ffmpeg_hwaccels", "decode_probe", "probe_hwaccel", "choose_hwaccel"]

HwaccelSetting = Literal["auto", "none", "cuda", "vaapi", "qsv"]
#: ``auto`` tries these in order.
HWACCEL_ORDER: tuple[str, ...] = ("cuda", "vaapi", "qsv")
PROBE_TIMEOUT_S = 30.0

_lock = threading.Lock()
_probed: dict[tuple[str, str], str | None] = {}  # (method, codec) -> None (works) | why not
_logged: set[tuple[str, str]] = set()


@functools.cache
def ffmpeg_hwaccels() -> tuple[str, ...]:
    """The methods ``ffmpeg -hwaccels`` lists (what this ffmpeg build can use; () when ffmpeg fails)."""
    try:
        res = procs.run(["ffmpeg", "-hide_banner", "-hwaccels"], capture_output=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    lines = res.stdout.decode("utf-8", "replace").splitlines()
    return tuple(x.strip() for x in lines[1:] if x.strip())


def _precheck(method: str) -> str | None:
    """Why ``method`` cannot work here without starting ffmpeg, or None (worth a probe)."""
    if method not in ffmpeg_hwaccels():
        return "not in `ffmpeg -hwaccels`"
    if method == "cuda":
        try:
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            return "libcuda.so.1 not loadable (no NVIDIA driver)"
    elif method in ("vaapi", "qsv") and not glob.glob("/dev/dri/renderD*"):
        return "no /dev/dri/renderD* device"
    return None


def decode_probe(method: str, video: str | Path) -> str | None:
    """Run ``ffmpeg -hwaccel method -i video -frames:v 1 -f null -``: None when it decoded the frame
    (exit status 0, no error line), else one line (the last error ffmpeg gave). Not cached."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "level+error", "-hwaccel", method]
    cmd += ["-i", ff_path(Path(video)), "-map", "0:v:0", "-frames:v", "1", "-f", "null", "-"]
    try:
        res = procs.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"probe decode timed out after {PROBE_TIMEOUT_S:.0f} s"
    except OSError as e:
        return f"ffmpeg could not run: {e}"
    errs = [e for e in (error_line(x) for x in res.stderr.decode("utf-8", "replace").splitlines()) if e]
    if res.returncode != 0 or errs:
        return (errs[-1] if errs else f"ffmpeg exit status {res.returncode}")[:160]
    return None


def probe_hwaccel(method: str, video: str | Path, codec: str) -> str | None:
    """None when ``method`` can decode ``video`` (pre-checks, then :func:`decode_probe`), else one
    line saying why not. Cached per process for ``(method, codec)``."""
    key = (method, codec)
    with _lock:
        if key in _probed:
            return _probed[key]
    why = _precheck(method)
    if why is None:
        why = decode_probe(method, video)
    with _lock:
        _probed[key] = why
    return why


def choose_hwaccel(setting: str, video: str | Path, codec: str) -> tuple[str | None, str]:
    """The ``-hwaccel`` method to decode ``video`` (of ffmpeg codec ``codec``) with, or None for CPU,
    and one line saying what was chosen and why (also logged, once per process per (setting, codec)).

    Raises:
        ValueError: ``setting`` is not one of ``auto``, ``none``, ``cuda``, ``vaapi``, ``qsv``.
    """
    if setting not in ("auto", "none", *HWACCEL_ORDER):
        raise ValueError(f"hwaccel must be auto, none, {', '.join(HWACCEL_ORDER)}; got {setting!r}")
    if setting == "none":
        return None, "hwaccel none: CPU decode (setting)"
    tried = HWACCEL_ORDER if setting == "auto" else (setting,)
    why_not: list[str] = []
    chosen = None
    for method in tried:
        why = probe_hwaccel(method, video, codec)
        if why is None:
            chosen = method
            break
        why_not.append(f"{method}: {why}")
    if chosen is not None:
        line = f"hwaccel {setting} -> {chosen} (decoded a {codec} frame with it)"
    elif setting == "auto":
        line = f"hwaccel auto -> none, CPU decode ({'; '.join(why_not)})"
    else:
        line = f"hwaccel {setting} requested but unusable, falling back to CPU decode ({'; '.join(why_not)})"
    with _lock:
        first = (setting, codec) not in _logged
        _logged.add((setting, codec))
    if first:
        log.log(logging.WARNING if chosen is None and setting != "auto" else logging.INFO, "decode: %s", line)
    return chosen, line
