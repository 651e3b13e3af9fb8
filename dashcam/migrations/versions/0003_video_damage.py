"""Damaged videos: column videos.damage.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``damage`` is NULL for a video that decoded cleanly; otherwise one line saying where decoding
stopped and why (the events read before the damage are kept). Hand-written to match
dashcam/db.py ``Video`` (checked by tests/test_db.py::test_models_match_migrations).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# plain ADD/DROP COLUMN (not batch mode, which would recreate ``videos`` on SQLite and trip the
# foreign keys of its events); SQLite >= 3.35 drops columns natively


def upgrade() -> None:
    op.add_column("videos", sa.Column("damage", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("videos", "damage")
