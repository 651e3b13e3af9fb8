"""Storage: archive verification, retention state and the user's keep mark on ``videos``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

* ``archive_verified_at``: when the archive copy (and its crops/thumbnails) last passed
  :func:`dashcam.storage.verify_archive`; NULL = not verified, the raw file is never deleted.
* ``archive_bytes`` / ``archive_images_bytes``: size of the archive video copy and of its
  crops + thumbnails (bytes) as verified.
* ``raw_deleted_at`` / ``archive_deleted_at``: when retention deleted the raw file / the archive
  video copy (written after the unlink succeeded).
* ``keep``: the user's "keep this raw file" mark (``dashcam keep VIDEO_ID``); never deleted.

Hand-written to match dashcam/db.py ``Video`` (tests/test_db.py::test_models_match_migrations).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD/DROP COLUMN, not batch mode: on SQLite batch mode recreates ``videos`` (DROP TABLE
# videos), which the foreign keys of ``vehicles``/``routes`` refuse on any database that holds
# events. SQLite >= 3.35 has ALTER TABLE ... DROP COLUMN natively.


def upgrade() -> None:
    op.add_column("videos", sa.Column("archive_verified_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("videos", sa.Column("archive_bytes", sa.BigInteger(), nullable=True))
    op.add_column("videos", sa.Column("archive_images_bytes", sa.BigInteger(), nullable=True))
    op.add_column("videos", sa.Column("raw_deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("videos", sa.Column("archive_deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("videos", sa.Column("keep", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    for c in (
        "keep",
        "archive_deleted_at",
        "raw_deleted_at",
        "archive_images_bytes",
        "archive_bytes",
        "archive_verified_at",
    ):
        op.drop_column("videos", c)
