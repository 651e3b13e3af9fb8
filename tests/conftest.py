"""Shared test fixtures: real databases (no mocks).

Database URLs, for tests that need a results database (pass them to ``dashcam.db.make_engine``):

* ``sqlite_url`` - ``sqlite:///<tmp_path>/dashcam.db``, a file that does not exist yet.
* ``pg_url`` - ``postgresql+psycopg://postgres@127.0.0.1:<port>/<fresh db>``: a new, empty
  database on the session's PostgreSQL server, dropped after the test.
* ``db_url`` - parametrized over both, test ids ``[sqlite]`` and ``[postgresql]``; run only one
  backend with ``-k sqlite`` / ``-k postgresql``. PostgreSQL is started only when a selected test
  needs it.
* ``pg_server`` (session) - the running server, see :class:`PgServer` (``admin_url``, ``port``,
  ``create_database()``), for tests that need server-level access (e.g. terminating backends).

The PostgreSQL server (session scope) is started once from the binaries in
``$DASHCAM_TEST_PG_BIN`` (default: ``/usr/local/bin``, else ``pg_ctl`` on PATH, else
``/usr/lib/postgresql/<newest>/bin``): ``initdb`` into a temporary folder, then ``postgres``
listening on 127.0.0.1 at a free port (TCP only, trust auth, fsync off), stopped and removed at
the end of the session. PostgreSQL refuses to run as root, so when the tests run as root the
server runs as the unprivileged OS user ``$DASHCAM_TEST_PG_OS_USER`` (default ``postgres`` if
that user exists, else ``nobody``); nothing needs to be set up for that.

``DASHCAM_TEST_PG_URL=postgresql+psycopg://user:pw@host:port/db`` uses an existing server
instead (the user must be allowed to CREATE/DROP DATABASE); then nothing is started.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

PG_START_TIMEOUT_S = 60


@dataclass
class PgServer:
    """A PostgreSQL server for the test session."""

    host: str
    port: int
    user: str
    password: str | None
    admin_db: str  # an existing database to connect to for CREATE/DROP DATABASE

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of database ``dbname`` on this server."""
        auth = self.user if self.password is None else f"{self.user}:{self.password}"
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{dbname}"

    @property
    def admin_url(self) -> str:
        return self.url(self.admin_db)

    def connect_admin(self) -> psycopg.Connection:
        """An autocommit psycopg connection to the admin database (close it yourself)."""
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            dbname=self.admin_db, autocommit=True, connect_timeout=10,
        )

    def create_database(self) -> str:
        """Create a fresh empty database; return its name."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        with self.connect_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, terminating connections still open to it (PostgreSQL >= 13)."""
        with self.connect_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_bin_dir() -> Path:
    candidates = [os.environ.get("DASHCAM_TEST_PG_BIN"), "/usr/local/bin"]
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "postgres").exists():
            return Path(c)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, postgres) not found; install PostgreSQL >= 13, set "
        "DASHCAM_TEST_PG_BIN=<its bin dir>, or set DASHCAM_TEST_PG_URL to an existing server "
        "(or deselect these tests with -k 'not postgresql')"
    )


def _os_user_for_postgres() -> pwd.struct_passwd | None:
    """None when we are not root (run as ourselves); else the unprivileged user to run as."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("DASHCAM_TEST_PG_OS_USER")
    for name in [wanted] if wanted else ["postgres", "nobody"]:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"running as root and no unprivileged user {wanted or 'postgres/nobody'} to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the server if pytest dies without running finalizers (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def _local_postgres() -> Iterator[PgServer]:
    bindir = _pg_bin_dir()
    pw = _os_user_for_postgres()
    base = Path(tempfile.mkdtemp(prefix="dashcam-test-pg-"))
    run_as: dict = {}
    if pw is not None:
        os.chown(base, pw.pw_uid, pw.pw_gid)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    datadir, log = base / "data", base / "postgres.log"
    proc: subprocess.Popen | None = None
    try:
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-locale", "--no-sync"],
            cwd=base, env=env, check=True, capture_output=True, text=True, timeout=120, **run_as,
        )
        for _attempt in range(3):
            port = _free_port()
            with open(log, "ab") as logf:
                proc = subprocess.Popen(
                    [str(bindir / "postgres"), "-D", str(datadir), "-p", str(port),
                     "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                     "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                     "-c", "max_connections=100", "-c", "shared_buffers=32MB"],
                    cwd=base, env=env, stdout=logf, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent, **run_as,
                )
            server = PgServer("127.0.0.1", port, "postgres", None, "postgres")
            deadline = time.monotonic() + PG_START_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    server.connect_admin().close()
                    break
                except psycopg.OperationalError:
                    time.sleep(0.1)
            if proc.poll() is None and time.monotonic() < deadline:
                yield server
                return
            if proc.poll() is None:
                raise RuntimeError(f"PostgreSQL did not accept connections in {PG_START_TIMEOUT_S}s:\n{_tail(log)}")
            if "could not bind" not in _tail(log):  # lost a port race: try another port
                raise RuntimeError(f"PostgreSQL exited with {proc.returncode}:\n{_tail(log)}")
        raise RuntimeError(f"PostgreSQL could not bind a port:\n{_tail(log)}")
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"initdb failed ({exc.returncode}):\n{exc.stdout}\n{exc.stderr}") from exc
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (started on first use; see the module docstring)."""
    existing = os.environ.get("DASHCAM_TEST_PG_URL")
    if existing:
        u = make_url(existing)
        yield PgServer(u.host or "127.0.0.1", u.port or 5432, u.username or "postgres", u.password, u.database or "postgres")
        return
    with _local_postgres() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database (dropped after the test)."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a not-yet-existing SQLite database file in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'dashcam.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once per backend: test ids ``[sqlite]`` and ``[postgresql]``."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
