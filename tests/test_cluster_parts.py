"""The parts of the one-machine cluster that do not need the whole cluster (seconds, not minutes):

* a flow run's console logging survives the death of the worker reading its stderr pipe
  (dashcam/runlog.py; a real closed pipe, Prefect's real logging setup);
* the kept PostgreSQL of infra/postgres.py keeps its databases across a restart;
* a real ``prefect server`` serves its UI at / and at a flow-run link (what Prefect prints);
* :func:`dashcam.settings.resolve_database` finds the deployed results DB from the blocks on a
  real Prefect server, and says which DB it chose, or why it cannot.

The whole cluster (workers, SIGKILLs, recovery) is tests/test_pools.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest
from helpers import REPO_ROOT
from prefect_server import PrefectServer, fetch, free_port

from dashcam.settings import Settings, resolve_database

CHILD = textwrap.dedent("""
    import logging, sys
    from prefect.logging.configuration import setup_logging
    setup_logging(incremental=False)
    log = logging.getLogger("prefect.dashcam_test")
    log.warning("first line, the reader is still there")
    sys.stdin.readline()  # the parent has closed the read ends of our stdout/stderr pipes
    for i in range(50):
        log.warning("line %d after the reader went away " + "x" * 200, i)
    print("a plain print after the pipe broke")
    open(sys.argv[1], "w").write("alive")
""")


@pytest.mark.parametrize("handler", ["prefect", "dashcam"])
def test_console_logging_survives_a_dead_reader(tmp_path, handler):
    """As a flow run whose worker was SIGKILLed: its stdout/stderr pipes lose their reader.
    Prefect's own console handler turns the BrokenPipeError into SystemExit(1) (rich's
    Console.on_broken_pipe), which ends a run "aborted by Python system exit call"; ours goes on."""
    script, alive = tmp_path / "child.py", tmp_path / "alive"
    script.write_text(CHILD)
    env = dict(os.environ, PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="INFO", PYTHONPATH=str(REPO_ROOT))
    if handler == "dashcam":  # as deployments/prefect.yaml sets it for every deployed run
        env["PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS"] = "dashcam.runlog.PipeSafeConsoleHandler"
    p = subprocess.Popen(
        [sys.executable, str(script), str(alive)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert b"first line" in p.stderr.readline()
    p.stdout.close()
    p.stderr.close()
    p.stdin.write(b"go\n")
    p.stdin.close()
    rc = p.wait(timeout=60)
    if handler == "prefect":  # the upstream behaviour this module exists for
        assert rc == 1 and not alive.exists()
    else:
        assert rc == 0 and alive.read_text() == "alive"


def test_deployment_runs_use_the_pipe_safe_handler():
    import yaml

    spec = yaml.safe_load((REPO_ROOT / "deployments" / "prefect.yaml").read_text())
    for d in spec["deployments"]:
        env = d["work_pool"]["job_variables"]["env"]
        assert env["PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS"] == "dashcam.runlog.PipeSafeConsoleHandler", d["name"]


def test_kept_postgres_survives_a_restart():
    from postgres import local_postgres

    base = Path(tempfile.mkdtemp(prefix="dashcam-test-kept-pg-"))
    base.chmod(0o755)  # reachable by the user PostgreSQL runs as when we are root
    try:
        with local_postgres(base / "pg", durable=True) as pg:
            pg.create_database("dashcam")
            with pg.connect_admin() as conn:
                conn.execute("SELECT 1")
        with local_postgres(base / "pg", durable=True) as pg:
            assert pg.create_database("dashcam", exist_ok=True) == "dashcam"  # kept, not recreated
            with pg.connect_admin() as conn:
                names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            assert "dashcam" in names
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the unreachable-folder check applies when PostgreSQL runs as another user"
)
def test_postgres_folder_the_server_user_cannot_reach_is_refused(tmp_path):
    from postgres import local_postgres

    with pytest.raises(RuntimeError, match="cannot enter"), local_postgres(tmp_path / "pg"):
        pass


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    server = PrefectServer(tmp_path_factory.mktemp("prefect")).start()
    try:
        yield server
    finally:
        server.stop()


def test_prefect_ui_is_served(prefect):
    assert "<html" in fetch(prefect.ui_url + "/").lower()
    # the link Prefect prints for a run ("View at …/runs/flow-run/<id>") opens the UI
    assert "<html" in fetch(f"{prefect.ui_url}/runs/flow-run/{uuid.uuid4()}").lower()


def _resolve(env: dict[str, str], **settings) -> tuple[str, str]:
    """resolve_database in a fresh process with ``env`` (Prefect reads PREFECT_API_URL at import)."""
    code = (
        "import sys, json; from dashcam.settings import Settings, resolve_database, DatabaseConfigError\n"
        f"kw = json.loads({repr(__import__('json').dumps(settings))})\n"
        "try:\n    print(json.dumps(resolve_database(Settings(**kw))))\n"
        "except DatabaseConfigError as e:\n    print(json.dumps(['error', str(e)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return tuple(__import__("json").loads(out.stdout.strip().splitlines()[-1]))


def test_resolve_database_given_and_default(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("DASHCAM_DATABASE_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "no-prefect"))  # no profile with an API URL
    url, source = resolve_database(Settings(database_url="postgresql+psycopg://u:pw@h/db", data_dir=tmp_path))
    assert url == "postgresql+psycopg://u:pw@h/db" and "given" in source
    url, source = resolve_database(Settings(data_dir=tmp_path))
    assert url == f"sqlite:///{tmp_path / 'dashcam.db'}"
    assert "default SQLite" in source and "PREFECT_API_URL" in source


def test_resolve_database_unreachable_prefect_api_is_an_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHCAM_", "PREFECT_"))}
    env.update(PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api", PREFECT_HOME=str(tmp_path))
    kind, msg = _resolve(env, data_dir=str(tmp_path))
    assert kind == "error" and "does not answer" in msg and "--database-url" in msg


def test_resolve_database_finds_the_deployed_db_in_the_blocks(prefect, tmp_path):
    env = {k: v for k, v in prefect.env().items() if not k.startswith("DASHCAM_")}
    url, source = _resolve(env, data_dir=str(tmp_path))  # nothing deployed yet: the default, and why
    assert url.startswith("sqlite:///") and "no block dashcam-results-database/dashcam" in source

    deployed = "postgresql+psycopg://dashcam:secret@db.example:5432/dashcam"
    save = (
        "from blocks.config import save_blocks_from_settings; from dashcam.settings import Settings\n"
        f"save_blocks_from_settings(Settings(database_url={deployed!r}, data_dir={str(tmp_path)!r}), raw_dir='/nas/raw')\n"
    )
    subprocess.run([sys.executable, "-c", save], env={**env, "PYTHONPATH": str(REPO_ROOT)}, check=True, timeout=120)
    url, source = _resolve(env, data_dir=str(tmp_path))
    assert url == deployed
    assert source == f"Prefect block dashcam-results-database/dashcam on {prefect.api_url}"
    url, source = _resolve(env, data_dir=str(tmp_path), database_url="sqlite:////tmp/x.db")  # given wins
    assert url == "sqlite:////tmp/x.db"


def test_automations_are_replaced_on_redeploy(prefect):
    """``dashcam deploy`` twice on one server (a cluster restart): one automation of each name,
    the per-pool zombie automations with messages naming the dead worker, the retired one gone."""
    code = (
        "from deployments.register import ensure_automations\n"
        "from prefect.automations import Automation\n"
        "from prefect.events.schemas.automations import EventTrigger\n"
        "Automation(name='dashcam: crash zombie flow runs', trigger=EventTrigger(expect={'x'}), actions=[]).create()\n"
        "ensure_automations(50)\nensure_automations(50)\n"
        "from prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as c:\n"
        "    for a in c.read_automations():\n"
        "        print(a.name, '|', a.actions[0].message)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**prefect.env(), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = sorted(out.stdout.strip().splitlines())
    names = [line.split(" | ")[0] for line in lines]
    assert names == [
        "dashcam: crash zombie flow runs (pool gpu)",
        "dashcam: crash zombie flow runs (pool server)",
        "dashcam: reschedule crashed ingest",
    ], lines
    assert (
        lines[0].split(" | ")[1].startswith("worker died: the gpu worker that ran this flow run (dashcam-worker@gpu)")
    )
    assert "no heartbeat for 50 s" in lines[1]
