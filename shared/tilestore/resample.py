"""Area-averaging resampling of slide blocks.

`snapped_area_resize` (OpenCV, fast) is used to reduce resolution; `area_resample` (exact,
numpy) to raise it, where OpenCV's INTER_AREA would fall back to bilinear interpolation.

Exact area-averaging: the same pixels however an image is cut into blocks.

Output pixel `j` of an axis covers the source interval `[j * f, (j + 1) * f)` in *global* source
coordinates (`f` = source pixels per output pixel, any positive real). Its value is the mean of the
source over that interval, partial source pixels weighted by their overlap (a box filter). Because
the intervals are global, a slide resampled block by block has no seams. The same formula
upsamples (f < 1) as piecewise-constant with exact blending at pixel borders.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

WHITE = 255


def snapped_boundaries(size: int, step: int, factor: float, window: int = 32) -> list[int]:
    """Block edges over `size` output pixels, about every `step`, each moved (by up to `window`)
    to where `edge * factor` is closest to a whole source pixel.

    Blocks between such edges are (nearly) integer source rectangles, so resizing each block on
    its own puts every output pixel where the whole-image resize would, to within the residual
    fraction (typically under 0.01 source px).
    """
    edges = [0]
    for nominal in range(step, size, step):
        candidates = np.arange(max(edges[-1] + 1, nominal - window), min(size - 1, nominal + window) + 1)
        if candidates.size == 0:
            continue
        positions = candidates * factor
        edges.append(int(candidates[np.argmin(np.abs(positions - np.rint(positions)))]))
    edges.append(size)
    return edges


def snapped_span(out_start: int, out_stop: int, factor: float) -> tuple[int, int]:
    """Source pixels [start, stop) that `snapped_area_resize` maps onto output [out_start, out_stop):
    the whole pixels nearest to the exact edges. The span may run past the source's end; the
    reader fills that part with white glass, so the last block keeps the true scale too."""
    return round(out_start * factor), max(round(out_start * factor) + 1, round(out_stop * factor))


def snapped_area_resize(block: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Area-average a source block (uint8 HxWx3, a `snapped_span` rectangle) to out_size (w, h)."""
    return cv2.resize(block, out_size, interpolation=cv2.INTER_AREA)


def source_span(out_start: int, out_stop: int, factor: float, source_size: int) -> tuple[int, int]:
    """Return the [start, stop) source pixels output pixels [out_start, out_stop) draw from,
    clipped to [0, source_size)."""
    start = max(0, math.floor(out_start * factor))
    stop = min(source_size, math.ceil(out_stop * factor))
    return start, max(start, stop)


def _area_rows(
    data: np.ndarray, src_start: int, out_start: int, n_out: int, factor: float, source_size: int
) -> np.ndarray:
    """Area-resample the rows (axis 0) of 2-D `data`, which holds source rows
    [src_start, src_start + len); returns float32 n_out x columns.

    Each output row depends only on the source rows it covers, computed the same way in whatever
    block they arrive, so blockwise and whole-image results are identical.
    """
    length = data.shape[0]
    edges = (out_start + np.arange(n_out + 1, dtype=np.float64)) * factor
    edges = np.clip(np.clip(edges, 0.0, float(source_size)) - src_start, 0.0, float(length))
    lo, hi = edges[:-1], edges[1:]
    width = hi - lo
    valid = width > 0
    first = np.minimum(np.floor(lo).astype(np.intp), length - 1)
    src_first = data[first].astype(np.float32)
    if factor < 1.0:
        # Upsampling: an output row spans at most two source rows.
        second = np.minimum(first + 1, length - 1)
        split = np.minimum(hi, first + 1.0)
        total = src_first
        total *= (split - lo).astype(np.float32)[:, None]
        total += np.maximum(hi - split, 0.0).astype(np.float32)[:, None] * data[second]
    else:
        # Downsampling: whole source rows by segment sums (one pass), then the partly covered
        # first and last rows by their covered fraction. Valid intervals are at least one row
        # long, so consecutive segments neither overlap nor leave gaps.
        last = np.floor(hi).astype(np.intp)
        keep = np.flatnonzero(valid)
        accumulate = np.uint32 if data.dtype == np.uint8 else np.float32
        full = np.zeros(src_first.shape, np.float32)
        if keep.size:
            segments = np.add.reduceat(data[: last[keep[-1]]], first[keep], axis=0, dtype=accumulate)
            full[keep] = segments
        has_last = last < length
        src_first *= (lo - first).astype(np.float32)[:, None]
        src_last = data[np.minimum(last, length - 1)].astype(np.float32)
        src_last *= np.where(has_last, hi - last, 0.0).astype(np.float32)[:, None]
        total = full
        total -= src_first
        total += src_last
    with np.errstate(invalid="ignore", divide="ignore"):
        total /= width.astype(np.float32)[:, None]
    total[~valid] = WHITE
    return total


def area_resample(
    block: np.ndarray,
    src_origin: tuple[int, int],
    out_origin: tuple[int, int],
    out_size: tuple[int, int],
    factor: tuple[float, float],
    source_size: tuple[int, int],
) -> np.ndarray:
    """Area-resample a source block to an output block.

    block: uint8 HxWx3 source pixels whose top-left is source pixel `src_origin` = (x, y).
    out_origin, out_size: (x, y) and (width, height) of the wanted output pixels.
    factor: (fx, fy) source pixels per output pixel; source_size: (width, height) of the whole
    source, beyond which nothing exists (output pixels wholly outside become white).
    Returns uint8 out_height x out_width x 3. The block must cover `source_span` of the output.
    """
    height, width, channels = block.shape
    out_w, out_h = out_size
    # Columns first, each as a contiguous row of (height x channels) values.
    by_column = np.ascontiguousarray(block.transpose(1, 0, 2)).reshape(width, height * channels)
    cols = _area_rows(by_column, src_origin[0], out_origin[0], out_w, factor[0], source_size[0])
    by_row = np.ascontiguousarray(cols.reshape(out_w, height, channels).transpose(1, 0, 2))
    rows = _area_rows(
        by_row.reshape(height, out_w * channels),
        src_origin[1],
        out_origin[1],
        out_h,
        factor[1],
        source_size[1],
    )
    return np.clip(np.rint(rows), 0, 255).astype(np.uint8).reshape(out_h, out_w, channels)
