"""Read a slide's tile store: uint8 RGB regions at a working resolution, and coordinate mapping.

Works for local paths and any URI TileDB's VFS understands (s3://, ...), given a matching context
(`pathstream.shared.tilestore.context.tiledb_context`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import tiledb

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.tilestore.layout import CHANNELS, PIXEL_ATTRIBUTE, ArrayInfo, MetaKey

WHITE = 255


def read_store_meta(uri: str, ctx: tiledb.Ctx | None = None) -> dict[str, Any]:
    """Return a store group's metadata as a dict; {} when the group has none yet."""
    with tiledb.Group(uri, "r", ctx=ctx) as group:
        return {key: group.meta[key] for key in group.meta}


@dataclass
class StoreArray:
    """One working-resolution image of a slide."""

    info: ArrayInfo
    uri: str
    ctx: tiledb.Ctx | None

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def height(self) -> int:
        return self.info.height

    @property
    def mpp(self) -> float:
        return self.info.mpp

    def read(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        """Return pixels [x, x+width) x [y, y+height) of this array as uint8 height x width x 3 RGB.

        Coordinates are in this array's pixels; parts outside the image are white (glass).
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"region size must be positive, got {width}x{height}")
        out = np.full((height, width, CHANNELS), WHITE, np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, self.width), min(y + height, self.height)
        if x1 <= x0 or y1 <= y0:
            return out
        with tiledb.open(self.uri, "r", ctx=self.ctx) as array:
            cells = array[y0:y1, x0 * CHANNELS : x1 * CHANNELS][PIXEL_ATTRIBUTE]
        out[y0 - y : y1 - y, x0 - x : x1 - x] = cells.reshape(y1 - y0, x1 - x0, CHANNELS)
        return out

    def read_all(self) -> np.ndarray:
        """The whole array as uint8 H x W x 3 (only for the small, coarse resolutions)."""
        return self.read(0, 0, self.width, self.height)

    def to_level0(self, x: float, y: float) -> tuple[float, float]:
        """Map a point in this array's pixels to level-0 pixels of the source slide."""
        return x * self.info.level0_per_px_x, y * self.info.level0_per_px_y

    def from_level0(self, x: float, y: float) -> tuple[float, float]:
        """Map a point in level-0 pixels of the source slide to this array's pixels."""
        return x / self.info.level0_per_px_x, y / self.info.level0_per_px_y

    def bbox_from_level0(self, x: int, y: int, width: int, height: int) -> tuple[int, int, int, int]:
        """The smallest box of this array's pixels covering a level-0 box; (x, y, width, height)."""
        left, top = self.from_level0(x, y)
        right, bottom = self.from_level0(x + width, y + height)
        x0, y0 = int(np.floor(left)), int(np.floor(top))
        return x0, y0, max(1, int(np.ceil(right)) - x0), max(1, int(np.ceil(bottom)) - y0)


@dataclass
class TileStore:
    """A complete slide store: its provenance and its working-resolution arrays."""

    uri: str
    meta: dict[str, Any]
    arrays: dict[str, ArrayInfo]
    ctx: tiledb.Ctx | None = None

    @classmethod
    def open(cls, uri: str, ctx: tiledb.Ctx | None = None) -> TileStore:
        """Open the store at `uri`. Raises `PathStreamError(STORE_MISSING)` when there is no
        complete store there (never ingested, or the ingest did not finish)."""
        if tiledb.object_type(uri, ctx=ctx) != "group":
            raise PathStreamError(
                ErrorCode.STORE_MISSING,
                f"There is no tile store at {uri}.",
                hint="Ingest the slide first (pathstream ingest SLIDE --store ROOT).",
                retriable=True,
            )
        meta = read_store_meta(uri, ctx)
        if not meta.get(MetaKey.COMPLETE):
            raise PathStreamError(
                ErrorCode.STORE_MISSING,
                f"The tile store at {uri} is incomplete (its ingest did not finish).",
                hint="Ingest the slide again; the partial store is replaced.",
                retriable=True,
            )
        arrays = {a["name"]: ArrayInfo(**a) for a in json.loads(meta[MetaKey.ARRAYS])}
        return cls(uri=uri, meta=meta, arrays=arrays, ctx=ctx)

    @property
    def slide_id(self) -> str:
        return str(self.meta[MetaKey.SLIDE_ID])

    @property
    def sha256(self) -> str:
        return str(self.meta[MetaKey.SHA256])

    @property
    def level0_size(self) -> tuple[int, int]:
        """(width, height) of the source slide's level 0."""
        return int(self.meta[MetaKey.WIDTH]), int(self.meta[MetaKey.HEIGHT])

    @property
    def mpp(self) -> tuple[float, float]:
        """The source slide's level-0 (mpp_x, mpp_y) in um/px."""
        return float(self.meta[MetaKey.MPP_X]), float(self.meta[MetaKey.MPP_Y])

    def array(self, name: str) -> StoreArray:
        """The working array `name` (`20x`, `1.25x`, `marrow_roi`)."""
        if name not in self.arrays:
            raise PathStreamError(
                ErrorCode.STORE_MISSING,
                f"The tile store at {self.uri} has no {name!r} array (it has "
                f"{', '.join(sorted(self.arrays))}).",
                hint="Ingest the slide with the specimen type that needs this resolution.",
            )
        return StoreArray(info=self.arrays[name], uri=f"{self.uri}/{name}", ctx=self.ctx)
