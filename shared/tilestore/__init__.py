"""Slide tile stores: ingestion from OpenSlide into TileDB, and reading regions back."""
