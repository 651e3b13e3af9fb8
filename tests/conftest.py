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

Also ``small_disk``: a real 1 MiB tmpfs (root only, else the test is skipped) for full-disk faults,
and ``prefect_session_server`` (below).

The PostgreSQL server (session scope; infra/postgres.py, shared with infra/cluster.py) is started
once from the binaries in
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

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

# the PostgreSQL starter is shared with infra/cluster.py (the one-machine cluster)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
from postgres import PgServer, local_postgres  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (started on first use; see the module docstring)."""
    existing = os.environ.get("DASHCAM_TEST_PG_URL")
    if existing:
        u = make_url(existing)
        yield PgServer(
            u.host or "127.0.0.1", u.port or 5432, u.username or "postgres", u.password, u.database or "postgres"
        )
        return
    with local_postgres() as server:
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
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (mount(2) needs root; skipped without), unmounted at the end: a full
    disk for the archive/work fault tests."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a not-yet-existing SQLite database file in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'dashcam.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once per backend: test ids ``[sqlite]`` and ``[postgresql]``."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture(scope="session")
def prefect_session_server(tmp_path_factory):
    """ONE real Prefect API server (127.0.0.1) for every in-process flow test of the session,
    made current with ``temporary_settings``. Two in-process servers in one pytest process do
    not mix: Prefect keeps process-wide state bound to the first API it talked to, so flows and
    events of a later test went to the earlier server (the alerts test and the first-resume cache
    test each failed when the other had created its server first)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_server import PrefectServer

    server = PrefectServer(tmp_path_factory.mktemp("prefect-home")).start()
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        server.stop()
