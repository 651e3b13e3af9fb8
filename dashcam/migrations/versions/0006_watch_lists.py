"""Watch lists, watch hits, corrections and plate notes (issue 15).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

* ``watchlists`` / ``watch_entries``: named lists of plate texts, ``*``/``?`` patterns or regexes
  with label, notes, fuzzy flag and threshold, active from/until.
* ``watch_hits``: one row per (entry, event) that matched; no foreign key to ``vehicles``
  (a re-ingest replaces those rows, a hit stays).
* ``corrections``: a user's plate correction per stable event id, with the OCR text, who, when
  and where the event was (track, ts, frames) to re-attach it after a re-ingest.
* ``plate_notes``: notes and tags per plate text.

Chained after 0005 (storage, re-chained after 0004 on main). Hand-written to match dashcam/db.py (checked by
tests/test_db.py::test_models_match_migrations).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watchlists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_watchlists"),
        sa.UniqueConstraint("name", name="uq_watchlists_name"),
    )
    op.create_table(
        "watch_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watchlist_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("pattern", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("notes", sa.String(), nullable=False),
        sa.Column("fuzzy", sa.Boolean(), nullable=False),
        sa.Column("min_score", sa.Float(), nullable=True),
        sa.Column("active_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_watch_entries"),
        sa.ForeignKeyConstraint(
            ["watchlist_id"], ["watchlists.id"], name="fk_watch_entries_watchlist_id_watchlists", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_watch_entries_watchlist_id", "watch_entries", ["watchlist_id"])
    op.create_table(
        "watch_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("video_id", sa.String(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("matched_text", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_watch_hits"),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["watch_entries.id"], name="fk_watch_hits_entry_id_watch_entries", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("entry_id", "event_id", name="uq_watch_hits_entry_id_event_id"),
    )
    op.create_index("ix_watch_hits_event_id", "watch_hits", ["event_id"])
    op.create_index("ix_watch_hits_video_id", "watch_hits", ["video_id"])
    op.create_table(
        "corrections",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("video_id", sa.String(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_frame_idx", sa.Integer(), nullable=False),
        sa.Column("last_frame_idx", sa.Integer(), nullable=False),
        sa.Column("ocr_text", sa.String(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_corrections"),
    )
    op.create_index("ix_corrections_video_id", "corrections", ["video_id"])
    op.create_table(
        "plate_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plate", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plate_notes"),
    )
    op.create_index("ix_plate_notes_plate", "plate_notes", ["plate"])


def downgrade() -> None:
    op.drop_table("plate_notes")
    op.drop_table("corrections")
    op.drop_table("watch_hits")
    op.drop_table("watch_entries")
    op.drop_table("watchlists")
