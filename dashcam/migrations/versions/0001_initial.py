"""Initial schema: videos and vehicles.

Revision ID: 0001
Revises:
Create Date: 2026-05-20

Hand-written to match dashcam/db.py (checked by tests/test_db.py::test_models_match_migrations).
Datetimes are timestamptz on PostgreSQL; SQLite stores them naive UTC.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "videos",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("codec", sa.String(), nullable=False),
        sa.Column("recording_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recording_start_source", sa.String(), nullable=False),
        sa.Column("camera", sa.String(), nullable=True),
        sa.Column("archive_path", sa.String(), nullable=True),
        sa.Column("n_events", sa.Integer(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_videos"),
    )
    op.create_table(
        "vehicles",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.String(), nullable=False),
        sa.Column("frame_idx", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("final_plate", sa.String(), nullable=False),
        sa.Column("plate_confidence", sa.Float(), nullable=False),
        sa.Column("car_bbox", sa.JSON(), nullable=False),
        sa.Column("plate_bbox", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("video_path", sa.String(), nullable=False),
        sa.Column("pts_s", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("heading_deg", sa.Float(), nullable=True),
        sa.Column("crop_path", sa.String(), nullable=True),
        sa.Column("thumb_path", sa.String(), nullable=True),
        sa.Column("n_reads", sa.Integer(), nullable=False),
        sa.Column("first_frame_idx", sa.Integer(), nullable=False),
        sa.Column("last_frame_idx", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vehicles"),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], name="fk_vehicles_video_id_videos"),
        sa.UniqueConstraint("video_id", "track_id", name="uq_vehicles_video_id_track_id"),
    )
    op.create_index("ix_vehicles_video_id", "vehicles", ["video_id"])
    op.create_index("ix_vehicles_ts", "vehicles", ["ts"])
    op.create_index("ix_vehicles_final_plate", "vehicles", ["final_plate"])


def downgrade() -> None:
    op.drop_index("ix_vehicles_final_plate", table_name="vehicles")
    op.drop_index("ix_vehicles_ts", table_name="vehicles")
    op.drop_index("ix_vehicles_video_id", table_name="vehicles")
    op.drop_table("vehicles")
    op.drop_table("videos")
