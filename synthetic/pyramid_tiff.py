"""Write an OpenSlide-readable pyramidal TIFF from a tile renderer, in bounded memory.

Level 0 is rendered tile by tile in row-major order and written as the first IFD. While it is
written, each finished row of tiles is reduced 4x (area average) into the next level's row buffer;
full buffers spill to a temporary raw file beside the output. The reduced levels are then written
as further top-level IFDs from those files, one row of tiles at a time. Memory therefore grows with
the slide's width (one row of tiles per level), never with its area. Resolution tags carry the mpp,
so OpenSlide reports `openslide.mpp-x/y` (generic-tiff format).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import tifffile

TILE = 512
LEVEL_FACTOR = 4
SMALLEST_LEVEL = 1024
JPEG_QUALITY = 90

TileRenderer = Callable[[int, int, int, int], np.ndarray]
"""(x, y, width, height) in level-0 pixels -> uint8 height x width x 3 RGB."""


def level_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """(width, height) of each pyramid level: 4x reductions until the longer side <= 1024."""
    sizes = [(width, height)]
    while max(sizes[-1]) > SMALLEST_LEVEL:
        w, h = sizes[-1]
        sizes.append((math.ceil(w / LEVEL_FACTOR), math.ceil(h / LEVEL_FACTOR)))
    return sizes


class _LevelSpill:
    """Accumulates one reduced level row by row and stores full tile rows in a raw file."""

    def __init__(self, path: Path, width: int, height: int) -> None:
        self.path = path
        self.width = width
        self.height = height
        self.padded_width = math.ceil(width / TILE) * TILE
        self.buffer = np.full((TILE, self.padded_width, 3), 255, np.uint8)
        self.filled = 0
        self.rows_written = 0
        self.handle = path.open("wb")

    def add_rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """Append reduced rows (uint8 n x >=width x 3); return completed tile rows for the next level."""
        rows = rows[:, : self.padded_width]
        done: list[np.ndarray] = []
        start = 0
        while start < rows.shape[0]:
            take = min(TILE - self.filled, rows.shape[0] - start)
            self.buffer[self.filled : self.filled + take, : rows.shape[1]] = rows[start : start + take]
            self.filled += take
            start += take
            if self.filled == TILE:
                done.append(self._flush())
        return done

    def _flush(self) -> np.ndarray:
        band = self.buffer.copy()
        band.tofile(self.handle)
        self.rows_written += self.filled
        self.buffer[:] = 255
        self.filled = 0
        return band

    def finish(self) -> list[np.ndarray]:
        """Flush a last partial tile row (padded with white); close the file."""
        done = [self._flush()] if self.filled else []
        self.handle.close()
        return done

    def tile_rows(self) -> Iterator[np.ndarray]:
        """Read the stored level back one tile row at a time."""
        band_bytes = TILE * self.padded_width * 3
        with self.path.open("rb") as handle:
            while chunk := handle.read(band_bytes):
                yield np.frombuffer(chunk, np.uint8).reshape(TILE, self.padded_width, 3)


def _reduce(band: np.ndarray) -> np.ndarray:
    """Area-average a tile row by LEVEL_FACTOR in both directions."""
    height, width = band.shape[:2]
    return cv2.resize(band, (width // LEVEL_FACTOR, height // LEVEL_FACTOR), interpolation=cv2.INTER_AREA)


def _tiles_of(band: np.ndarray, width: int) -> Iterator[np.ndarray]:
    for x in range(0, math.ceil(width / TILE) * TILE, TILE):
        yield band[:, x : x + TILE]


def write_pyramid(
    path: Path,
    width: int,
    height: int,
    mpp: float,
    render: TileRenderer,
    progress: Callable[[int, int], None] | None = None,
    description: str = "",
) -> list[tuple[int, int]]:
    """Render a width x height slide at `mpp` um/px tile by tile and write it to `path`.

    Returns the (width, height) of each level written. `progress` gets (tile rows done, total).
    """
    sizes = level_sizes(width, height)
    spills = [
        _LevelSpill(path.with_name(f".{path.name}.level{i}.raw"), w, h)
        for i, (w, h) in enumerate(sizes[1:], start=1)
    ]
    rows0 = math.ceil(height / TILE)
    total_rows = sum(math.ceil(h / TILE) for _, h in sizes)
    done_rows = 0

    def cascade(level: int, band: np.ndarray) -> None:
        """Feed a finished tile row of `level` into the next level's spill, recursively."""
        if level >= len(spills):
            return
        for finished in spills[level].add_rows(_reduce(band)):
            cascade(level + 1, finished)

    def level0_tiles() -> Iterator[np.ndarray]:
        nonlocal done_rows
        padded = math.ceil(width / TILE) * TILE
        step = TILE // LEVEL_FACTOR
        for row in range(rows0):
            # Each tile is reduced as soon as it is rendered: only a quarter-height strip of the
            # next level is held, never a full-width row of level-0 tiles.
            reduced = np.empty((step, padded // LEVEL_FACTOR, 3), np.uint8)
            for x in range(0, padded, TILE):
                tile = render(x, row * TILE, TILE, TILE)
                reduced[:, x // LEVEL_FACTOR : x // LEVEL_FACTOR + step] = _reduce(tile)
                if x + TILE >= padded:
                    # Hand the strip on *before* the row's last tile is yielded: tifffile stops
                    # pulling after the level's last tile, so code after that yield never runs.
                    if spills:
                        for finished in spills[0].add_rows(reduced):
                            cascade(1, finished)
                    done_rows += 1
                    if progress:
                        progress(done_rows, total_rows)
                yield tile

    try:
        with tifffile.TiffWriter(path, bigtiff=True) as tif:
            _write_level(tif, level0_tiles(), sizes[0], mpp, 0, description)
            for index, spill in enumerate(spills):
                for finished in spill.finish():
                    cascade(index + 1, finished)
            for index, spill in enumerate(spills, start=1):

                def stored_tiles(spill: _LevelSpill = spill) -> Iterator[np.ndarray]:
                    nonlocal done_rows
                    for band in spill.tile_rows():
                        yield from _tiles_of(band, spill.width)
                        done_rows += 1
                        if progress:
                            progress(done_rows, total_rows)

                _write_level(tif, stored_tiles(), sizes[index], mpp * LEVEL_FACTOR**index, index, "")
    finally:
        for spill in spills:
            if not spill.handle.closed:
                spill.handle.close()
            spill.path.unlink(missing_ok=True)
    return sizes


def _write_level(
    tif: tifffile.TiffWriter,
    tiles: Iterator[np.ndarray],
    size: tuple[int, int],
    mpp: float,
    index: int,
    description: str,
) -> None:
    width, height = size
    pixels_per_cm = 1e4 / mpp
    tif.write(
        tiles,
        shape=(height, width, 3),
        dtype=np.uint8,
        tile=(TILE, TILE),
        photometric="rgb",
        compression="jpeg",
        compressionargs={"level": JPEG_QUALITY},
        resolution=(pixels_per_cm, pixels_per_cm),
        resolutionunit="CENTIMETER",
        subfiletype=0 if index == 0 else 1,
        description=description or None,
        metadata=None,
    )
