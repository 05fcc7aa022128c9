"""Slide files that are wrong in ways a scanner, a copy or a person can make them, made on demand.

Each function writes one kind of bad slide under a folder and returns its path. The real slides
they start from are in `../shared/data/real` (`tests.conftest.SHARED_DATA`).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile

TILE = 1024


def huge_header_tiff(path: Path, side: int = 1_000_000, mpp: float = 0.25) -> Path:
    """A tiled RGB TIFF whose header claims `side` x `side` px at `mpp` um/px, every tile the same
    deflated white tile: a few MB on disk (the tile tables), a terapixel to anyone who believes it."""
    tiles = (-(-side // TILE)) ** 2
    white = zlib.compress(b"\xff" * (TILE * TILE * 3), 9)
    per_cm = round(1e4 / mpp)
    entries: list[tuple[int, int, int, bytes]] = []  # (tag, type, count, value or payload)
    payloads: list[tuple[int, bytes]] = []

    def entry(tag: int, kind: int, values: list[int], fmt: str) -> None:
        data = struct.pack("<" + fmt * len(values), *values)
        entries.append((tag, kind, len(values) if kind != 5 else len(values) // 2, data))

    header_end = 8
    entry(256, 4, [side], "I")
    entry(257, 4, [side], "I")
    entry(258, 3, [8, 8, 8], "H")
    entry(259, 3, [8], "H")
    entry(262, 3, [2], "H")
    entry(277, 3, [3], "H")
    entry(282, 5, [per_cm, 1], "I")
    entry(283, 5, [per_cm, 1], "I")
    entry(284, 3, [1], "H")
    entry(296, 3, [3], "H")
    entry(322, 3, [TILE], "H")
    entry(323, 3, [TILE], "H")
    ifd_size = 2 + 12 * (len(entries) + 2) + 4
    cursor = header_end + ifd_size
    tile_at = cursor
    cursor += len(white)
    entry(324, 4, [tile_at] * tiles, "I")
    entry(325, 4, [len(white)] * tiles, "I")
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, data in sorted(entries):
        if len(data) <= 4:
            ifd += struct.pack("<HHI", tag, kind, count) + data.ljust(4, b"\x00")
        else:
            ifd += struct.pack("<HHII", tag, kind, count, cursor)
            payloads.append((cursor, data))
            cursor += len(data) + len(data) % 2
    ifd += struct.pack("<I", 0)
    with path.open("wb") as handle:
        handle.write(b"II*\x00" + struct.pack("<I", header_end) + ifd + white)
        for offset, data in payloads:
            handle.seek(offset)
            handle.write(data)
    return path


def tiled_tiff(path: Path, rgb: np.ndarray, mpp: float) -> Path:
    """Write uint8 H x W x 3 `rgb` as a tiled (256 px), deflated TIFF OpenSlide opens as generic-tiff,
    with its resolution tag saying `mpp` um/px."""
    per_cm = 1e4 / mpp
    tifffile.imwrite(
        path,
        rgb,
        tile=(256, 256),
        photometric="rgb",
        compression="zlib",
        resolution=(per_cm, per_cm),
        resolutionunit="CENTIMETER",
    )
    return path


def restained(rgb: np.ndarray, stain_od: tuple[float, float, float]) -> np.ndarray:
    """`rgb` (uint8 H x W x 3 brightfield) with every pixel's absorption moved onto one stain
    vector `stain_od` (optical density per RGB channel, e.g. DAB's): the same tissue, another stain."""
    density = -np.log10(np.maximum(rgb.astype(np.float64), 1.0) / 255.0).sum(axis=2, keepdims=True)
    vector = np.asarray(stain_od, np.float64) / np.sum(stain_od)
    return np.clip(255.0 * 10 ** (-density * vector), 0, 255).round().astype(np.uint8)
