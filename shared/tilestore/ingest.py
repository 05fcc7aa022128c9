"""Ingest a slide: OpenSlide levels -> area-averaged working resolutions -> one TileDB group.

Each working array is produced tile row by tile row, column chunks in parallel with a bounded
number in flight, each output pixel the area average of the level-0 area it covers (read from the
coarsest OpenSlide level that still has enough detail), and written as one TileDB fragment in
global order. Memory therefore stays the same however large the slide is.
A store is reused when it already holds the same content (sha256) at the same ingest version, and
a failed ingest removes what it wrote: no half-written store survives.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tiledb

from pathstream.shared.allowed_roots import check_allowed
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Specimen
from pathstream.shared.events.base import utc_now
from pathstream.shared.logs import get_logger
from pathstream.shared.tilestore.array_writer import GlobalOrderWriter
from pathstream.shared.tilestore.context import store_uri
from pathstream.shared.tilestore.fingerprint import slide_sha256
from pathstream.shared.tilestore.layout import (
    CHANNELS,
    DEFAULT_TILE_FORMAT,
    INGEST_VERSION,
    MAX_UPSAMPLING,
    ArrayInfo,
    MetaKey,
    TileFormat,
    WorkingResolution,
    array_schema,
    working_resolutions,
)
from pathstream.shared.tilestore.limits import SlideLimits, check_slide_size
from pathstream.shared.tilestore.reader import TileStore, read_store_meta
from pathstream.shared.tilestore.resample import (
    area_resample,
    snapped_area_resize,
    snapped_boundaries,
    snapped_span,
    source_span,
)
from pathstream.shared.tilestore.slide_source import MppSource, SlideSource, check_slide_file, open_slide

log = get_logger(__name__)

Progress = Callable[[int, int], None]
"""Called with (bands done, bands in total) as ingestion proceeds."""

COLUMN_CHUNK_TILES = 4
SNAP_WINDOW = 32


@dataclass(frozen=True)
class ArrayPlan:
    """How one working array is computed from the slide."""

    info: ArrayInfo
    level: int
    factor_x: float
    factor_y: float
    level_size: tuple[int, int]


@dataclass
class IngestResult:
    """What `pathstream ingest --json` reports."""

    slide_id: str
    store_uri: str
    sha256: str
    mpp_source: MppSource
    mpp_x: float
    mpp_y: float
    vendor: str
    level0_width: int
    level0_height: int
    arrays: list[ArrayInfo]
    reused: bool
    seconds: float

    @property
    def megapixels(self) -> float:
        """Level-0 megapixels of the source slide."""
        return self.level0_width * self.level0_height / 1e6

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary: ids, checksum, resolution source and the arrays written."""
        return {
            "slide_id": self.slide_id,
            "store_uri": self.store_uri,
            "sha256": self.sha256,
            "mpp_source": self.mpp_source,
            "mpp_x": self.mpp_x,
            "mpp_y": self.mpp_y,
            "vendor": self.vendor,
            "level0_width": self.level0_width,
            "level0_height": self.level0_height,
            "arrays": [a.summary() for a in self.arrays],
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
        }


def plan_array(source: SlideSource, resolution: WorkingResolution) -> ArrayPlan:
    """Decide the size, source level and resampling factors of one working array.

    Raises `PathStreamError(SCAN_TOO_COARSE)` when the scan is more than `MAX_UPSAMPLING` times
    coarser than a resolution that must not fall back to native.
    """
    coarsest = max(source.mpp_x, source.mpp_y)
    if resolution.native_if_coarser and coarsest > resolution.mpp:
        mpp_x, mpp_y = source.mpp_x, source.mpp_y
    else:
        if coarsest > resolution.mpp * MAX_UPSAMPLING:
            if source.finest_level_is_derived:
                raise PathStreamError(
                    ErrorCode.SCAN_TOO_COARSE,
                    f"DICOM slide {source.path.parent} has no full-resolution image: its finest "
                    f"instance is a resampled (DERIVED) level at {coarsest:g} um/px, too coarse for the "
                    f"{resolution.name} array ({resolution.mpp:g} um/px). The folder is probably "
                    "missing its level-0 instance.",
                    hint="Copy the whole DICOM series (every .dcm of the slide) from the scanner or "
                    "PACS; if the slide really was scanned this coarsely, rescan at 20x or 40x.",
                )
            raise PathStreamError(
                ErrorCode.SCAN_TOO_COARSE,
                f"Slide {source.path} was scanned at {coarsest:g} um/px, too coarse for the "
                f"{resolution.name} array ({resolution.mpp:g} um/px needs a scan of at most "
                f"{resolution.mpp * MAX_UPSAMPLING:g} um/px).",
                hint="Rescan at 20x or 40x; upsampling would invent detail the model would trust.",
            )
        mpp_x = mpp_y = resolution.mpp
    per_px_x = mpp_x / source.mpp_x
    per_px_y = mpp_y / source.mpp_y
    width0, height0 = source.dimensions
    width = max(1, round(width0 / per_px_x))
    height = max(1, round(height0 / per_px_y))
    level = source.best_level(min(per_px_x, per_px_y))
    downsample = source.level_downsample(level)
    info = ArrayInfo(
        name=resolution.name,
        mpp_x=mpp_x,
        mpp_y=mpp_y,
        width=width,
        height=height,
        level0_per_px_x=per_px_x,
        level0_per_px_y=per_px_y,
    )
    return ArrayPlan(
        info=info,
        level=level,
        factor_x=per_px_x / downsample,
        factor_y=per_px_y / downsample,
        level_size=source.level_size(level),
    )


def _render_block(
    source: SlideSource, plan: ArrayPlan, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """Compute output pixels rows x cols of `plan` from the slide (uint8 h x w x 3)."""
    (r0, r1), (c0, c1) = rows, cols
    if plan.factor_x >= 1.0 and plan.factor_y >= 1.0:
        sx0, sx1 = snapped_span(c0, c1, plan.factor_x)
        sy0, sy1 = snapped_span(r0, r1, plan.factor_y)
        block = source.read(plan.level, sx0, sy0, sx1 - sx0, sy1 - sy0)
        return snapped_area_resize(block, (c1 - c0, r1 - r0))
    sx0, sx1 = source_span(c0, c1, plan.factor_x, plan.level_size[0])
    sy0, sy1 = source_span(r0, r1, plan.factor_y, plan.level_size[1])
    if sx1 <= sx0 or sy1 <= sy0:
        return np.full((r1 - r0, c1 - c0, CHANNELS), 255, np.uint8)
    block = source.read(plan.level, sx0, sy0, sx1 - sx0, sy1 - sy0)
    return area_resample(
        block,
        src_origin=(sx0, sy0),
        out_origin=(c0, r0),
        out_size=(c1 - c0, r1 - r0),
        factor=(plan.factor_x, plan.factor_y),
        source_size=plan.level_size,
    )


def _bounded_map(
    pool: ThreadPoolExecutor, function: Callable[[int], np.ndarray], items: range, lookahead: int
) -> Iterator[np.ndarray]:
    """`pool.map` that keeps at most `lookahead` results in flight (memory stays bounded)."""
    pending: deque[Future[np.ndarray]] = deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= lookahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _write_array(
    source: SlideSource,
    plan: ArrayPlan,
    uri: str,
    fmt: TileFormat,
    ctx: tiledb.Ctx,
    pool: ThreadPoolExecutor,
    lookahead: int,
    on_band: Callable[[], None],
) -> None:
    """Compute and write one working array as a single fragment, one tile row at a time.

    Blocks are computed between snapped edges (whole source pixels, see `snapped_boundaries`);
    a computed band rarely ends exactly on a tile row, so each column chunk keeps the few rows
    it computed beyond the current tile row for the next one.
    """
    info = plan.info
    tile = fmt.tile
    tiledb.Array.create(uri, array_schema(info.width, info.height, fmt), ctx=ctx)
    columns = _pairs(snapped_boundaries(info.width, tile * COLUMN_CHUNK_TILES, plan.factor_x))
    bands = _pairs(snapped_boundaries(info.height, tile, plan.factor_y, window=SNAP_WINDOW))
    leftovers: list[np.ndarray | None] = [None] * len(columns)
    next_band = 0
    with tiledb.open(uri, "w", ctx=ctx) as array:
        writer = GlobalOrderWriter(array, info.width, info.height, tile)
        for top in range(0, info.height, tile):
            bottom = min(top + tile, info.height)
            new_bands = []
            while next_band < len(bands) and bands[next_band][0] < bottom:
                new_bands.append(bands[next_band])
                next_band += 1

            def column_block(
                j: int, top: int = top, bottom: int = bottom, new_bands: list = new_bands
            ) -> np.ndarray:
                carried = leftovers[j]
                pieces = [] if carried is None else [carried]
                pieces += [_render_block(source, plan, band, columns[j]) for band in new_bands]
                stacked = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)
                leftovers[j] = stacked[bottom - top :] if stacked.shape[0] > bottom - top else None
                return stacked[: bottom - top]

            for block in _bounded_map(pool, column_block, range(len(columns)), lookahead):
                writer.add_columns(block)
            writer.end_row()
            on_band()
        writer.finish()
        array.meta["name"] = info.name
        array.meta["mpp_x"] = info.mpp_x
        array.meta["mpp_y"] = info.mpp_y
        array.meta["level0_per_px_x"] = info.level0_per_px_x
        array.meta["level0_per_px_y"] = info.level0_per_px_y


def _pairs(edges: list[int]) -> list[tuple[int, int]]:
    return list(itertools.pairwise(edges))


def _band_count(plan: ArrayPlan, fmt: TileFormat) -> int:
    return -(-plan.info.height // fmt.tile)


def _reusable(
    uri: str, sha256: str, mpp: float | None, needed: Sequence[str], ctx: tiledb.Ctx
) -> tuple[TileStore | None, float | None]:
    """(the existing complete store when it can serve this ingest, the operator mpp to rebuild with).

    A store is reused when it holds the same content (sha256) at this ingest version, with every
    array `needed` and the resolution asked for (`mpp`, or any when None): so a store made by
    `pathstream ingest --mpp` serves `pathstream run` without `--mpp`. A store of the same content
    that cannot serve (older version, missing array, other mpp) or an unfinished one is cleared;
    when its mpp came from the operator and none is given now, that mpp is kept for the rebuild.
    A complete store of other content is refused (`STORE_CONFLICT`)."""
    if tiledb.object_type(uri, ctx=ctx) is None:
        return None, mpp
    meta = read_store_meta(uri, ctx)
    complete = bool(meta.get(MetaKey.COMPLETE))
    if complete and meta.get(MetaKey.SHA256) != sha256:
        raise PathStreamError(
            ErrorCode.STORE_CONFLICT,
            f"Store {uri} already holds a different slide (sha256 {meta.get(MetaKey.SHA256)}, this "
            f"one is {sha256}).",
            hint="Give this slide its own --slide-id, or delete the old store if it is obsolete.",
        )
    if complete and meta.get(MetaKey.MPP_SOURCE) == "operator" and mpp is None:
        mpp = float(meta[MetaKey.MPP_X])
    if complete and meta.get(MetaKey.INGEST_VERSION) == INGEST_VERSION:
        store = TileStore.open(uri, ctx=ctx)
        same_mpp = mpp is None or all(abs(m - mpp) <= 1e-9 * mpp for m in store.mpp)
        if same_mpp and set(needed) <= set(store.arrays):
            return store, mpp
    log.warning("store_rebuilt", store_uri=uri, reason="incomplete, older, other mpp or missing arrays")
    tiledb.VFS(ctx=ctx).remove_dir(uri)
    return None, mpp


def _reused_result(store: TileStore, started: float) -> IngestResult:
    meta = store.meta
    width0, height0 = store.level0_size
    return IngestResult(
        slide_id=store.slide_id,
        store_uri=store.uri,
        sha256=store.sha256,
        mpp_source=meta.get(MetaKey.MPP_SOURCE, "metadata"),
        mpp_x=store.mpp[0],
        mpp_y=store.mpp[1],
        vendor=str(meta.get(MetaKey.VENDOR, "unknown")),
        level0_width=width0,
        level0_height=height0,
        arrays=list(store.arrays.values()),
        reused=True,
        seconds=time.perf_counter() - started,
    )


def ingest_slide(
    path: Path,
    store_root: str,
    slide_id: str,
    specimen: Specimen = Specimen.LYMPH_NODE,
    *,
    mpp: float | None = None,
    sha256: str | None = None,
    allowed_roots: Sequence[str] | None = None,
    fmt: TileFormat = DEFAULT_TILE_FORMAT,
    limits: SlideLimits | None = None,
    ctx: tiledb.Ctx | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> IngestResult:
    """Write (or reuse) the tile store of the slide at `path` under `store_root`/`slide_id`.

    `mpp` overrides the slide's level-0 um/px; `sha256` skips hashing when the caller already
    has it; `allowed_roots`, when given, refuses slides outside them; `limits` bound what the
    header may claim (`SLIDE_TOO_LARGE` before any pixel is read). Returns what was written or
    reused. Raises `PathStreamError` for every input problem (see `open_slide` and `plan_array`).
    """
    started = time.perf_counter()
    if allowed_roots is not None:
        check_allowed(str(path), allowed_roots)
    ctx = ctx or tiledb.Ctx()
    check_slide_file(path)
    digest = sha256 or slide_sha256(path)
    uri = store_uri(store_root, slide_id)
    resolutions = working_resolutions(specimen)
    existing, mpp = _reusable(uri, digest, mpp, [r.name for r in resolutions], ctx)
    if existing is not None:
        log.info("store_reused", slide_id=slide_id, store_uri=uri)
        return _reused_result(existing, started)
    source = open_slide(path, mpp)
    try:
        plans = [plan_array(source, r) for r in resolutions]
        check_slide_size(path, source.dimensions, [p.info for p in plans], fmt, limits or SlideLimits())
        _write_store(source, plans, uri, ctx, fmt, workers, progress, slide_id, specimen, str(path), digest)
        width0, height0 = source.dimensions
        written = IngestResult(
            slide_id=slide_id,
            store_uri=uri,
            sha256=digest,
            mpp_source=source.mpp_source,
            mpp_x=source.mpp_x,
            mpp_y=source.mpp_y,
            vendor=source.vendor,
            level0_width=width0,
            level0_height=height0,
            arrays=[p.info for p in plans],
            reused=False,
            seconds=time.perf_counter() - started,
        )
        log.info(
            "slide_ingested",
            slide_id=slide_id,
            store_uri=uri,
            megapixels=round(written.megapixels, 1),
            seconds=round(written.seconds, 2),
        )
        return written
    finally:
        source.close()


def _write_store(
    source: SlideSource,
    plans: list[ArrayPlan],
    uri: str,
    ctx: tiledb.Ctx,
    fmt: TileFormat,
    workers: int,
    progress: Progress | None,
    slide_id: str,
    specimen: Specimen,
    source_uri: str,
    sha256: str,
) -> None:
    total = sum(_band_count(p, fmt) for p in plans)
    done = 0

    def on_band() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    tiledb.group_create(uri, ctx=ctx)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for plan in plans:
                _write_array(source, plan, f"{uri}/{plan.info.name}", fmt, ctx, pool, 2 * workers, on_band)
        width0, height0 = source.dimensions
        with tiledb.Group(uri, "w", ctx=ctx) as group:
            for plan in plans:
                group.add(plan.info.name, name=plan.info.name, relative=True)
            group.meta[MetaKey.INGEST_VERSION] = INGEST_VERSION
            group.meta[MetaKey.SLIDE_ID] = slide_id
            group.meta[MetaKey.SOURCE_URI] = source_uri
            group.meta[MetaKey.SHA256] = sha256
            group.meta[MetaKey.SPECIMEN] = specimen.value
            group.meta[MetaKey.VENDOR] = source.vendor
            group.meta[MetaKey.MPP_X] = source.mpp_x
            group.meta[MetaKey.MPP_Y] = source.mpp_y
            group.meta[MetaKey.MPP_SOURCE] = source.mpp_source
            group.meta[MetaKey.WIDTH] = width0
            group.meta[MetaKey.HEIGHT] = height0
            group.meta[MetaKey.ARRAYS] = json.dumps([vars(p.info) for p in plans])
            group.meta[MetaKey.TILE_FORMAT] = fmt.to_json()
            group.meta[MetaKey.CREATED_AT] = utc_now().isoformat()
        # Written last, in its own commit: readers trust nothing without it.
        with tiledb.Group(uri, "w", ctx=ctx) as group:
            group.meta[MetaKey.COMPLETE] = 1
    except BaseException:
        tiledb.VFS(ctx=ctx).remove_dir(uri)
        raise
