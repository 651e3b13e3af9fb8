"""Decoder options on dashcam-format clips: time and the pixel effect on analysed frames (issue 17).

Usage::

    .venv/bin/python bench/decode_options.py [--inputs VIDEO ...] [--detect-fps 6] [--only a,b,c]

Per input (by default its first ``--cut`` 10 s, stream-copied: whole GOPs), each variant decodes the **whole** file (every frame has to be decoded: in an IP-only
stream every frame is a reference for the next) and hands every K-th frame (K =
``round(fps / detect_fps)``) over as a BGR ``uint8`` array where the variant delivers frames;
wall seconds are measured in one run so the ratios are comparable:

* ``null``: ``ffmpeg -i F -f null -`` (the bench's "decode-only"; no conversion, no pipe);
* ``null -threads 1|2``, ``-thread_type frame|slice``: decoder threading;
* ``null -skip_loop_filter all`` / ``-skip_frame noref``: skipping work (see the pixel columns);
* ``pipe``: :func:`dashcam.video.iter_frames` (ffmpeg subprocess, ``select`` + ``bgr24`` rawvideo
  through a pipe), the consumer doing nothing;
* ``pyav``: in-process PyAV (``av``): decode every frame, ``to_ndarray(format="bgr24")`` on every
  K-th, decoder ``thread_type`` AUTO;
* ``pyav scale 1/2``: the same with the K-th frames converted at half size in the same swscale
  call (what "scaling in the decoder for the vehicle pass" would buy);
* ``hwaccel X``: ``ffmpeg -hwaccel X`` null decode, for every method ffmpeg lists (fails cleanly
  where no device exists).

Pixel columns (``skip_loop_filter``): the analysed frames decoded with ``-skip_loop_filter all``
against the normal decode: mean absolute difference (8-bit levels), PSNR (dB), and the worst frame;
since skipping the in-loop deblocking of reference frames feeds the error forward, the worst
frame is the last one of a GOP.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ffnull(path: Path, *opts: str, hw: str | None = None) -> float | str:
    """Seconds of ``ffmpeg [opts] -i path -f null -``; the error line when it fails."""
    pre = ["-hwaccel", hw] if hw else []
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *pre, *opts, "-i", str(path), "-f", "null", "-"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        return "fails: " + (r.stderr.strip().splitlines() or ["?"])[-1][:80]
    return dt


def pipe_frames(path: Path, detect_fps: float) -> float:
    from dashcam.video import iter_frames, probe

    info = probe(path)
    t0 = time.perf_counter()
    for _ in iter_frames(info, detect_fps):
        pass
    return time.perf_counter() - t0


def pyav_frames(path: Path, step: int, scale: float = 1.0, options: dict | None = None, keep: list | None = None):
    """Seconds to decode ``path`` with PyAV converting every ``step``-th frame; frames into ``keep``."""
    import av

    t0 = time.perf_counter()
    with av.open(str(path), options=options or {}) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        w, h = s.codec_context.width, s.codec_context.height
        for n, frame in enumerate(c.decode(s)):
            if n % step:
                continue
            if scale != 1.0:
                img = frame.to_ndarray(format="bgr24", width=int(w * scale), height=int(h * scale))
            else:
                img = frame.to_ndarray(format="bgr24")
            if keep is not None:
                keep.append(img)
    return time.perf_counter() - t0


def pyav_skip_lf_frames(path: Path, step: int) -> list[np.ndarray]:
    import av

    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.options = {"skip_loop_filter": "all"}
        for n, frame in enumerate(c.decode(s)):
            if n % step == 0:
                out.append(frame.to_ndarray(format="bgr24"))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.int16) - b.astype(np.int16)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def hwaccels() -> list[str]:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-hwaccels"], capture_output=True, text=True).stdout
    return [x.strip() for x in out.splitlines()[1:] if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", nargs="*", type=Path, default=None)
    ap.add_argument("--detect-fps", type=float, default=6.0)
    ap.add_argument("--only", default="", help="comma-separated variant names to run (default: all)")
    ap.add_argument("--cut", type=float, default=10.0, help="measure the first CUT seconds of each input (0: all)")
    args = ap.parse_args(argv)
    from bench.dashcam_formats import UPSCALED_NOTE, make_all
    from dashcam.video import frame_step, probe

    inputs = args.inputs or make_all()["singles"]
    tmp = Path(tempfile.mkdtemp(prefix="dashcam-decode-options-"))
    if args.cut:
        cut = []
        for p in inputs:
            dst = tmp / p.name
            subprocess.run(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(p), "-t", str(args.cut), "-c", "copy", str(dst)],
                check=True,
            )
            cut.append(dst)
        inputs = cut
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    print(f"cpus={os.cpu_count()}  detect_fps={args.detect_fps}  clips: {UPSCALED_NOTE}")
    print("| input | variant | wall s | x real time | vs null |")
    print("|---|---|---|---|---|")
    for path in inputs:
        info = probe(path)
        step = frame_step(info.fps, args.detect_fps)
        variants: list[tuple[str, object]] = [
            ("null", lambda p=path: ffnull(p)),
            ("null -threads 1", lambda p=path: ffnull(p, "-threads", "1")),
            ("null -threads 2", lambda p=path: ffnull(p, "-threads", "2")),
            ("null -thread_type slice", lambda p=path: ffnull(p, "-thread_type", "slice")),
            ("null -thread_type frame", lambda p=path: ffnull(p, "-thread_type", "frame")),
            ("null -skip_loop_filter all", lambda p=path: ffnull(p, "-skip_loop_filter", "all")),
            ("null -skip_frame noref", lambda p=path: ffnull(p, "-skip_frame", "noref")),
            ("pipe (iter_frames)", lambda p=path: pipe_frames(p, args.detect_fps)),
            ("pyav", lambda p=path, k=step: pyav_frames(p, k)),
            ("pyav scale 1/2", lambda p=path, k=step: pyav_frames(p, k, 0.5)),
        ]
        variants += [(f"hwaccel {h}", lambda p=path, h=h: ffnull(p, hw=h)) for h in hwaccels()]
        base = None
        for name, fn in variants:
            if only and name not in only:
                continue
            try:
                r = fn()  # type: ignore[operator]
            except ImportError as e:  # PyAV (the dev extra) not installed
                r = f"fails: {e}"
            if isinstance(r, str):
                print(f"| {path.name} | {name} | {r} | | |")
                continue
            if name == "null":
                base = r
            rel = f"{r / base:.2f}" if base else ""
            print(f"| {path.name} | {name} | {r:.2f} | {info.duration_s / r:.2f} | {rel} |", flush=True)
        if (not only or "pixels" in only) and importlib.util.find_spec("av") is not None:
            ref: list[np.ndarray] = []
            pyav_frames(path, step, keep=ref)
            got = pyav_skip_lf_frames(path, step)
            n = min(len(ref), len(got))
            diffs = [float(np.mean(np.abs(ref[i].astype(np.int16) - got[i].astype(np.int16)))) for i in range(n)]
            ps = [psnr(ref[i], got[i]) for i in range(n)]
            worst = int(np.argmax(diffs))
            print(
                f"| {path.name} | skip_loop_filter pixels | {n} analysed frames: mean |diff| {np.mean(diffs):.2f}, "
                f"PSNR median {np.median(ps):.1f} dB, worst frame_idx {worst * step} |diff| {diffs[worst]:.2f} "
                f"PSNR {ps[worst]:.1f} dB | | |",
                flush=True,
            )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
