"""Videos per hour of ``ingest`` against ``max_parallel_videos`` (issue 17, point 4).

Usage::

    .venv/bin/python bench/parallel.py [--parallel 1,2,4] [--set plates|road] [--videos N]

For each parallelism P, a **fresh Python process** (like a ``dashcam ingest`` command) runs the
Prefect flow ``ingest`` in-process on the same N videos with ``max_parallel_videos=P``, a new
SQLite results DB and new work/archive folders in a temp dir (so no ``analyze`` result is
cached), against one local Prefect API server started here for all of them
(:class:`dashcam.prefect_local.LocalApiServer`, as ``dashcam ingest`` does). The flow's wall time
(``perf_counter`` around the call: imports and server start excluded, model loading included,
as every command pays it once per process and, at P > 1, once per worker thread) gives
videos/hour = N / wall x 3600.

Inputs (real clips from the shared data, distinct content so each video has its own
``video_id``):

* ``plates`` (default): the first N 3 s 640x480 clips of ``plates-video/TrainingSet/Categorie I``
  (short: the per-video fixed cost dominates, as with many short segments);
* ``road``: N copies of the 30 s 768x432 ``road-video/intel_car-detection.mp4``, each remuxed
  (``-c copy``) with its own ``title`` tag so that its bytes and ``video_id`` differ (the frames
  dominate).

Columns: ``P``; ``wall s``; ``videos/h``; ``speed-up`` against the first P; ``analyze s`` (mean
of ``VideoSummary.wall_s``: one video's ``analyze`` stage, which grows when videos share the
cores); ``CPU %`` (user + system seconds of the process and its children, ffmpeg included, /
wall / usable cores); ``peak RSS MiB`` (the child's ``ru_maxrss``, one model set per worker
thread). The machine is shared and noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shared_dir() -> Path:
    return Path(os.environ.get("DASHCAM_SHARED_DIR") or REPO.parent / "shared")


def model_dir() -> Path:
    return Path(os.environ.get("DASHCAM_MODEL_DIR") or shared_dir() / "models")


def make_inputs(kind: str, n: int, tmp: Path) -> list[Path]:
    """N distinct real videos of set KIND (see the module docstring); copies are made in TMP."""
    data = shared_dir() / "data"
    if kind == "plates":
        clips = sorted((data / "plates-video" / "TrainingSet" / "Categorie I").glob("*.avi"))
        if len(clips) < n:
            raise SystemExit(f"only {len(clips)} plates clips, asked for {n}")
        return clips[:n]
    src = data / "road-video" / "intel_car-detection.mp4"
    out = []
    for i in range(n):
        dst = tmp / f"road_{i:02d}.mp4"
        if not dst.exists():
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy", "-metadata", f"title=copy {i}", str(dst)],
                check=True,
            )
        out.append(dst)
    return out


def child(args: argparse.Namespace) -> int:
    """One measurement: the ingest flow on ARGS.inputs at parallelism ARGS.child; JSON on stdout."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ERROR")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from dashcam.settings import Settings
    from flows.ingest import ingest

    data = Path(tempfile.mkdtemp(prefix="dashcam-bench-par-"))
    settings = Settings(data_dir=data, model_dir=model_dir(), camera_tz="UTC", max_parallel_videos=args.child)
    t0 = time.perf_counter()
    c0 = os.times()
    summaries = ingest([str(p) for p in args.inputs], settings=settings)
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user)
    cpu += c1.children_system - c0.children_system
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "analyze": sum(s.wall_s for s in summaries) / len(summaries),
                "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "plates": sorted(p for s in summaries for p, _ in s.plates),
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parallel", default="1,2,4", help="comma-separated max_parallel_videos values")
    ap.add_argument("--set", dest="kind", choices=("plates", "road"), default="plates")
    ap.add_argument("--videos", type=int, default=4, help="videos per run (default 4)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--inputs", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)

    from rich.console import Console
    from rich.table import Table

    from dashcam.prefect_local import LocalApiServer

    cores = len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="dashcam-bench-par-in-"))
    inputs = make_inputs(args.kind, args.videos, tmp)
    server = LocalApiServer().start()
    env = {**os.environ, "PREFECT_API_URL": server.api_url, "PYTHONPATH": str(REPO)}
    rows = []
    try:
        for p in [int(x) for x in args.parallel.split(",")]:
            cmd = [sys.executable, __file__, "--child", str(p), "--inputs", *map(str, inputs)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"parallelism {p}: exit {out.returncode}")
            rows.append((p, json.loads(out.stdout.strip().splitlines()[-1])))
            print(f"P={p}: {rows[-1][1]['wall']:.1f} s", file=sys.stderr)
    finally:
        server.stop()

    load = os.getloadavg()[0]
    t = Table(
        title=f"ingest of {len(inputs)} '{args.kind}' videos in-process, by max_parallel_videos "
        f"({cores} cores, load {load:.1f})"
    )
    for col in ("P", "wall s", "videos/h", "speed-up", "analyze s", "CPU %", "peak RSS MiB", "same plates"):
        t.add_column(col, justify="right")
    base = rows[0][1]
    for p, r in rows:
        t.add_row(
            str(p),
            f"{r['wall']:.1f}",
            f"{len(inputs) / r['wall'] * 3600:.0f}",
            f"{base['wall'] / r['wall']:.2f}x",
            f"{r['analyze']:.1f}",
            f"{100 * r['cpu'] / r['wall'] / cores:.0f}",
            f"{r['rss_mib']:.0f}",
            "yes" if r["plates"] == base["plates"] else "NO",
        )
    Console(width=140).print(t)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
