"""The tile store's contract: one TileDB group per slide, one dense RGB array per working resolution.

Group `{store_root}/{slide_id}` holds arrays named after their resolution (`20x` at 0.46 um/px for
ESCNN, `1.25x` at 7.36 um/px for the detector, `marrow_roi` at about 0.2 um/px for smears). Each
array is 2-D uint8 with dimensions `y` (rows) and `x` (columns x 3, RGB interleaved, which is the
layout TileDB's WebP filter expects), so a region of W pixels is 3W cells wide. Group metadata
describes the source slide; the `complete` flag is written last, so a store whose ingest died
half-way is never mistaken for a whole one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import tiledb

from pathstream.shared.events import Specimen
from pathstream.shared.settings import PathStreamSettings

INGEST_VERSION = 1
"""Bumped whenever ingestion would write different pixels for the same slide."""

CHANNELS = 3


@dataclass(frozen=True)
class WorkingResolution:
    """A named physical resolution that a service reads at."""

    name: str
    mpp: float
    native_if_coarser: bool = False
    """Store at the scan's own resolution when it is coarser than `mpp` instead of upsampling."""


ESCNN_20X = WorkingResolution("20x", 0.46)
DETECTOR_1_25X = WorkingResolution("1.25x", 7.36)
MARROW_ROI = WorkingResolution("marrow_roi", 0.2, native_if_coarser=True)

MAX_UPSAMPLING = 2.0
"""A scan may be at most this much coarser than a working resolution it is stored at: the 20x
array of a 0.5 um/px (20x) scan is upsampled by 1.09, but a 5x scan cannot be made into 20x."""


def working_resolutions(specimen: Specimen) -> tuple[WorkingResolution, ...]:
    """The arrays a slide of `specimen` gets: 20x and 1.25x always, plus the marrow ROI array."""
    if specimen == Specimen.BONE_MARROW:
        return (ESCNN_20X, DETECTOR_1_25X, MARROW_ROI)
    return (ESCNN_20X, DETECTOR_1_25X)


Codec = Literal["zstd", "webp-lossless", "webp-lossy"]


@dataclass(frozen=True)
class TileFormat:
    """How an array is tiled and compressed on disk."""

    tile: int = 512
    codec: Codec = "zstd"
    level: int = 7
    """zstd level, or WebP quality (0-100) for lossy WebP."""

    @classmethod
    def from_settings(cls, settings: PathStreamSettings) -> TileFormat:
        """The format `PATHSTREAM_TILE_CODEC/SIZE/LEVEL` ask for."""
        return cls(tile=settings.tile_size, codec=settings.tile_codec, level=settings.tile_level)

    def filters(self) -> tiledb.FilterList:
        """The TileDB filter pipeline for the pixel attribute."""
        if self.codec == "zstd":
            return tiledb.FilterList([tiledb.ZstdFilter(level=self.level)])
        rgb = tiledb.filter.lt.WebpInputFormat.WEBP_RGB
        if self.codec == "webp-lossless":
            return tiledb.FilterList([tiledb.WebpFilter(input_format=rgb, lossless=True)])
        return tiledb.FilterList(
            [tiledb.WebpFilter(input_format=rgb, quality=float(self.level), lossless=False)]
        )

    def to_json(self) -> str:
        """JSON for store metadata."""
        return json.dumps(asdict(self))


DEFAULT_TILE_FORMAT = TileFormat()
"""Lossless zstd in 512-pixel tiles, chosen by measurement (benchmarks/tile_format.py; numbers in
BENCHMARKS.md): no second lossy codec on top of the scanner's JPEG, 2-3x faster ingest and reads
than lossless WebP, which stores 1.6x smaller; 512 tiles read as fast as 256 with a quarter of the
tiles. Sites short of storage can choose lossy WebP (about 5x smaller again) through settings."""

PIXEL_ATTRIBUTE = "rgb"


def array_schema(width: int, height: int, fmt: TileFormat) -> tiledb.ArraySchema:
    """Dense schema for a width x height RGB image stored as rows x (3 * columns) uint8.

    The domain is padded to whole tiles (global-order writes need that); readers clip to the true
    width and height, which the store's metadata records.
    """
    rows = -(-height // fmt.tile) * fmt.tile
    cols = -(-width // fmt.tile) * fmt.tile
    domain = tiledb.Domain(
        tiledb.Dim("y", domain=(0, rows - 1), tile=fmt.tile, dtype=np.uint32),
        tiledb.Dim("x", domain=(0, cols * CHANNELS - 1), tile=fmt.tile * CHANNELS, dtype=np.uint32),
    )
    return tiledb.ArraySchema(
        domain=domain,
        attrs=[tiledb.Attr(PIXEL_ATTRIBUTE, dtype=np.uint8, filters=fmt.filters())],
        sparse=False,
        cell_order="row-major",
        tile_order="row-major",
    )


@dataclass(frozen=True)
class ArrayInfo:
    """One working-resolution array of a store: pixel size, mpp and its level-0 mapping."""

    name: str
    mpp_x: float
    mpp_y: float
    width: int
    height: int
    level0_per_px_x: float
    level0_per_px_y: float

    @property
    def mpp(self) -> float:
        """The array's resolution in um/px (x and y agree to within the scan's anisotropy)."""
        return (self.mpp_x + self.mpp_y) / 2

    def summary(self) -> dict[str, Any]:
        """`{name, mpp, width, height}` as reported by `pathstream ingest --json`."""
        return {"name": self.name, "mpp": round(self.mpp, 6), "width": self.width, "height": self.height}


class MetaKey:
    """Group metadata keys (strings, so other tools can read them)."""

    COMPLETE = "complete"
    INGEST_VERSION = "ingest_version"
    SLIDE_ID = "slide_id"
    SOURCE_URI = "source_uri"
    SHA256 = "sha256"
    SPECIMEN = "specimen"
    VENDOR = "vendor"
    MPP_X = "mpp_x"
    MPP_Y = "mpp_y"
    MPP_SOURCE = "mpp_source"
    WIDTH = "level0_width"
    HEIGHT = "level0_height"
    ARRAYS = "arrays"
    TILE_FORMAT = "tile_format"
    CREATED_AT = "created_at"
