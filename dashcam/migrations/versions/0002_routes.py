"""Per-video GPS route: table routes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-21

Hand-written to match dashcam/db.py ``Route`` (checked by tests/test_db.py::test_models_match_migrations).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("video_id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("n_points", sa.Integer(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("video_id", name="pk_routes"),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], name="fk_routes_video_id_videos"),
    )


def downgrade() -> None:
    op.drop_table("routes")
