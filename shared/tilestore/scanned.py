"""The tile store of a scanned slide, as every slide-consuming service gets it.

The detector and the marrow service both start from `SlideScanned`: the slide must lie below the
allowed roots on a local or mounted path, and is ingested once (a redelivered or re-run scan
reuses its complete store) with the working resolutions its specimen needs.
"""

from __future__ import annotations

from pathlib import Path

import tiledb

from pathstream.shared.allowed_roots import check_allowed
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import SlideScanned
from pathstream.shared.logs import get_logger
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.ingest import Progress, ingest_slide
from pathstream.shared.tilestore.layout import TileFormat
from pathstream.shared.tilestore.limits import SlideLimits
from pathstream.shared.tilestore.quality import check_store_quality
from pathstream.shared.tilestore.reader import TileStore

log = get_logger(__name__)


def store_for_scan(
    event: SlideScanned, settings: PathStreamSettings, ctx: tiledb.Ctx, progress: Progress | None = None
) -> TileStore:
    """Ingest (or reuse) the store of `event`'s slide at the arrays its specimen needs, pass it
    through the slide-quality gate (`PATHSTREAM_SLIDE_QC`, `shared.tilestore.quality`); open it.

    Raises `PathStreamError` for a slide outside `PATHSTREAM_ALLOWED_ROOTS`, on object storage,
    unreadable or too large (see `ingest_slide`), or failing the gate (`QC_FAILED`).
    """
    location = check_allowed(event.uri, settings.allowed_roots)
    if "://" in location:
        raise PathStreamError(
            ErrorCode.NOT_A_SLIDE,
            f"Slide {event.uri} is on object storage; services read slide files from a local or "
            "mounted path.",
            hint="Mount the bucket (or copy the slide) below PATHSTREAM_ALLOWED_ROOTS and rescan.",
        )
    result = ingest_slide(
        Path(location),
        settings.store_root,
        event.slide_id,
        event.specimen,
        mpp=event.mpp,
        sha256=event.sha256,
        ctx=ctx,
        fmt=TileFormat.from_settings(settings),
        limits=SlideLimits.from_settings(settings),
        progress=progress,
    )
    store = TileStore.open(result.store_uri, ctx=ctx)
    if settings.slide_qc:
        quality = check_store_quality(store, str(event.uri))
        log.info("slide_quality_passed", slide_id=event.slide_id, **quality.as_dict())
    return store
