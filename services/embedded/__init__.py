"""The embedded run: all services in one process (SQLite, local TileDB, no servers)."""
