"""Alembic migrations of the PathStream schema."""
