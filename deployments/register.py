"""Register everything a deployed dashcam-pipeline needs on a Prefect server (idempotent).

``dashcam deploy`` calls :func:`register`:

1. work pools ``gpu`` (process; concurrency limit 1 by default: one video at a time on the GPU)
   and ``server`` (process; **no** limit: the parent ``ingest`` runs there and waits for its
   children there, so a limit could deadlock it);
2. the block types and documents (blocks/config.py) from the current environment;
3. a LocalFileSystem block ``dashcam-results`` on the NAS for persisted task results, which
   make finished stages show as Cached when a run is resumed;
4. the deployments in deployments/prefect.yaml (``prefect deploy --all``);
5. three automations that give crash recovery on a self-hosted server:
   * *dashcam: crash zombie flow runs (pool gpu|server)* - a flow run of that pool's flows that
     stops sending heartbeats (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` on the workers) for
     ``ZOMBIE_AFTER_S`` is marked Crashed with a message saying that pool's worker (or its
     machine) died (the recipe of Prefect's "detect zombie flows" guide; one automation per pool
     because an automation's message is fixed text);
   * *dashcam: reschedule crashed ingest* - a Crashed run of deployment ``ingest/ingest`` is put
     back to Scheduled (AwaitingRetry) so the ``server`` worker starts it again; the flow itself
     refuses to start more than ``flows.ingest.MAX_PARENT_RUNS`` times (automations have no cap),
     and re-attaches to the children it had started through idempotency keys.
   Crashed *children* need no automation: the waiting parent starts them again (flows/ingest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[1]
# a run is a zombie after this long without heartbeats: 3 heartbeats (PREFECT_FLOWS_HEARTBEAT_FREQUENCY
# = 30 s), so one late or lost heartbeat is not a crash; `dashcam deploy --zombie-after-s`
ZOMBIE_AFTER_S = 90
RESULTS_BLOCK = "dashcam-results"
# the flows each pool's worker runs (deployments/prefect.yaml; ingest-video runs inside ingest)
POOL_FLOWS = {"gpu": ["analyze-video"], "server": ["ingest", "ingest-video", "archive-video", "finalize-video"]}
RETIRED_AUTOMATIONS = ["dashcam: crash zombie flow runs"]  # names used by older versions


def zombie_message(pool: str, zombie_after_s: int) -> str:
    """State message of a run the heartbeat automation marks Crashed: says which worker died."""
    return (
        f"worker died: the {pool} worker that ran this flow run (dashcam-worker@{pool}), or its machine, "
        f"stopped - no heartbeat for {zombie_after_s} s. A crashed stage is started again by its ingest "
        f"run on a live {pool} worker; a crashed ingest run is rescheduled."
    )


def ensure_work_pools(gpu_concurrency: int | None = 1) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        for name, limit in (("gpu", gpu_concurrency), ("server", None)):
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type="process", concurrency_limit=limit))
            except ObjectAlreadyExists:
                client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=limit))


def ensure_result_storage(heavy_output: Path) -> str:
    """A LocalFileSystem block on the NAS for persisted results; returns its slug for
    ``PREFECT_DEFAULT_RESULT_STORAGE_BLOCK`` on every worker."""
    from prefect.filesystems import LocalFileSystem

    LocalFileSystem(basepath=str(heavy_output / ".prefect-results")).save(RESULTS_BLOCK, overwrite=True)
    return f"local-file-system/{RESULTS_BLOCK}"


def ensure_automations(zombie_after_s: int = ZOMBIE_AFTER_S) -> None:
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    wanted = [
        Automation(
            name=f"dashcam: crash zombie flow runs (pool {pool})",
            description=f"Mark flow runs of pool {pool} Crashed when their heartbeats stop (worker or machine died).",
            trigger=EventTrigger(
                after={"prefect.flow-run.heartbeat"},
                expect={
                    "prefect.flow-run.heartbeat",
                    "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed",
                },
                match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
                match_related=ResourceSpecification({"prefect.resource.role": "flow", "prefect.resource.name": flows}),
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(seconds=zombie_after_s),
            ),
            actions=[ChangeFlowRunState(state=StateType.CRASHED, message=zombie_message(pool, zombie_after_s))],
        )
        for pool, flows in POOL_FLOWS.items()
    ] + [
        Automation(
            name="dashcam: reschedule crashed ingest",
            description="Start a crashed ingest parent again; it re-attaches to its finished children.",
            trigger=EventTrigger(
                expect={"prefect.flow-run.Crashed"},
                match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
                match_related=ResourceSpecification(
                    {"prefect.resource.role": "flow", "prefect.resource.name": "ingest"}
                ),
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.SCHEDULED,
                    name="AwaitingRetry",
                    message="rescheduled after a crash by dashcam automation",
                )
            ],
        ),
    ]
    for name in [a.name for a in wanted] + RETIRED_AUTOMATIONS:
        _delete_automations(name)
    for automation in wanted:
        automation.create()


def _delete_automations(name: str) -> None:
    """Delete every automation called ``name`` (``Automation.read`` returns one at a time)."""
    from prefect.automations import Automation

    for _ in range(100):
        try:
            # prefect's overloads declare read() async; called from sync code it returns the Automation
            cast(Automation, Automation.read(name=name)).delete()
        except ValueError:  # none (left) of that name
            return


def deploy_flows(code_dir: Path = ROOT) -> None:
    env = dict(os.environ, DASHCAM_CODE_DIR=str(code_dir))
    prefect = Path(sys.executable).with_name("prefect")
    out = subprocess.run(
        [str(prefect), "--no-prompt", "deploy", "--all", "--prefect-file", str(ROOT / "deployments" / "prefect.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"prefect deploy failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")


def register(raw_dir: str, gpu_concurrency: int | None = 1, zombie_after_s: int = ZOMBIE_AFTER_S) -> str:
    """Do all of the above against ``PREFECT_API_URL``; returns the result-storage block slug."""
    from blocks.config import save_blocks_from_settings
    from dashcam.settings import Settings

    settings = Settings()
    ensure_work_pools(gpu_concurrency)
    save_blocks_from_settings(settings, raw_dir)
    assert settings.work_dir is not None  # Settings fills it in (<data_dir>/work)
    slug = ensure_result_storage(Path(settings.work_dir))
    deploy_flows()
    ensure_automations(zombie_after_s)
    return slug
