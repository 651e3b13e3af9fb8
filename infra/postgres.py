"""A PostgreSQL server started from the local binaries, for the tests and for infra/cluster.py.

:func:`local_postgres` runs ``initdb`` (once, when the data folder is new) and then ``postgres``
listening on 127.0.0.1 at a free port: TCP only, trust authentication, superuser ``postgres``.
The binaries come from ``$DASHCAM_TEST_PG_BIN`` (default ``/usr/local/bin``, else ``pg_ctl`` on
PATH, else ``/usr/lib/postgresql/<newest>/bin``). PostgreSQL refuses to run as root, so when we
are root the server runs as the unprivileged OS user ``$DASHCAM_TEST_PG_OS_USER`` (default
``postgres`` if that user exists, else ``nobody``); its folder is chowned to that user, and every
folder above it must be traversable by that user (``/tmp/...`` is; ``/root/...`` is not).

Two uses:

* tests/conftest.py: a throwaway server (``base=None``: a fresh temporary folder, removed at
  the end), fsync off;
* infra/cluster.py: the one-machine cluster's server in ``<home>/postgres`` (kept between
  starts, durable: fsync on), holding the Prefect server's database and the results database.

Imported by path (``sys.path`` gets ``infra/``), so it depends on the standard library and psycopg
only.
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

PG_START_TIMEOUT_S = 60


@dataclass
class PgServer:
    """A running PostgreSQL server (host, port, a superuser, an existing admin database)."""

    host: str
    port: int
    user: str
    password: str | None
    admin_db: str  # an existing database to connect to for CREATE/DROP DATABASE

    def url(self, dbname: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of database ``dbname`` on this server; ``driver`` ``psycopg`` (psycopg 3,
        the results DB) or ``asyncpg`` (what the Prefect server wants)."""
        auth = self.user if self.password is None else f"{self.user}:{self.password}"
        return f"postgresql+{driver}://{auth}@{self.host}:{self.port}/{dbname}"

    @property
    def admin_url(self) -> str:
        return self.url(self.admin_db)

    def connect_admin(self) -> psycopg.Connection:
        """An autocommit psycopg connection to the admin database (close it yourself)."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.admin_db,
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self, name: str | None = None, exist_ok: bool = False) -> str:
        """Create an empty database (default: a fresh ``test_<hex>`` name); return its name.

        With ``exist_ok``, an existing database of that name is kept as it is.
        """
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        with self.connect_admin() as conn:
            if exist_ok and conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return name
            conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, terminating connections still open to it (PostgreSQL >= 13)."""
        with self.connect_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``postgres`` (see the module docstring)."""
    candidates = [os.environ.get("DASHCAM_TEST_PG_BIN"), "/usr/local/bin"]
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "postgres").exists():
            return Path(c)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, postgres) not found; install PostgreSQL >= 13 "
        "(Debian: apt-get install postgresql), set DASHCAM_TEST_PG_BIN=<its bin dir>, or set "
        "DASHCAM_TEST_PG_URL to an existing server (tests: or deselect them with -k 'not postgresql')"
    )


def os_user_for_postgres() -> pwd.struct_passwd | None:
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the server if its starter dies without stopping it (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _check_traversable(path: Path, pw: pwd.struct_passwd) -> None:
    """Raise a clear error when user ``pw`` cannot reach ``path`` (a parent lacks x for it)."""
    for parent in path.resolve().parents:
        st = parent.stat()
        if st.st_uid == pw.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid == pw.pw_gid:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            raise RuntimeError(
                f"PostgreSQL runs as user {pw.pw_name!r} (we are root) and cannot enter {parent} "
                f"(mode {st.st_mode & 0o777:o}): put its folder elsewhere (e.g. under /tmp or /var/lib)"
            )


@contextlib.contextmanager
def local_postgres(base: Path | None = None, durable: bool = False) -> Iterator[PgServer]:
    """Start a PostgreSQL server; yield it as :class:`PgServer`; stop it (fast shutdown) at exit.

    Args:
        base: folder for the data directory (``base/data``) and the log (``base/postgres.log``).
            ``None``: a fresh temporary folder, removed afterwards. Given: created if missing and
            kept, so its databases survive a restart (``initdb`` runs only when ``base/data`` is new).
        durable: keep fsync/full-page writes on (a server whose data matters); ``False`` turns
            them off (throwaway test servers: several times faster, lost on a power cut).

    Raises:
        RuntimeError: binaries not found, initdb failed, or the server did not accept
            connections within ``PG_START_TIMEOUT_S`` (the log's tail is in the message).
    """
    bindir = pg_bin_dir()
    pw = os_user_for_postgres()
    temporary = base is None
    base = Path(tempfile.mkdtemp(prefix="dashcam-test-pg-")) if temporary else Path(base).resolve()
    base.mkdir(parents=True, exist_ok=True)
    run_as: dict = {}
    if pw is not None:
        _check_traversable(base, pw)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    datadir, log = base / "data", base / "postgres.log"
    fast = [] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    proc: subprocess.Popen | None = None
    try:
        if not (datadir / "PG_VERSION").exists():
            shutil.rmtree(datadir, ignore_errors=True)  # a half-done initdb
            subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(datadir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    *([] if durable else ["--no-sync"]),
                ],
                cwd=base,
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
                **run_as,
            )
        for _attempt in range(3):
            port = free_port()
            with open(log, "ab") as logf:
                proc = subprocess.Popen(
                    [
                        str(bindir / "postgres"),
                        "-D",
                        str(datadir),
                        "-p",
                        str(port),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        "unix_socket_directories=",
                        *fast,
                        "-c",
                        "max_connections=100",
                        "-c",
                        "shared_buffers=32MB",
                    ],
                    cwd=base,
                    env=env,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                    **run_as,
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
        if temporary:
            shutil.rmtree(base, ignore_errors=True)
