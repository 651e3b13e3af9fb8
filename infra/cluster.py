"""A real local dashcam cluster on 127.0.0.1: Prefect server + one process worker per pool.

For developers (``python infra/cluster.py up --home /tmp/dashcam-cluster``) and for the tests
(tests/test_pools.py imports :class:`LocalCluster`). Every role of docs/deploy.md on one machine:

* a Prefect server, backed by PostgreSQL when ``prefect_db_url`` is given (steadier than SQLite
  under load: SQLite gave "database is locked"/503s), else SQLite in ``home``;
* ``dashcam deploy`` (work pools, blocks, deployments, automations);
* a process worker for pool ``gpu`` and one for pool ``server``, each in its own session so a
  test can SIGKILL a worker with everything it started, as a power cut would.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


class PrefectServer:
    """``prefect server start`` on 127.0.0.1 with its own PREFECT_HOME; waits for /api/health."""

    def __init__(self, home: Path, port: int | None = None, db_url: str | None = None):
        self.home = Path(home)
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.db_url = db_url  # postgresql+asyncpg://… or None for SQLite in home
        self.proc: subprocess.Popen | None = None
        self.log = self.home / "server.log"

    def env(self) -> dict[str, str]:
        """Environment for clients of this server (CLI subprocesses, workers)."""
        env = dict(os.environ)
        env.update({
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        })
        return env

    def start(self, timeout_s: float = 180) -> "PrefectServer":
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.env()
        env.pop("PREFECT_API_URL")
        if self.db_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.db_url
        self.proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.api_url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"prefect server did not answer within {timeout_s} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        _stop(self.proc)


class LocalCluster:
    """Server + deployments + workers for pools ``gpu`` and ``server`` on this machine."""

    def __init__(self, home: Path, dashcam_env: dict[str, str], prefect_db_url: str | None = None,
                 heartbeat_s: int = 30, zombie_after_s: int = 90, worker_poll_s: float = 2):
        self.home = Path(home)
        self.server = PrefectServer(self.home / "prefect", db_url=prefect_db_url)
        self.dashcam_env = dashcam_env  # DASHCAM_* for the deploy step and the workers
        self.heartbeat_s = heartbeat_s
        self.zombie_after_s = zombie_after_s
        self.worker_poll_s = worker_poll_s
        self.workers: dict[str, subprocess.Popen] = {}
        self.result_storage: str | None = None

    def env(self) -> dict[str, str]:
        env = self.server.env()
        env.update(self.dashcam_env)
        env.update({
            "PREFECT_WORKER_QUERY_SECONDS": str(self.worker_poll_s),
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(self.heartbeat_s),
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",
            "YOLO_VERBOSE": "False",
        })
        if self.result_storage:
            env["PREFECT_DEFAULT_RESULT_STORAGE_BLOCK"] = self.result_storage
        return env

    def start(self, raw_dir: str) -> "LocalCluster":
        self.server.start()
        out = subprocess.run([str(BIN / "dashcam"), "deploy", "--raw-dir", raw_dir,
                              "--zombie-after-s", str(self.zombie_after_s)],
                             env=self.env(), cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"dashcam deploy failed:\n{out.stdout}\n{out.stderr}")
        self.result_storage = out.stdout.strip().splitlines()[-1].split()[-1]
        for pool in ("gpu", "server"):
            self.start_worker(pool)
        return self

    def start_worker(self, pool: str) -> subprocess.Popen:
        log = open(self.home / f"worker-{pool}.log", "ab")
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process", "--name", f"{pool}-worker"],
            env=self.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.workers[pool] = proc
        return proc

    def kill_worker(self, pool: str) -> None:
        """SIGKILL the worker and every process it started (its flow runs), like a power cut."""
        _stop(self.workers.pop(pool), sig=signal.SIGKILL)

    def stop(self) -> None:
        for pool in list(self.workers):
            _stop(self.workers.pop(pool))
        self.server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up"])
    ap.add_argument("--home", type=Path, default=Path("/tmp/dashcam-cluster"))
    ap.add_argument("--raw-dir", default=None, help="the NAS raw folder (default HOME/nas/raw)")
    ap.add_argument("--prefect-db-url", default=None, help="postgresql+asyncpg://… for the Prefect server")
    args = ap.parse_args()
    nas = args.home / "nas"
    env = {
        "DASHCAM_WORK_DIR": os.environ.get("DASHCAM_WORK_DIR", str(nas / "heavy_output")),
        "DASHCAM_ARCHIVE_DIR": os.environ.get("DASHCAM_ARCHIVE_DIR", str(nas / "archive")),
        "DASHCAM_DATA_DIR": os.environ.get("DASHCAM_DATA_DIR", str(args.home / "data")),
    }
    cluster = LocalCluster(args.home, env, prefect_db_url=args.prefect_db_url).start(args.raw_dir or str(nas / "raw"))
    print(f"PREFECT_API_URL={cluster.server.api_url}\nlogs in {args.home}; Ctrl-C stops everything", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
