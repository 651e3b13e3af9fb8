"""Alembic migrations of the results database (configured programmatically by dashcam.db)."""
