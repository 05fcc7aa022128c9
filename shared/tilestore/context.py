"""TileDB contexts configured from settings, for local stores and S3-compatible object stores."""

from __future__ import annotations

from functools import lru_cache

import tiledb

from pathstream.shared.settings import PathStreamSettings


@lru_cache(maxsize=8)
def _context(endpoint: str, scheme: str, region: str, virtual_addressing: bool) -> tiledb.Ctx:
    config: dict[str, str] = {
        "vfs.s3.scheme": scheme,
        "vfs.s3.use_virtual_addressing": "true" if virtual_addressing else "false",
    }
    if endpoint:
        config["vfs.s3.endpoint_override"] = endpoint
    if region:
        config["vfs.s3.region"] = region
    return tiledb.Ctx(tiledb.Config(config))


def tiledb_context(settings: PathStreamSettings) -> tiledb.Ctx:
    """Return a TileDB context for `settings.store_root`.

    Credentials come from the usual AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    instance roles); the endpoint settings point at an on-premises S3 store (MinIO, Ceph, ...).
    """
    return _context(
        settings.s3_endpoint,
        settings.s3_scheme,
        settings.s3_region,
        settings.s3_virtual_addressing,
    )


def store_uri(store_root: str, slide_id: str) -> str:
    """The URI of a slide's TileDB group below `store_root` (a local path or s3:// URI)."""
    return f"{store_root.rstrip('/')}/{slide_id}"
