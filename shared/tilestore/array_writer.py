"""Write a dense RGB array as ONE TileDB fragment, tile row by tile row, in bounded memory.

TileDB's global-order writes accept the cells tile by tile (tiles in row-major order, cells
row-major inside each tile) over several submissions and seal them into a single fragment at
`finalize`. Global order needs a tile-aligned domain, so arrays are created padded to whole tiles
(the padding is white and readers clip to the true size). Callers hand over column blocks of one
tile row from left to right; only a partial tile's worth of columns is ever held here.
"""

from __future__ import annotations

import math

import numpy as np
import tiledb
from tiledb import libtiledb as lt

from pathstream.shared.tilestore.layout import CHANNELS

WHITE = 255


def padded(size: int, tile: int) -> int:
    """`size` rounded up to whole tiles."""
    return math.ceil(size / tile) * tile


class GlobalOrderWriter:
    """Feeds one open (mode "w") TileDB dense array whose domain is whole tiles."""

    def __init__(self, array: tiledb.DenseArray, width: int, height: int, tile: int) -> None:
        self.tile = tile
        self.width = width
        self.padded_width = padded(width, tile)
        self.padded_height = padded(height, tile)
        self._context = lt.Context(array.ctx)
        self._query = lt.Query(self._context, array.array, lt.QueryType.WRITE)
        self._query.layout = lt.LayoutType.GLOBAL_ORDER
        subarray = lt.Subarray(self._context, array.array)
        subarray._add_dim_range(0, (0, self.padded_height - 1))
        subarray._add_dim_range(1, (0, self.padded_width * CHANNELS - 1))
        self._query.set_subarray(subarray)
        self._attribute = array.schema.attr(0)._internal_name.encode("utf-8")
        self._pending = np.empty((tile, 0, CHANNELS), np.uint8)
        self._column = 0
        self._rows_done = 0

    def add_columns(self, block: np.ndarray) -> None:
        """Append the next columns (uint8 rows x cols x 3, rows <= tile) of the current tile row."""
        rows, cols = block.shape[:2]
        if rows < self.tile:  # the last tile row of the image: pad with glass
            block = np.concatenate([block, np.full((self.tile - rows, cols, CHANNELS), WHITE, np.uint8)])
        self._pending = np.concatenate([self._pending, block], axis=1)
        self._column += cols
        self._emit(complete_only=True)

    def end_row(self) -> None:
        """Close the current tile row: pad its last tile with white and write it."""
        missing = self.padded_width - self._column
        if missing:
            self._pending = np.concatenate(
                [self._pending, np.full((self.tile, missing, CHANNELS), WHITE, np.uint8)], axis=1
            )
            self._column = self.padded_width
        self._emit(complete_only=False)
        if self._column != self.padded_width:
            raise RuntimeError(f"tile row ended at column {self._column}, expected {self.padded_width}")
        self._column = 0
        self._rows_done += 1

    def finish(self) -> None:
        """Pad missing tile rows with white and seal the fragment."""
        while self._rows_done * self.tile < self.padded_height:
            self.end_row()
        self._query.finalize()

    def _emit(self, complete_only: bool) -> None:
        tiles = self._pending.shape[1] // self.tile
        if tiles == 0:
            return
        if not complete_only and self._pending.shape[1] % self.tile:
            raise RuntimeError("a tile row must end on a tile boundary")
        ready = self._pending[:, : tiles * self.tile]
        # Global order: tile after tile, each tile's cells row-major (3 interleaved bytes per pixel).
        cells = np.ascontiguousarray(
            ready.reshape(self.tile, tiles, self.tile * CHANNELS).transpose(1, 0, 2)
        ).reshape(-1)
        self._query.set_data_buffer(self._attribute, cells, cells.size)
        self._query._submit()
        self._pending = self._pending[:, tiles * self.tile :].copy()
