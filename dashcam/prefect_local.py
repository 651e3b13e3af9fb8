"""``dashcam ingest``'s own Prefect API server, and runs whose process died (in-process runs).

Without ``PREFECT_API_URL`` Prefect 3 starts an *ephemeral* API server on first use
(``prefect.server.api.server.SubprocessASGIServer``: ``python -m uvicorn --factory
prefect.server.api.server:create_app`` on 127.0.0.1, stopped by an ``atexit`` hook). A
``kill -9`` skips ``atexit``, so that server (~200 MB) lived on as an orphan. :class:`LocalApiServer`
starts the same server, with the same settings and therefore the same database (the SQLite file
under ``PREFECT_HOME`` unless ``PREFECT_API_DATABASE_CONNECTION_URL`` says otherwise, so the run
history persists), but through :func:`dashcam.procs.popen`: it is SIGKILLed when ``dashcam
ingest`` dies, however it dies.

A killed process also leaves its flow and task runs ``Running`` forever (nothing sends a final
state). Every run started by ``dashcam ingest`` carries the tags :data:`OWNER_TAG` and
``dashcam-owner:<host>:<pid>:<process start>`` (:func:`owner_tag`); at its next start
:func:`crash_orphaned_runs` marks the runs of this host whose owner process is gone as Crashed.
The process start time guards against pid reuse.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

from dashcam import procs

__all__ = ["LocalApiServer", "OWNER_TAG", "crash_orphaned_runs", "owner_tag"]

OWNER_TAG = "dashcam-cli"  # every run started by ``dashcam ingest``
_OWNER_PREFIX = "dashcam-owner:"


def _start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]  # fields after "(comm)": state is field 3


def _alive(pid: int, start: str) -> bool:
    if Path("/proc/self/stat").exists():
        return _start_ticks(pid) == start
    try:  # pragma: no cover - no /proc: pid check only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_tag(pid: int | None = None) -> str:
    """``dashcam-owner:<hostname>:<pid>:<start ticks>`` for this (or ``pid``'s) process."""
    pid = os.getpid() if pid is None else pid
    return f"{_OWNER_PREFIX}{socket.gethostname()}:{pid}:{_start_ticks(pid) or '-'}"


def _dead_owner(tags: list[str]) -> str | None:
    """The owner tag among ``tags`` when it names a process of this host that is gone."""
    host = socket.gethostname()
    for t in tags:
        if not t.startswith(_OWNER_PREFIX):
            continue
        try:
            h, pid, start = t[len(_OWNER_PREFIX) :].rsplit(":", 2)
            pid_i = int(pid)
        except ValueError:
            continue
        if h == host and start != "-" and pid_i != os.getpid() and not _alive(pid_i, start):
            return t
    return None


def crash_orphaned_runs() -> list[UUID]:
    """Mark flow and task runs ``Running``/``Pending``/``Cancelling`` whose ``dashcam ingest``
    process on this host is dead as Crashed (forced; the message names the dead pid).

    Uses the Prefect API of the current settings. Returns the ids of the flow runs changed.
    Runs of other hosts and of live processes are never touched.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
        TaskRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    open_types = [StateType.RUNNING, StateType.PENDING, StateType.CANCELLING]
    changed: list[UUID] = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=open_types)),
                tags=FlowRunFilterTags(all_=[OWNER_TAG]),
            )
        )
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=open_types)),
                tags=TaskRunFilterTags(all_=[OWNER_TAG]),
            )
        )
        for tr in tasks:
            owner = _dead_owner(tr.tags)
            if owner:
                client.set_task_run_state(tr.id, Crashed(message=_message(owner)), force=True)
        for fr in runs:
            owner = _dead_owner(fr.tags)
            if owner:
                client.set_flow_run_state(fr.id, Crashed(message=_message(owner)), force=True)
                changed.append(fr.id)
    return changed


def _message(owner: str) -> str:
    pid = owner[len(_OWNER_PREFIX) :].rsplit(":", 2)[1]
    return f"the dashcam ingest process (pid {pid}) that ran this died without finishing it (killed?)"


def _drain_prefect_workers(timeout_s: float = 10.0) -> None:
    """Flush Prefect's background log and event workers (as prefect_test_harness does)."""
    try:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=timeout_s)
        EventsWorker.drain_all(timeout=timeout_s)
    except Exception:  # noqa: BLE001 - best effort at shutdown; the runs' states are already sent
        pass


def _listening_socket() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1 and listening, for the server to inherit.

    Binding here and handing the descriptor to uvicorn (``--fd``) leaves no gap between choosing
    the port and binding it, so no other process can take the port meanwhile, and nothing but
    our server can answer the health check on it (with "pick a free port, let the child bind
    it", a busy machine could make our child fail to bind while another Prefect server on the
    same port answered for it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        s.set_inheritable(True)
    except OSError:
        s.close()
        raise
    return s


class LocalApiServer:
    """Prefect's ephemeral API server as our own child process (dies with us; see module doc).

    ``start()`` picks a free port on 127.0.0.1 and waits for ``/api/health``; ``api_url`` is then
    ``http://127.0.0.1:<port>/api``; ``stop()`` terminates it (also usable as a context manager).
    """

    def __init__(self) -> None:
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self, sock: socket.socket) -> subprocess.Popen:
        import prefect
        from prefect.settings import get_current_settings

        env = {
            **os.environ,
            # the same environment Prefect gives its ephemeral server (SubprocessASGIServer)
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            # self-hosted and often offline: no usage telemetry from this server (it would also
            # log "Failed to send telemetry" into every ingest without a network)
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            **get_current_settings().to_environment_variables(exclude_unset=True),
        }
        env.pop("PREFECT_API_URL", None)
        return procs.popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(prefect.__module_path__.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--fd",
                str(sock.fileno()),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=(sock.fileno(),),
        )

    def start(self, timeout_s: float | None = None) -> LocalApiServer:
        """Start the server and wait until it answers. Raises RuntimeError when it does not."""
        import httpx
        from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

        wait = timeout_s or max(60.0, float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
        for _attempt in range(3):
            with _listening_socket() as sock:  # the child has its own copy of the descriptor
                self.port = sock.getsockname()[1]
                self.proc = self._spawn(sock)
            deadline = time.monotonic() + wait
            with httpx.Client() as client:
                while time.monotonic() < deadline:
                    if self.proc.poll() is not None:
                        break
                    try:
                        if client.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                            return self
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.1)
            if self.proc.poll() is None:
                self.stop()
                raise RuntimeError(f"the local Prefect API server did not answer within {wait:.0f} s")
            # exited early (e.g. its startup failed) -> try again
        assert self.proc is not None  # each attempt spawned one
        raise RuntimeError(f"the local Prefect API server exited with status {self.proc.returncode}")

    def stop(self) -> None:
        """Send this process's pending logs and events, then terminate the server (SIGTERM,
        SIGKILL after 5 s). Without the drain, Prefect's workers would retry against the gone
        server at interpreter exit (delays, "Error logging to API")."""
        if self.proc is None:
            return
        _drain_prefect_workers()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
