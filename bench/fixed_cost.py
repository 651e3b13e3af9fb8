"""What each video costs beyond its frames, per stage, deployed and in-process (issue 17, point 5).

Usage::

    .venv/bin/python bench/fixed_cost.py [--videos N] [--part both|inprocess|deployed] [--no-warmup]

Dashcams write 1-3 minute segments, so what every video pays whatever its length (process
start, imports, model loading, probe, Prefect's flow/task runs, DB connects, the archive
encoder's start) adds up. This starts the one-machine cluster of ``infra/cluster.py``
(``LocalCluster``: PostgreSQL, a Prefect server on 127.0.0.1, ``dashcam deploy``, one process
worker per pool, as ``tests/test_pools.py`` does) and measures N short real clips (the 3 s
640x480 ``plates-video/TrainingSet/Categorie I`` clips, distinct files):

* ``inprocess``: one ``ingest`` call on the N clips in a fresh Python process (the flow of
  ``dashcam ingest``, one video at a time, SQLite results DB in a temp dir) against the cluster's
  Prefect server. The models are loaded before the timed call (once per process, reported on
  the title line); the frames' own time is ``AnalyzeResult.wall_s`` of each video (the frame
  loop plus its ~0.3 s of set-up and record writing, so ``fixed`` is if anything too small).
* ``deployed``: ``run_deployment("ingest/ingest", videos=[...])`` with the workers already
  running (a warm-up run of another clip first, so no first-ever import is counted; skip it
  with ``--no-warmup``).

Each stage's time is read back from the Prefect API: for each flow run ``queued`` = created ->
Running (worker poll + process start + flow engine start: deployed only), ``run`` = Running ->
end; tasks: start -> end. ``fixed`` = the video's ``ingest-video`` time minus its frames' time
(for the deployed runs the frames' time of the same clip in-process). Seconds, mean over the N
videos, and the first video separately. The
machine is shared and noisy: compare rows within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

REPO = Path(__file__).resolve().parents[1]
CODE = Path(os.environ.get("BENCH_CODE_DIR") or REPO)  # the code the in-process batch runs (--baseline)
sys.path.insert(0, str(CODE))
sys.path.insert(0, str(REPO / "infra"))

STAGES = {  # flow name -> its tasks, in order
    "analyze-video": ("probe", "analyze", "vote", "gps", "handover"),
    "archive-video": ("archive",),
    "finalize-video": ("persist", "watch-lists", "report"),
}


def shared_dir() -> Path:
    return Path(os.environ.get("DASHCAM_SHARED_DIR") or REPO.parent / "shared")


def model_dir() -> Path:
    return Path(os.environ.get("DASHCAM_MODEL_DIR") or shared_dir() / "models")


def clips(n: int, skip: int = 0) -> list[Path]:
    found = sorted((shared_dir() / "data" / "plates-video" / "TrainingSet" / "Categorie I").glob("*.avi"))
    return found[skip : skip + n]


def child(inputs: list[str]) -> int:
    """In-process batch: ingest INPUTS in this (fresh) process; JSON on stdout: frames' time per video."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ERROR")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from dashcam.alpr import FrameReader
    from dashcam.settings import Settings
    from flows.ingest import ingest

    data = Path(tempfile.mkdtemp(prefix="dashcam-bench-fixed-"))
    settings = Settings(data_dir=data, model_dir=model_dir(), camera_tz="UTC", max_parallel_videos=1)
    t0 = time.perf_counter()
    FrameReader(settings)  # the models, once per process (cached in this thread): not a per-video cost
    models = time.perf_counter() - t0
    t0 = time.perf_counter()
    summaries = ingest(inputs, settings=settings)
    wall = time.perf_counter() - t0
    # the frames' time: AnalyzeResult.wall_s (frame loop + FrameReader set-up + writing the records)
    frames = {s.path: s.wall_s for s in summaries}
    print(json.dumps({"wall": wall, "frames": frames, "models": models}))
    shutil.rmtree(data, ignore_errors=True)
    return 0


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


def stage_times(since: datetime, deployed: bool) -> dict[str, dict[str, float]]:
    """Per video (file name): seconds of each flow run (queued/run) and task run since SINCE."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime

    out: dict[str, dict[str, float]] = defaultdict(dict)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)), limit=200
        )
        flows = {f.id: f.name for f in client.read_flows(limit=50)}
        for fr in runs:
            flow = flows.get(fr.flow_id, "?")
            v = out[fr.name]
            if flow == "ingest-video":
                v["total"] = _seconds(fr.start_time, fr.end_time) or 0.0
            if flow not in STAGES:
                continue
            if deployed:
                v[f"{flow} queued"] = _seconds(fr.created, fr.start_time) or 0.0
            v[f"{flow} run"] = _seconds(fr.start_time, fr.end_time) or 0.0
            for tr in client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [fr.id]})):
                name = tr.name.rsplit("-", 1)[0]
                v[f"  {name}"] = v.get(f"  {name}", 0.0) + (_seconds(tr.start_time, tr.end_time) or 0.0)
    return out


def run_inprocess(videos: list[Path], env: dict[str, str], code: Path = REPO) -> tuple[dict, dict, float]:
    env = {**env, "BENCH_CODE_DIR": str(code), "PYTHONPATH": str(code)}
    since = datetime.now(UTC)
    cmd = [sys.executable, __file__, "--child", *map(str, videos)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    process_wall = time.perf_counter() - t0
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"in-process batch: exit {out.returncode}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    time.sleep(2)  # the last task-run states reach the API
    return res, stage_times(since, deployed=False), process_wall


def run_deployed(videos: list[Path]) -> tuple[dict, float]:
    from prefect.deployments import run_deployment

    since = datetime.now(UTC)
    t0 = time.perf_counter()
    run = cast(
        "FlowRun", run_deployment("ingest/ingest", parameters={"videos": [str(v) for v in videos]}, timeout=1800)
    )
    wall = time.perf_counter() - t0
    if not (run.state and run.state.is_completed()):
        raise SystemExit(f"deployed run ended {run.state}")
    time.sleep(2)
    return stage_times(since, deployed=True), wall


def table(title: str, per_video: dict[str, dict[str, float]], order: list[str], frames: dict[str, float]):
    from rich.table import Table

    names = [n for n in order if n in per_video]
    keys: list[str] = []
    for flow, tasks in STAGES.items():
        keys += [k for k in (f"{flow} queued", f"{flow} run") if any(k in per_video[n] for n in names)]
        keys += [f"  {t}" for t in tasks]
    t = Table(title=title)
    for col in ("stage", "first video s", "mean s (all)", "mean s (2nd on)"):
        t.add_column(col, justify="right" if col != "stage" else "left")

    def row(label: str, vals: list[float]) -> None:
        rest = vals[1:] or vals
        t.add_row(label, f"{vals[0]:.2f}", f"{sum(vals) / len(vals):.2f}", f"{sum(rest) / len(rest):.2f}")

    for k in keys:
        row(k, [per_video[n].get(k, 0.0) for n in names])
    totals = [per_video[n].get("total", 0.0) for n in names]
    fr = [frames.get(n, 0.0) for n in names]
    row("ingest-video (per video)", totals)
    row("frames (analyze wall_s, in-process)", fr)
    row("fixed = per video - frames", [a - b for a, b in zip(totals, fr, strict=True)])
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--part", choices=("both", "inprocess", "deployed"), default="both")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument(
        "--baseline",
        type=Path,
        help="also run the in-process batch with the code in this checkout (e.g. /work/main), first: before/after",
    )
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        return child(args.child)

    from cluster import LocalCluster
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from rich.console import Console

    console = Console(width=140)
    videos = clips(args.videos)
    home = Path(tempfile.mkdtemp(prefix="dashcam-bench-fixed-cluster-"))
    pg_dir = Path(tempfile.mkdtemp(prefix="dashcam-bench-fixed-pg-"))
    pg_dir.chmod(0o755)
    nas = home / "nas"
    env = {
        "DASHCAM_WORK_DIR": str(nas / "heavy_output"),
        "DASHCAM_ARCHIVE_DIR": str(nas / "archive"),
        "DASHCAM_DATA_DIR": str(home / "data"),
        "DASHCAM_MODEL_DIR": str(model_dir()),
        "DASHCAM_CAMERA_TZ": "UTC",
    }
    c = LocalCluster(home, env, postgres_dir=pg_dir / "pg")
    t0 = time.perf_counter()
    c.start(raw_dir=str(nas / "raw"))
    console.print(f"cluster up in {time.perf_counter() - t0:.0f} s ({home})")
    frames: dict[str, float] = {}
    try:
        with temporary_settings({PREFECT_API_URL: c.server.api_url}):
            if args.part in ("both", "inprocess"):
                child_env = {**os.environ, "PREFECT_API_URL": c.server.api_url, "PYTHONPATH": str(REPO)}
                for k in env:
                    child_env.pop(k, None)
                for code in [args.baseline, REPO] if args.baseline else [REPO]:
                    res, per_video, process_wall = run_inprocess(videos, child_env, code)
                    frames = {Path(p).name: s for p, s in res["frames"].items()}
                    console.print(
                        table(
                            f"in-process ({code}): one ingest of {len(videos)} 3 s clips (flow {res['wall']:.1f} s; "
                            f"before it: models {res['models']:.1f} s, process incl. imports and models "
                            f"{process_wall:.1f} s; load {os.getloadavg()[0]:.1f})",
                            per_video,
                            [v.name for v in videos],
                            frames,
                        )
                    )
            if args.part in ("both", "deployed"):
                if not args.no_warmup:
                    run_deployed(clips(1, skip=args.videos))
                per_video, wall = run_deployed(videos)
                console.print(
                    table(
                        f"deployed: ingest/ingest of {len(videos)} 3 s clips, workers running (submit -> "
                        f"Completed {wall:.1f} s, load {os.getloadavg()[0]:.1f})",
                        per_video,
                        [v.name for v in videos],
                        frames,
                    )
                )
    finally:
        c.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
