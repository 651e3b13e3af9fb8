"""Results-database engines and migrations: :func:`make_engine` (URL handling, PostgreSQL
timeouts, the SQLite connection set-up with its REGEXP function), :func:`check_database`,
:func:`sqlite_path`, :func:`alembic_config`, :func:`migrate`, and :class:`DatabaseError` with the
one-line message helpers (``_safe_url``, ``_reason``) that the rest of the package uses.

Part of :mod:`dashcam.db` (import the names from there). Alembic's ``dashcam/migrations/env.py``
migrates to the tables of :mod:`dashcam.db.schema`; :mod:`dashcam.db.persist` and
:mod:`dashcam.db.queries` raise this module's :class:`DatabaseError`.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# Arbitrary constant: the PostgreSQL advisory lock that serialises concurrent migrations
# (several workers calling make_engine() at start-up against one fresh database).
_PG_MIGRATION_LOCK = 0x0DA5C0A1


class DatabaseError(RuntimeError):
    """A database operation failed. ``__cause__`` is the original SQLAlchemy exception."""


# --------------------------------------------------------------------------------------------
# Engine and migrations


def _safe_url(url: str | sa.URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


@lru_cache(maxsize=256)
def _compiled_regex(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def _sqlite_regexp(pattern: str | None, value: str | None) -> bool | None:
    """SQLite's ``value REGEXP pattern``: case-insensitive :func:`re.search`; NULL in, NULL out.
    A bad pattern raises (SQLite reports a user-function error); dashcam.search validates first."""
    if pattern is None or value is None:
        return None
    return _compiled_regex(pattern).search(value) is not None


def _setup_sqlite(engine: Engine) -> None:
    """Make pysqlite transactional (DDL included) and sane for several processes.

    pysqlite's own transaction handling does not BEGIN before DDL, so a failed migration could
    be half-applied; the SQLAlchemy-documented fix is to switch the driver to autocommit and
    emit BEGIN ourselves. ``execution_options(sqlite_begin="IMMEDIATE")`` on a connection takes
    the write lock at BEGIN (used by writers, to avoid lock-upgrade failures under WAL).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        # ``x REGEXP y`` for dashcam.search (case-insensitive search, as PostgreSQL's ``~*``)
        dbapi_conn.create_function("regexp", 2, _sqlite_regexp, deterministic=True)
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if engine.url.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


# Timeouts: an unreachable or frozen database must fail a command in seconds, not hang it
# (psycopg's own default connect timeout is 130 s). Each can be overridden per URL
# (``?connect_timeout=20``, ``?options=-c statement_timeout=0``).
PG_CONNECT_TIMEOUT_S = 5  # TCP connect + startup/auth; a SIGSTOPped postmaster never answers
PG_STATEMENT_TIMEOUT_MS = 60_000  # server-side: no statement (migrations included) runs longer
PG_LOCK_TIMEOUT_MS = 20_000  # waiting for a row/table/advisory lock held by a stuck session
PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
SQLITE_BUSY_TIMEOUT_S = 30  # a writer waits this long for another process's write lock


def _pg_connect_args(sa_url: sa.URL) -> dict[str, Any]:
    """psycopg connect args: timeouts and TCP keepalives, unless the URL sets them itself."""
    q = sa_url.query
    args: dict[str, Any] = {k: v for k, v in PG_KEEPALIVES.items() if k not in q}
    if "connect_timeout" not in q:
        args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    if "options" not in q:
        args["options"] = f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS} -c lock_timeout={PG_LOCK_TIMEOUT_MS}"
    return args


def make_engine(url: str, *, migrate_schema: bool = True, **engine_kwargs: Any) -> Engine:
    """Create an engine for ``url`` and (by default) bring its schema to the latest revision.

    ``url``: ``sqlite:///path/to/file.db`` (parent folder created) or
    ``postgresql+psycopg://user:pass@host:5432/db`` (``postgresql://`` is taken to mean the same). Raises :class:`DatabaseError` when the
    database cannot be reached or migrated.

    Timeouts (see the ``PG_*`` / ``SQLITE_*`` constants): PostgreSQL connections give up after
    :data:`PG_CONNECT_TIMEOUT_S` s, statements after :data:`PG_STATEMENT_TIMEOUT_MS`, lock waits
    after :data:`PG_LOCK_TIMEOUT_MS`, and TCP keepalives detect a vanished server; SQLite waits
    :data:`SQLITE_BUSY_TIMEOUT_S` s for another writer. A URL's own ``connect_timeout`` /
    ``options`` / ``keepalives*`` query parameters win.
    """
    sa_url = make_url(url)
    if sa_url.drivername in ("postgresql", "postgres"):  # plain URL: use psycopg 3, not psycopg2
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if sa_url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = _pg_connect_args(sa_url)
    if sa_url.get_backend_name() == "sqlite":
        db = sa_url.database
        if db and db != ":memory:" and not db.startswith("file:"):
            try:
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the folder of SQLite database {db}: {exc}") from exc
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    kwargs.update(engine_kwargs)
    engine = sa.create_engine(sa_url, **kwargs)
    if sa_url.get_backend_name() == "sqlite":
        _setup_sqlite(engine)
    if migrate_schema:
        migrate(engine)
    return engine


def check_database(url: str) -> None:
    """Connect to ``url`` and bring its schema to head, then close: the fail-fast check that
    ``ingest`` runs before any analysis. Raises :class:`DatabaseError` (one-line message naming
    the database without its password) when it cannot be reached or migrated, within about
    :data:`PG_CONNECT_TIMEOUT_S` seconds for an unreachable or frozen PostgreSQL server."""
    make_engine(url).dispose()


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///FILE`` URL, or None (in-memory, ``file:`` URIs, other backends)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:" or u.database.startswith("file:"):
        return None
    return Path(u.database).expanduser()


_migrate_lock = threading.Lock()


def alembic_config(connection: sa.Connection | None = None):
    """Alembic Config for our migrations (no ini file); ``connection`` is used by env.py."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Run Alembic ``upgrade <revision>`` programmatically (no alembic.ini needed).

    Safe to call repeatedly and from several processes at once (PostgreSQL: advisory lock;
    SQLite: the whole upgrade runs in one ``BEGIN IMMEDIATE`` transaction).
    """
    from alembic import command

    own_engine = not isinstance(engine_or_url, Engine)
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url, migrate_schema=False)
    try:
        with _migrate_lock:
            try:
                conn = engine.connect()
            except SQLAlchemyError as exc:
                raise DatabaseError(f"cannot connect to database {_safe_url(engine.url)}: {_reason(exc)}") from exc
            with conn:
                if conn.dialect.name == "sqlite":
                    conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    if conn.dialect.name == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    command.upgrade(alembic_config(conn), revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"could not migrate database {_safe_url(engine.url)} to {revision}: {_reason(exc)}"
        ) from exc
    finally:
        if own_engine:
            engine.dispose()


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else type(exc).__name__}"
