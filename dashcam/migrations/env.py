"""Alembic environment for the results database.

There is no alembic.ini: :func:`dashcam.db.migrate` builds the config in code
(``script_location`` = this folder) and passes an open connection in
``config.attributes["connection"]``. To write a new revision, change the models in
``dashcam/db/schema.py`` and autogenerate against a database migrated to head, e.g.::

    from alembic import command
    from dashcam.db import alembic_config, make_engine
    engine = make_engine("sqlite:////tmp/rev.db")          # migrated to head
    with engine.begin() as conn:
        command.revision(alembic_config(conn), "what changed", autogenerate=True)

then hand-check the generated file (tests/test_db.py verifies models == migrations).
Without a connection, ``sqlalchemy.url`` from the config or ``DASHCAM_DATABASE_URL`` is used.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context
from sqlmodel.sql.sqltypes import AutoString

import dashcam.db
from dashcam.db import UTCDateTime

config = context.config
target_metadata = dashcam.db.metadata


def render_item(type_: str, obj, autogen_context):
    """Render our custom column types as plain SQLAlchemy types in generated revisions."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()" if obj.length is None else f"sa.String(length={obj.length})"
    return False


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # dashcam.db.migrate() owns the transaction around this call.
        _configure(connection)
        context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DASHCAM_DATABASE_URL")
    if not url:
        raise RuntimeError("no connection: use dashcam.db.migrate(), or set sqlalchemy.url / DASHCAM_DATABASE_URL")
    engine = dashcam.db.make_engine(url, migrate_schema=False)
    try:
        with engine.connect() as conn, conn.begin():
            _configure(conn)
            context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; use dashcam.db.migrate()")
run_migrations_online()
