"""A real one-machine dashcam cluster on 127.0.0.1: every role of docs/deploy.md on this machine.

``python infra/cluster.py up --home /tmp/dashcam-cluster`` starts, and prints the URLs of:

* a PostgreSQL server from the local binaries (infra/postgres.py, the same starter the tests
  use) in ``HOME/postgres``, kept between starts, holding two databases: ``prefect`` (the
  Prefect server's) and ``dashcam`` (the results DB, unless ``DASHCAM_DATABASE_URL`` is given);
* a Prefect server on that PostgreSQL (not SQLite: SQLite gave "database is locked" errors,
  also in the automations' consumer loop) with its UI on, at ``http://127.0.0.1:PORT``;
* ``dashcam deploy`` (work pools, blocks, deployments, automations);
* a process worker for pool ``gpu`` and one for pool ``server``, each in its own session (and
  Prefect starts each flow run in a session of its own), each **supervised**: restarted ``restart_s`` (5 s) after it exits, as systemd's ``Restart=always``
  / ``RestartSec=5`` does for infra/systemd/dashcam-worker@.service in production. A worker's
  death alone does not end the flow runs it started (they finish and report themselves); a
  worker killed together with its runs (a power cut) is found by the heartbeat automation.

The tests (tests/test_pools.py) import :class:`LocalCluster`, and tests/test_watch.py and
tests/test_ingest.py :class:`PrefectServer`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from postgres import PgServer, local_postgres  # noqa: E402

from deployments.register import ZOMBIE_AFTER_S  # noqa: E402

WORKER_RESTART_S = 5.0  # as RestartSec=5 in infra/systemd/dashcam-worker@.service
POOLS = ("gpu", "server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def fetch(url: str, timeout_s: float = 5) -> str:
    """GET ``url`` as a browser navigating to it would (Accept: text/html); the body as text.
    Raises OSError (urllib.error.URLError/HTTPError) when it does not answer 200."""
    req = urllib.request.Request(url, headers={"Accept": "text/html,application/json;q=0.9,*/*;q=0.8"})
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        return r.read().decode(errors="replace")


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, from /proc (Linux); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """Every live descendant of ``pid`` (children, theirs, …) as {pid: start time}; Linux /proc."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _proc_stat(int(entry.name))):
            children.setdefault(st[0], []).append(int(entry.name))
            starts[int(entry.name)] = st[1]
    found, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        if p not in found:
            found[p] = starts[p]
            todo += children.get(p, [])
    return found


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class PrefectServer:
    """``prefect server start`` on 127.0.0.1 with its own PREFECT_HOME; waits for /api/health
    and, with ``ui`` (the default), for the UI's HTML at ``ui_url``."""

    def __init__(self, home: Path, port: int | None = None, db_url: str | None = None, ui: bool = True):
        self.home = Path(home)
        self.port = port or free_port()
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.ui_url}/api"
        self.db_url = db_url  # postgresql+asyncpg://… or None for SQLite in home
        self.ui = ui
        self.proc: subprocess.Popen | None = None
        self.log = self.home / "server.log"

    def env(self) -> dict[str, str]:
        """Environment for clients of this server (CLI subprocesses, workers)."""
        env = dict(os.environ)
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_URL": self.api_url,
                "PREFECT_UI_URL": self.ui_url,  # the run links Prefect prints point at the UI
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "true" if self.ui else "false",
                "DO_NOT_TRACK": "1",
            }
        )
        return env

    def start(self, timeout_s: float = 180) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.env()
        env.pop("PREFECT_API_URL")
        if self.db_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.db_url
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        for url in [self.api_url + "/health"] + ([self.ui_url + "/"] if self.ui else []):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"prefect server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"prefect server did not answer {url} within {timeout_s} s:\n{self.log.read_text()[-3000:]}"
                    )
                try:
                    body = fetch(url)
                except OSError:
                    time.sleep(0.5)
                    continue
                if url.endswith("/") and "<html" not in body.lower():
                    self.stop()
                    raise RuntimeError(f"{url} answered without the Prefect UI's HTML: {body[:200]!r}")
                break
        return self

    def stop(self) -> None:
        _stop(self.proc)


@dataclass
class WorkerRestart:
    """One supervisor restart: pool, the dead worker's pid and exit status, monotonic times."""

    pool: str
    old_pid: int
    returncode: int
    exited_at: float  # when the supervisor saw it gone (within 0.5 s of its death)
    restarted_at: float
    new_pid: int


class LocalCluster:
    """PostgreSQL + Prefect server + deployments + supervised workers for pools ``gpu`` and ``server``.

    Args:
        home: folder for logs, PREFECT_HOME and (by default) the PostgreSQL data.
        dashcam_env: ``DASHCAM_*`` for the deploy step and the workers. Without
            ``DASHCAM_DATABASE_URL``, the results DB is database ``dashcam`` on the cluster's
            PostgreSQL (:attr:`results_db_url`).
        prefect_db_url: ``postgresql+asyncpg://…`` of an existing database for the Prefect
            server; default: database ``prefect`` on the cluster's PostgreSQL.
        postgres_dir: where the cluster's PostgreSQL keeps its data (default ``home/postgres``);
            when root, it must be reachable by the unprivileged user PostgreSQL runs as.
        heartbeat_s, zombie_after_s: ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` of the workers and the
            window after which the automation marks a silent run Crashed.
        restart_s: seconds between a worker's exit and its restart (systemd's RestartSec).
    """

    def __init__(
        self,
        home: Path,
        dashcam_env: dict[str, str],
        prefect_db_url: str | None = None,
        postgres_dir: Path | None = None,
        heartbeat_s: int = 30,
        zombie_after_s: int = ZOMBIE_AFTER_S,
        worker_poll_s: float = 2,
        restart_s: float = WORKER_RESTART_S,
        port: int | None = None,
    ):
        self.home = Path(home)
        self.dashcam_env = dict(dashcam_env)
        self.prefect_db_url = prefect_db_url
        self.postgres_dir = Path(postgres_dir) if postgres_dir else self.home / "postgres"
        self.port = port
        self.server: PrefectServer | None = None
        self.postgres: PgServer | None = None
        self.heartbeat_s = heartbeat_s
        self.zombie_after_s = zombie_after_s
        self.worker_poll_s = worker_poll_s
        self.restart_s = restart_s
        self.workers: dict[str, subprocess.Popen] = {}
        self.restarts: list[WorkerRestart] = []
        self.result_storage: str | None = None
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._runs_seen: dict[int, int] = {}  # {pid: start time} of processes the workers started

    @property
    def results_db_url(self) -> str:
        return self.dashcam_env["DASHCAM_DATABASE_URL"]

    def env(self) -> dict[str, str]:
        env = self.server.env()
        env.update(self.dashcam_env)
        env.update(
            {
                "PREFECT_WORKER_QUERY_SECONDS": str(self.worker_poll_s),
                "PREFECT_WORKER_PREFETCH_SECONDS": "5",
                "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(self.heartbeat_s),
                "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
                "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",
                "YOLO_VERBOSE": "False",
            }
        )
        if self.result_storage:
            env["PREFECT_DEFAULT_RESULT_STORAGE_BLOCK"] = self.result_storage
        return env

    def start(self, raw_dir: str) -> LocalCluster:
        """Start everything (PostgreSQL, server, deploy, supervised workers); create the NAS folders."""
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            if self.prefect_db_url is None or "DASHCAM_DATABASE_URL" not in self.dashcam_env:
                self.postgres = self._stack.enter_context(local_postgres(self.postgres_dir, durable=True))
            if self.prefect_db_url is None:
                self.prefect_db_url = self.postgres.url(
                    self.postgres.create_database("prefect", exist_ok=True), "asyncpg"
                )
            if "DASHCAM_DATABASE_URL" not in self.dashcam_env:
                self.dashcam_env["DASHCAM_DATABASE_URL"] = self.postgres.url(
                    self.postgres.create_database("dashcam", exist_ok=True)
                )
            for key in ("DASHCAM_WORK_DIR", "DASHCAM_ARCHIVE_DIR", "DASHCAM_DATA_DIR"):
                if self.dashcam_env.get(key):
                    Path(self.dashcam_env[key]).mkdir(parents=True, exist_ok=True)
            Path(raw_dir).mkdir(parents=True, exist_ok=True)
            self.server = PrefectServer(self.home / "prefect", port=self.port, db_url=self.prefect_db_url)
            self.server.start()
            self._stack.callback(self.server.stop)
            out = subprocess.run(
                [str(BIN / "dashcam"), "deploy", "--raw-dir", raw_dir, "--zombie-after-s", str(self.zombie_after_s)],
                env=self.env(),
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise RuntimeError(f"dashcam deploy failed:\n{out.stdout}\n{out.stderr}")
            self.result_storage = out.stdout.strip().splitlines()[-1].split()[-1]
            for pool in POOLS:
                self.start_worker(pool)
            self._supervisor = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)
            self._supervisor.start()
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self, pool: str) -> subprocess.Popen:
        with open(self.home / f"worker-{pool}.log", "ab") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [
                    str(BIN / "prefect"),
                    "worker",
                    "start",
                    "--pool",
                    pool,
                    "--type",
                    "process",
                    "--name",
                    f"{pool}-worker",
                ],
                env=self.env(),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with self._lock:
            self.workers[pool] = proc
        return proc

    def _supervise(self) -> None:
        """Restart a worker ``restart_s`` after it exits (systemd Restart=always, RestartSec)."""
        dead: dict[str, tuple[float, subprocess.Popen]] = {}
        tick = 0
        while not self._stopping.wait(0.5):
            tick += 1
            for pool, proc in list(self.workers.items()):
                if proc.poll() is None:
                    if tick % 4:  # every 2 s is enough to see a flow run process
                        continue
                    # Prefect runs each flow run in a session of its own: remember them, so that
                    # stop() can end the runs a dead worker left behind
                    self._runs_seen.update(descendants(proc.pid))
                elif pool not in dead:
                    dead[pool] = (time.monotonic(), proc)
                    self._log(
                        f"worker {pool} (pid {proc.pid}) exited with {proc.returncode}; restarting in {self.restart_s:g} s"
                    )
            for pool, (t_exit, old) in list(dead.items()):
                if time.monotonic() - t_exit >= self.restart_s and not self._stopping.is_set():
                    new = self.start_worker(pool)
                    self.restarts.append(
                        WorkerRestart(pool, old.pid, old.returncode, t_exit, time.monotonic(), new.pid)
                    )
                    self._log(f"worker {pool} restarted (pid {new.pid})")
                    del dead[pool]

    def _log(self, line: str) -> None:
        stamped = time.strftime("%H:%M:%S ") + line
        with open(self.home / "cluster.log", "a") as f:
            f.write(stamped + "\n")
        print(stamped, flush=True)

    def kill_worker(self, pool: str, with_runs: bool = True) -> int:
        """SIGKILL pool's worker; returns its pid. The supervisor restarts it after ``restart_s``.

        ``with_runs``: the worker and every process it started (its flow runs, in sessions of
        their own, and their children) at once, like a power cut; else the worker process alone
        (OOM killer, ``kill -9 <worker>``): its flow runs keep running and report their own end.
        """
        proc = self.workers[pool]
        runs = descendants(proc.pid) if with_runs else {}
        _killpg(proc.pid, signal.SIGKILL)
        for pid in runs:
            _kill(pid, signal.SIGKILL)
        return proc.pid

    def wait_for_restart(self, pool: str, old_pid: int, timeout_s: float = 60) -> WorkerRestart:
        """Block until the supervisor has replaced worker ``old_pid`` of ``pool``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for r in self.restarts:
                if r.pool == pool and r.old_pid == old_pid:
                    return r
            time.sleep(0.2)
        raise TimeoutError(f"worker {pool} (pid {old_pid}) was not restarted within {timeout_s} s")

    def stop(self) -> None:
        """Stop the supervisor, the workers (and runs left by dead ones), the server, PostgreSQL."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for pool in list(self.workers):
            _stop(self.workers.pop(pool))
        for pid, started in self._runs_seen.items():  # runs left by dead workers (same pid, same start)
            if (st := _proc_stat(pid)) and st[1] == started:
                _kill(pid, signal.SIGKILL)
        self._stack.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up"])
    ap.add_argument("--home", type=Path, default=Path("/tmp/dashcam-cluster"))
    ap.add_argument("--raw-dir", default=None, help="the NAS raw folder (default HOME/nas/raw)")
    ap.add_argument("--port", type=int, default=None, help="Prefect server/UI port (default 4200, else a free one)")
    ap.add_argument(
        "--prefect-db-url",
        default=None,
        help="postgresql+asyncpg://… for the Prefect server (default: database prefect on the cluster's PostgreSQL)",
    )
    ap.add_argument(
        "--zombie-after-s",
        type=int,
        default=ZOMBIE_AFTER_S,
        help="mark a run Crashed after this long without heartbeats (default %(default)s)",
    )
    args = ap.parse_args()
    home = args.home.resolve()
    nas = home / "nas"
    env = {
        "DASHCAM_WORK_DIR": os.environ.get("DASHCAM_WORK_DIR", str(nas / "heavy_output")),
        "DASHCAM_ARCHIVE_DIR": os.environ.get("DASHCAM_ARCHIVE_DIR", str(nas / "archive")),
        "DASHCAM_DATA_DIR": os.environ.get("DASHCAM_DATA_DIR", str(home / "data")),
    }
    if os.environ.get("DASHCAM_DATABASE_URL"):
        env["DASHCAM_DATABASE_URL"] = os.environ["DASHCAM_DATABASE_URL"]
    port = args.port or (4200 if _port_free(4200) else None)
    raw = args.raw_dir or str(nas / "raw")
    cluster = LocalCluster(home, env, prefect_db_url=args.prefect_db_url, zombie_after_s=args.zombie_after_s, port=port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.start(raw)
        print(
            f"Prefect UI:   {cluster.server.ui_url}\n"
            f"export PREFECT_API_URL={cluster.server.api_url}\n"
            f"results DB:   {cluster.results_db_url}\n"
            f"              (`dashcam plates` finds it from the blocks when PREFECT_API_URL is set)\n"
            f"raw folder:   {raw}\n"
            f"logs in {home} (server: prefect/server.log, workers: worker-*.log, restarts: cluster.log); "
            f"workers restart {cluster.restart_s:g} s after they exit; Ctrl-C stops everything",
            flush=True,
        )
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
