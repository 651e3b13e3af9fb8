"""Cost of the privacy blur in the archive transcode (issue 16): off, plates, plates+faces; same clip, one run.

Usage::

    PYTHONPATH=$PWD DASHCAM_SHARED_DIR=../shared .venv/bin/python bench/blur_cost.py [--repeat 3] [--threads 2] [CLIP ...]

For each clip (default: plates-video ``Categorie I/Video10_2.avi`` and road-video
``udacity_vehdet_test_video.mp4``): analyse it once (:func:`dashcam.pipeline.analyze`, real models,
for its ``boxes.jsonl``), build the blur plan (:func:`dashcam.blur.load_plan`), then run
:func:`dashcam.archive.transcode` to 720p with blur off, ``plates`` and ``plates+faces``
(:class:`dashcam.blur.FaceBlur`), alternating, ``--repeat`` times, and print the median wall time
of each and the ratios to off (x transcode time), plus the faces found (summed over the
detection frames of the last plates+faces run). The analysis is not timed. Timings on a shared
machine are noisy: compare the ratios of one run, not seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import model_dir, shared_dir  # noqa: E402

DEFAULT = [
    shared_dir() / "data/plates-video/TrainingSet/Categorie I/Video10_2.avi",
    shared_dir() / "data/road-video/udacity_vehdet_test_video.mp4",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from dashcam.archive import transcode
    from dashcam.blur import load_plan
    from dashcam.pipeline import analyze
    from dashcam.settings import Settings
    from dashcam.video import probe

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(model_dir=model_dir(), camera_tz="UTC", data_dir=Path(tmp))
        for clip in args.clips:
            info = probe(clip, camera_tz="UTC")
            res = analyze(info, settings, Path(settings.work_dir or Path(tmp) / "work"))
            assert res.boxes_path is not None
            plan = load_plan(
                res.boxes_path, info.width, info.height, info.fps, settings.detect_fps, n_frames=info.frame_count
            )
            faces = dataclasses.replace(plan, faces=True)
            plans = {"off": None, "plates": plan, "faces": faces}
            times: dict[str, list[float]] = {m: [] for m in plans}
            for _ in range(args.repeat):
                for mode, p in plans.items():
                    t0 = time.perf_counter()
                    transcode(clip, Path(tmp) / f"{mode}.mp4", height=720, threads=args.threads, blur=p)
                    times[mode].append(time.perf_counter() - t0)
            found = _faces_found(clip, Path(tmp) / "faces.mp4")
            med = {m: statistics.median(t) for m, t in times.items()}
            rows.append(
                (
                    clip.name,
                    f"{info.width}x{info.height}",
                    info.frame_count,
                    plan.n_frames,
                    found,
                    med["off"],
                    med["plates"],
                    med["faces"],
                )
            )
    print(
        f"{'clip':34} {'size':>9} {'frames':>6} {'plates':>6} {'faces':>5} {'off s':>6} {'plates s':>8} "
        f"{'x':>5} {'+faces s':>8} {'x':>5}"
    )
    for name, size, n, nb, nf, off, pl, fa in rows:
        print(
            f"{name[:34]:34} {size:>9} {n:>6} {nb:>6} {nf:>5} {off:6.2f} {pl:8.2f} {pl / off:5.2f} "
            f"{fa:8.2f} {fa / off:5.2f}"
        )


def _faces_found(clip: Path, out: Path) -> int:
    """Faces FaceBlur finds on ``clip``'s detection frames at the archive size (as the bench's run)."""
    import subprocess

    import numpy as np

    from dashcam.blur import FaceBlur
    from dashcam.video import probe

    info = probe(out, camera_tz="UTC")
    w, h = info.width, info.height
    dec = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(clip),
            "-vf",
            f"scale={w}:{h}",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "pipe:1",
        ],
        capture_output=True,
        check=True,
    ).stdout
    fb = FaceBlur()
    frames = (
        (i, np.frombuffer(dec, np.uint8, w * h * 3, i * w * h * 3).reshape(h, w, 3))
        for i in range(len(dec) // (w * h * 3))
    )
    for _ in fb.stream(frames):
        pass
    return fb.found


if __name__ == "__main__":
    main()
