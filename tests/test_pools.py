"""``ingest`` through its deployments on a real local cluster: Prefect server (PostgreSQL-backed)
plus one process worker per pool, on 127.0.0.1. Then the faults: the gpu worker SIGKILLed with
its flow run mid-heavy-stage, and the heavy flow process alone SIGKILLed; both recover by
themselves to exactly the rows and files of a clean run, finished stages Cached.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from dashcam.db import make_engine, query_events
from helpers import model_dir, shared_dir
from prefect_server import LocalCluster

pytestmark = pytest.mark.slow

CLIP = "data/plates-video/TrainingSet/Categorie I/Video20_2.avi"  # labelled ZD-PB-67
HEARTBEAT_S, ZOMBIE_AFTER_S = 30, 50  # Prefect accepts heartbeats every >= 30 s


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pg_server):
    home = tmp_path_factory.mktemp("cluster")
    prefect_db = pg_server.url(pg_server.create_database()).replace("+psycopg", "+asyncpg")
    env = _nas_env(home / "nas", pg_server.url(pg_server.create_database()))
    c = LocalCluster(home, env, prefect_db_url=prefect_db, heartbeat_s=HEARTBEAT_S, zombie_after_s=ZOMBIE_AFTER_S)
    try:
        c.start(raw_dir=str(home / "nas" / "raw"))
        with temporary_settings({PREFECT_API_URL: c.server.api_url}):
            yield c
    finally:
        c.stop()


def _nas_env(nas: Path, db_url: str) -> dict[str, str]:
    return {
        "DASHCAM_WORK_DIR": str(nas / "heavy_output"), "DASHCAM_ARCHIVE_DIR": str(nas / "archive"),
        "DASHCAM_DATA_DIR": str(nas.parent / "data"), "DASHCAM_DATABASE_URL": db_url,
        "DASHCAM_MODEL_DIR": str(model_dir()), "DASHCAM_CAMERA_TZ": "UTC",
    }


def _point_blocks_at(nas: Path, db_url: str) -> None:
    """Deployed runs read their paths and DB from the blocks: a fresh NAS + DB for this scenario."""
    from blocks.config import save_blocks_from_settings
    from dashcam.settings import Settings

    env = _nas_env(nas, db_url)
    settings = Settings(work_dir=env["DASHCAM_WORK_DIR"], archive_dir=env["DASHCAM_ARCHIVE_DIR"],
                        database_url=db_url, model_dir=env["DASHCAM_MODEL_DIR"], camera_tz="UTC")
    save_blocks_from_settings(settings, raw_dir=str(nas / "raw"))


def _snapshot(db_url: str, archive: Path) -> tuple[list[dict], list[str]]:
    """Rows (minus timestamps of writing; paths relative to the archive) and archive files."""
    engine = make_engine(db_url)
    try:
        rows = query_events(engine)
    finally:
        engine.dispose()
    for r in rows:
        r.pop("created_at")
        for k in ("crop_path", "thumb_path"):
            r[k] = str(Path(r[k]).relative_to(archive)) if r[k] else None
    files = sorted(str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file())
    return rows, files


def _runs_of(deployment: str) -> list:
    """Flow runs of a deployment (``flow-name/deployment-name``), oldest first."""
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id={"any_": [dep.id]}))
    return sorted(runs, key=lambda r: r.created)


def _analyze_running() -> bool:
    with get_client(sync_client=True) as client:
        for fr in _runs_of("analyze-video/gpu"):
            if fr.state and fr.state.is_running():
                trs = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [fr.id]}))
                if any(t.name.startswith("analyze") and t.state and t.state.is_running() for t in trs):
                    return True
    return False


def _task_states(flow_run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        trs = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}))
        return {t.name.rsplit("-", 1)[0]: t.state.name for t in trs if t.state}


CLEAN: dict = {}


def test_deployed_ingest_runs_stages_on_their_pools(cluster, pg_server, tmp_path):
    db_url = pg_server.url(pg_server.create_database())
    nas = tmp_path / "nas"
    _point_blocks_at(nas, db_url)
    t0 = time.monotonic()
    run = run_deployment("ingest/ingest", parameters={"videos": [str(shared_dir() / CLIP)]}, timeout=600, poll_interval=2)
    latency = time.monotonic() - t0
    assert run.state.is_completed(), run.state
    rows, files = _snapshot(db_url, nas / "archive")
    assert [r["final_plate"] for r in rows] == ["ZDPB67"]
    assert any(f.endswith("video_720p.mp4") for f in files) and any(f.split("/")[1] == "plates" for f in files)
    for deployment, pool in (("analyze-video/gpu", "gpu"), ("archive-video/server", "server"),
                             ("finalize-video/server", "server")):
        [child] = _runs_of(deployment)
        assert child.work_pool_name == pool and child.name == "Video20_2.avi" and child.state.is_completed()
        assert child.parent_task_run_id is not None  # linked as a subflow of the parent in the UI
    CLEAN.update(rows=rows, files=files, latency=latency)
    print(f"end-to-end latency of one deployed run: {latency:.1f} s")


def _fault_run(cluster, pg_server, tmp_path, kill) -> tuple[list[dict], list[str], float, object]:
    db_url = pg_server.url(pg_server.create_database())
    nas = tmp_path / "nas"
    _point_blocks_at(nas, db_url)  # fresh NAS: nothing cached from the clean run
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("ingest/ingest")
        parent = client.create_flow_run_from_deployment(dep.id, parameters={"videos": [str(shared_dir() / CLIP)]})
    deadline = time.monotonic() + 300
    while not _analyze_running():
        assert time.monotonic() < deadline, "the heavy stage never started"
        time.sleep(0.3)
    kill()
    t_kill = time.monotonic()
    deadline = t_kill + 600
    while True:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(parent.id).state
        if state.is_final():
            break
        assert time.monotonic() < deadline, f"no recovery within 600 s (parent {state.name})"
        time.sleep(2)
    recovered = time.monotonic() - t_kill
    assert state.is_completed(), state
    rows, files = _snapshot(db_url, nas / "archive")
    return rows, files, recovered, parent


def _assert_like_clean(rows, files):
    assert CLEAN, "the clean deployed run must pass first"
    assert rows == CLEAN["rows"]
    assert files == CLEAN["files"]


def test_gpu_worker_killed_mid_heavy_stage_recovers(cluster, pg_server, tmp_path):
    def kill():
        cluster.kill_worker("gpu")  # the worker and the flow run it started, as a power cut
        cluster.start_worker("gpu")  # systemd restarts it

    rows, files, recovered, parent = _fault_run(cluster, pg_server, tmp_path, kill)
    _assert_like_clean(rows, files)
    analyze_runs = _runs_of("analyze-video/gpu")
    states = [r.state.name for r in analyze_runs[-2:]]
    assert states == ["Crashed", "Completed"], states  # the zombie was marked Crashed, the retry completed
    assert _task_states(analyze_runs[-1].id)["probe"] == "Cached"  # finished before the kill: not redone
    print(f"gpu worker SIGKILL -> recovered (parent Completed) in {recovered:.0f} s")


def test_heavy_flow_process_killed_recovers(cluster, pg_server, tmp_path):
    def kill():
        worker = psutil.Process(cluster.workers["gpu"].pid)
        flows = [p for p in worker.children(recursive=True) if "prefect.engine" in " ".join(p.cmdline())
                 or "flow_run" in " ".join(p.cmdline())]
        assert flows, [p.cmdline() for p in worker.children(recursive=True)]
        for p in flows:
            os.kill(p.pid, signal.SIGKILL)

    rows, files, recovered, parent = _fault_run(cluster, pg_server, tmp_path, kill)
    _assert_like_clean(rows, files)
    print(f"heavy flow process SIGKILL -> recovered in {recovered:.0f} s")
