"""Cost of the privacy blur in the archive transcode (issue 16): blur on vs off, same clip, one run.

Usage::

    PYTHONPATH=$PWD DASHCAM_SHARED_DIR=../shared .venv/bin/python bench/blur_cost.py [--repeat 3] [--threads 2] [CLIP ...]

For each clip (default: plates-video ``Categorie I/Video10_2.avi`` and road-video
``udacity_vehdet_test_video.mp4``): analyse it once (:func:`dashcam.pipeline.analyze`, real models,
for its ``boxes.jsonl``), build the blur plan (:func:`dashcam.blur.load_plan`), then run
:func:`dashcam.archive.transcode` to 720p with blur off and on, alternating, ``--repeat`` times,
and print the median wall time of each and the ratio (x transcode time). The analysis is not
timed. Timings on a shared machine are noisy: compare the ratio of one run, not seconds.
"""

from __future__ import annotations

import argparse
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
            res = analyze(info, settings, Path(settings.work_dir))
            plan = load_plan(
                res.boxes_path, info.width, info.height, info.fps, settings.detect_fps, n_frames=info.frame_count
            )
            times: dict[str, list[float]] = {"off": [], "on": []}
            for _ in range(args.repeat):
                for mode in ("off", "on"):
                    t0 = time.perf_counter()
                    transcode(
                        clip,
                        Path(tmp) / f"{mode}.mp4",
                        height=720,
                        threads=args.threads,
                        blur=plan if mode == "on" else None,
                    )
                    times[mode].append(time.perf_counter() - t0)
            off, on = statistics.median(times["off"]), statistics.median(times["on"])
            rows.append((clip.name, f"{info.width}x{info.height}", info.frame_count, plan.n_frames, off, on, on / off))
    print(f"{'clip':34} {'size':>9} {'frames':>6} {'blurred':>7} {'off s':>6} {'on s':>6} {'x':>5}")
    for name, size, n, nb, off, on, x in rows:
        print(f"{name[:34]:34} {size:>9} {n:>6} {nb:>7} {off:6.2f} {on:6.2f} {x:5.2f}")


if __name__ == "__main__":
    main()
