"""Index vehicles (final_plate, ts).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

The web dashboard's most-seen plates (``GROUP BY final_plate`` with ``max(ts)``) read all
1,000,000 rows of the bench database without it (5.4 s on SQLite) and 0.3 s with it
(docs/search.md, "Page render time"). Hand-written to match dashcam/db.py ``Vehicle``.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_vehicles_final_plate_ts", "vehicles", ["final_plate", "ts"])


def downgrade() -> None:
    op.drop_index("ix_vehicles_final_plate_ts", table_name="vehicles")
