"""Misread-tolerant plate search: vehicles.confusion_key, plate_readings, plate_key_variants,
plate_texts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

* ``vehicles.confusion_key`` (indexed): :func:`dashcam.search.confusion_key` of ``final_plate``;
  filled here for existing rows.
* ``plate_readings``: the distinct alternative readings of each event's track (text, count,
  mean_conf, confusion_key); existing events have none (their reads are in the work folders;
  re-ingesting a video fills them).
* ``plate_key_variants``: lookup variants of every stored confusion key
  (:func:`dashcam.search.key_variants`), filled here for the existing final plates.
* ``plate_texts``: every distinct stored plate text (wildcard and regex searches scan it),
  filled here with the existing final plates.

The key table lives in dashcam.search; if it ever changes, a new migration must re-key these
columns. Hand-written to match dashcam/db.py (checked by
tests/test_db.py::test_models_match_migrations).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def upgrade() -> None:
    from dashcam.search import confusion_key, key_variants

    with op.batch_alter_table("vehicles") as batch:
        batch.add_column(sa.Column("confusion_key", sa.String(), nullable=True))
        batch.create_index("ix_vehicles_confusion_key", ["confusion_key"])
    op.create_table(
        "plate_readings",
        sa.Column("vehicle_id", sa.String(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("mean_conf", sa.Float(), nullable=False),
        sa.Column("confusion_key", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("vehicle_id", "text", name="pk_plate_readings"),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name="fk_plate_readings_vehicle_id_vehicles", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_plate_readings_text", "plate_readings", ["text"])
    op.create_index("ix_plate_readings_confusion_key", "plate_readings", ["confusion_key"])
    op.create_table(
        "plate_key_variants",
        sa.Column("variant", sa.String(), nullable=False),
        sa.Column("confusion_key", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("variant", "confusion_key", name="pk_plate_key_variants"),
    )
    op.create_table(
        "plate_texts",
        sa.Column("text", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("text", name="pk_plate_texts"),
    )

    # backfill the existing events (final plates only; alternatives come with a re-ingest)
    conn = op.get_bind()
    vehicles = sa.table(
        "vehicles",
        sa.column("id", sa.String),
        sa.column("final_plate", sa.String),
        sa.column("confusion_key", sa.String),
    )
    variants = sa.table("plate_key_variants", sa.column("variant", sa.String), sa.column("confusion_key", sa.String))
    plates = conn.execute(sa.select(vehicles.c.final_plate).distinct()).scalars().all()
    keys = {p: confusion_key(p) for p in plates}
    upd = sa.update(vehicles).where(vehicles.c.final_plate == sa.bindparam("p")).values(confusion_key=sa.bindparam("k"))
    items = sorted(keys.items())
    for i in range(0, len(items), BATCH):
        conn.execute(upd, [{"p": p, "k": k} for p, k in items[i : i + BATCH]])
    rows = sorted({(var, k) for k in set(keys.values()) if k for var in key_variants(k)})
    for i in range(0, len(rows), BATCH):
        conn.execute(sa.insert(variants), [{"variant": a, "confusion_key": b} for a, b in rows[i : i + BATCH]])
    texts = sa.table("plate_texts", sa.column("text", sa.String))
    for i in range(0, len(items), BATCH):
        conn.execute(sa.insert(texts), [{"text": p} for p, _ in items[i : i + BATCH]])


def downgrade() -> None:
    op.drop_table("plate_texts")
    op.drop_table("plate_key_variants")
    op.drop_index("ix_plate_readings_confusion_key", table_name="plate_readings")
    op.drop_index("ix_plate_readings_text", table_name="plate_readings")
    op.drop_table("plate_readings")
    with op.batch_alter_table("vehicles") as batch:
        batch.drop_index("ix_vehicles_confusion_key")
        batch.drop_column("confusion_key")
