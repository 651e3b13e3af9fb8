"""Benchmark of ``dashcam watch``: delay from "file complete" to "flow run scheduled", idle CPU and RSS.

    .venv/bin/python bench/watch_latency.py [--quiet-s 5] [--files 10] [--idle-s 30] [--modes inotify,polling]

What it does, per mode (inotify, polling):

1. a real Prefect server on 127.0.0.1 (temporary PREFECT_HOME, SQLite), work pool ``server`` and
   a deployment ``<flow>/ingest`` of flows/ingest.py:ingest (no worker: runs stay Scheduled);
2. ``dashcam watch`` as a subprocess (the real service), on a temporary NAS folder that also holds
   ``--tree-files`` non-video files in 50 sub-folders (what a polling observer has to stat);
3. idle: CPU seconds (user+system, from /proc via psutil) over ``--idle-s`` seconds after start-up,
   as a percentage of one core, and the resident set size at the end; again after step 4 (by then
   the watcher has loaded Prefect's client);
4. ``--files`` real clips (plates-video, distinct contents) copied one after another in 4 chunks
   0.2 s apart; "file complete" = the moment the copy closed the file; "scheduled" = the flow
   run's ``created`` timestamp on the server (same machine, same clock). The delay includes the
   quiet period ``--quiet-s`` by design; the table also shows the overhead beyond it.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "infra"))
sys.path.insert(0, str(ROOT / "tests"))

from cluster import PrefectServer  # noqa: E402
from helpers import copy_in_chunks, shared_dir  # noqa: E402

CLIPS = sorted((shared_dir() / "data/plates-video/TrainingSet/Categorie I").glob("*"))
BIN = Path(sys.executable).parent


def _deployment(flow: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectAlreadyExists):
            client.create_work_pool(WorkPoolCreate(name="server", type="process"))
        flow_id = client.create_flow_from_name(flow)
        return client.create_deployment(
            flow_id=flow_id, name="ingest", entrypoint="flows/ingest.py:ingest", work_pool_name="server"
        )


def _runs(dep_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[dep_id]))
        )


def bench_mode(server: PrefectServer, work: Path, mode: str, args) -> dict:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    nas = work / f"nas-{mode}"
    for i in range(args.tree_files):
        d = nas / f"old{i % 50:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"photo{i}.jpg").write_bytes(b"x")
    nas.mkdir(parents=True, exist_ok=True)
    flow = f"ingest-bench-{mode}-{uuid.uuid4().hex[:6]}"
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        dep_id = _deployment(flow)
    cmd = [
        str(BIN / "dashcam"),
        "watch",
        str(nas),
        "--quiet-s",
        str(args.quiet_s),
        "--deployment",
        f"{flow}/ingest",
        "--database-url",
        f"sqlite:///{work / f'dashcam-{mode}.db'}",
    ]
    if mode == "polling":
        cmd += ["--polling", "--poll-interval-s", str(args.poll_interval_s)]
    log = work / f"watch-{mode}.log"
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, env=server.env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "catch-up:" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"watcher did not start:\n{log.read_text()}")
            time.sleep(0.1)
        time.sleep(2)  # let start-up work settle
        p = psutil.Process(proc.pid)
        idle_cpu, rss_mib = _idle(p, args.idle_s)

        delays = []
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            for i, src in enumerate(CLIPS[: args.files]):
                dst = nas / f"2024_0315_1430{i:02d}_{i:04d}F{src.suffix.upper()}"
                complete = copy_in_chunks(src, dst)
                deadline = time.monotonic() + args.quiet_s + 60
                while True:
                    runs = [r for r in _runs(dep_id) if r.parameters["videos"] == [str(dst)]]
                    if runs:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no run for {dst}:\n{log.read_text()[-3000:]}")
                    time.sleep(0.05)
                delays.append((runs[0].created - complete).total_seconds())
            n_runs = len(_runs(dep_id))
        time.sleep(2)
        idle_cpu_after, rss_after = _idle(p, args.idle_s)  # now with Prefect's client loaded
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "mode": mode,
        "delays": delays,
        "runs": n_runs,
        "idle_cpu": idle_cpu,
        "rss": rss_mib,
        "idle_cpu_after": idle_cpu_after,
        "rss_after": rss_after,
        "log": log,
    }


def _idle(p: psutil.Process, seconds: float) -> tuple[float, float]:
    """CPU % of one core (user+system) over ``seconds`` and RSS (MiB) at the end."""
    c0, t0 = p.cpu_times(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = p.cpu_times(), time.monotonic()
    return 100 * ((c1.user + c1.system) - (c0.user + c0.system)) / (t1 - t0), p.memory_info().rss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quiet-s", type=float, default=5.0)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--idle-s", type=float, default=30.0)
    ap.add_argument("--tree-files", type=int, default=2000, help="non-video files in the watched tree")
    ap.add_argument("--poll-interval-s", type=float, default=10.0)
    ap.add_argument("--modes", default="inotify,polling")
    args = ap.parse_args()
    if len(CLIPS) < args.files:
        sys.exit(f"need {args.files} clips, found {len(CLIPS)}")

    work = Path(tempfile.mkdtemp(prefix="dashcam-watch-bench-"))
    server = PrefectServer(work / "prefect").start()
    try:
        results = [bench_mode(server, work, m, args) for m in args.modes.split(",")]
    finally:
        server.stop()

    table = Table(
        title=f"dashcam watch: file complete -> flow run scheduled ({args.files} files, quiet period "
        f"{args.quiet_s:g} s; idle over {args.idle_s:g} s, {args.tree_files} other files in the tree)"
    )
    for col in (
        "mode",
        "runs",
        "median delay",
        "min",
        "max",
        "overhead beyond quiet (median)",
        "idle CPU at start",
        "RSS at start",
        "idle CPU after the files",
        "RSS after the files",
    ):
        table.add_column(col)
    for r in results:
        d = r["delays"]
        table.add_row(
            r["mode"] + (f" ({args.poll_interval_s:g} s)" if r["mode"] == "polling" else ""),
            str(r["runs"]),
            f"{statistics.median(d):.2f} s",
            f"{min(d):.2f} s",
            f"{max(d):.2f} s",
            f"{statistics.median(d) - args.quiet_s:.2f} s",
            f"{r['idle_cpu']:.2f} %",
            f"{r['rss']:.0f} MiB",
            f"{r['idle_cpu_after']:.2f} %",
            f"{r['rss_after']:.0f} MiB",
        )
    Console(width=200).print(table)
    print(
        "idle CPU: % of one core; RSS: resident memory of the watcher process (it loads Prefect's client on its "
        "first trigger)"
    )
    print("command:", " ".join([".venv/bin/python", *sys.argv]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
