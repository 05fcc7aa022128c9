"""Occlusion sensitivity maps (OSM): which parts of an ROI the marrow classifier relied on.

Eckardt et al. explained its calls with OSM (Zeiler & Fergus): a square occluder slides over the ROI,
and wherever covering the image lowers the probability of the class being explained, that area
mattered. Here, at the network's input size S:

* every placement of an `occluder_px` square on a `stride_px` grid (plus one flush with the far
  edges, so every pixel is covered) gives an occluded copy; copies run through the network in
  batches of `batch_size`;
* a placement's drop = max(p_target(original) - p_target(occluded), 0): an occluder that raises the
  probability did not hide evidence for the class, so negatives are clipped to 0;
* a pixel's importance = the mean drop over the placements that cover it, then min-max scaled to
  [0, 1] over the map. When every pixel has the same importance (typically all 0: no occlusion
  lowered the probability) nothing stands out and the map is all 0, so nothing is highlighted.

Fill: the occluder is painted with the ROI's per-channel median colour, which in a smear field is
plasma or red-cell colour, so an occluded cell looks like "no cell here"; a grey or black square
would be out of distribution and measure the network's reaction to an unnatural patch instead.
`fill` can also be "mean" or a fixed RGB triple.

As in the paper, areas with importance above 0.5 are "high importance"; `overlay_png` tints them
with a heat colour and outlines them, leaving the rest of the ROI as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from pathstream.services.marrow.model import resize_roi
from pathstream.services.marrow.rgb import require_rgb
from pathstream.shared.atomic_files import write_bytes_atomically
from pathstream.shared.errors import ErrorCode, PathStreamError

PredictBatch = Callable[[torch.Tensor], torch.Tensor]
"""uint8 N x 3 x S x S RGB -> float N x C class probabilities (`MarrowClassifier.predict_batch`)."""

Fill = str | tuple[int, int, int]

HIGH_IMPORTANCE = 0.5
"""Eckardt et al. highlights importance in (0.5, 1]."""


@dataclass(frozen=True)
class OcclusionConfig:
    """Occluder geometry in network-input pixels (defaults suit a 384 px input: 48 px is about
    25 um of a 1024 px ROI at 0.2 um/px, one or two marrow cells) and how copies are batched."""

    occluder_px: int = 48
    stride_px: int = 16
    batch_size: int = 32
    fill: Fill = "median"
    """"median" or "mean" of the image per channel, or an (R, G, B) triple."""

    def __post_init__(self) -> None:
        problems = []
        if self.occluder_px < 1 or self.stride_px < 1 or self.batch_size < 1:
            problems.append("occluder_px, stride_px and batch_size must be >= 1")
        if isinstance(self.fill, str):
            if self.fill not in ("median", "mean"):
                problems.append(f'fill must be "median", "mean" or an RGB triple (got {self.fill!r})')
        elif len(self.fill) != 3 or any(not 0 <= int(c) <= 255 for c in self.fill):
            problems.append(f"an RGB fill needs three values in 0..255 (got {self.fill!r})")
        if problems:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                "Invalid occlusion settings: " + "; ".join(problems) + ".",
                hint="For a 384 px input, occluder_px=48, stride_px=16 is a reasonable start.",
            )


def _placements(extent: int, size: int, stride: int) -> list[int]:
    """Occluder origins along one axis; the last is flush with the far edge so all pixels are covered."""
    last = max(0, extent - size)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def _fill_colour(image: np.ndarray, fill: Fill) -> np.ndarray:
    pixels = image.reshape(-1, 3)
    if fill == "median":
        return np.median(pixels, axis=0).round().astype(np.uint8)
    if fill == "mean":
        return pixels.mean(axis=0).round().astype(np.uint8)
    return np.array(fill, dtype=np.uint8)


def occlusion_sensitivity(
    predict_batch: PredictBatch,
    image: np.ndarray,
    target_index: int,
    config: OcclusionConfig | None = None,
    input_size: int | None = None,
) -> np.ndarray:
    """Occlusion sensitivity map of one ROI for one class.

    predict_batch: uint8 N x 3 x S x S RGB tensor -> N x C probabilities (e.g.
    `MarrowClassifier.predict_batch`). image: uint8 H x W x 3 RGB; with `input_size` it is first
    resized to input_size x input_size (as the classifier does), otherwise used as it is.
    target_index: the probability column to explain. Returns float32 S x S (the network-input
    image's H x W) importance in [0, 1] (module docstring: drop, averaging, scaling, all-0 case).
    """
    config = config or OcclusionConfig()
    require_rgb(image, "An occlusion-map ROI")
    if input_size is not None:
        image = resize_roi(image, input_size)
    height, width = image.shape[:2]
    occluder_h, occluder_w = min(config.occluder_px, height), min(config.occluder_px, width)
    ys = _placements(height, occluder_h, config.stride_px)
    xs = _placements(width, occluder_w, config.stride_px)
    placements = [(y, x) for y in ys for x in xs]
    patch = torch.from_numpy(_fill_colour(image, config.fill))[:, None, None]
    original = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

    baseline = _target_probabilities(predict_batch, original[None], target_index)[0]
    drops = np.empty(len(placements), np.float64)
    for start in range(0, len(placements), config.batch_size):
        chunk = placements[start : start + config.batch_size]
        copies = original.repeat(len(chunk), 1, 1, 1)
        for i, (y, x) in enumerate(chunk):
            copies[i, :, y : y + occluder_h, x : x + occluder_w] = patch
        occluded = _target_probabilities(predict_batch, copies, target_index)
        drops[start : start + len(chunk)] = np.clip(baseline - occluded, 0.0, None)

    total = np.zeros((height, width), np.float64)
    count = np.zeros((height, width), np.float64)
    for (y, x), drop in zip(placements, drops, strict=True):
        total[y : y + occluder_h, x : x + occluder_w] += drop
        count[y : y + occluder_h, x : x + occluder_w] += 1
    importance = total / count
    low, high = float(importance.min()), float(importance.max())
    if high - low <= 1e-12:
        return np.zeros((height, width), np.float32)
    return ((importance - low) / (high - low)).astype(np.float32)


def _target_probabilities(predict_batch: PredictBatch, batch: torch.Tensor, target_index: int) -> np.ndarray:
    probabilities = predict_batch(batch)
    if probabilities.ndim != 2 or not 0 <= target_index < probabilities.shape[1]:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"Class index {target_index} is not a column of the model's {tuple(probabilities.shape)} output.",
            hint="Explain one of the model's classes (an index into MarrowClassifier.classes).",
        )
    return probabilities[:, target_index].detach().double().cpu().numpy()


def overlay_image(image: np.ndarray, importance: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 RGB ROI + float importance (any size, [0, 1]) -> uint8 H x W x 3 RGB overlay.

    The map is resized to the image; pixels above `HIGH_IMPORTANCE` are blended 50/50 with a jet
    heat colour and the regions are outlined; the rest is the image unchanged.
    """
    require_rgb(image, "An OSM overlay image")
    height, width = image.shape[:2]
    heat = cv2.resize(np.asarray(importance, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    high = heat > HIGH_IMPORTANCE
    out = image.copy()
    if not high.any():
        return out
    colours = cv2.cvtColor(
        cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB
    )
    blended = cv2.addWeighted(image, 0.5, colours, 0.5, 0)
    out[high] = blended[high]
    contours, _ = cv2.findContours(high.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 255, 0), max(1, round(min(height, width) / 256)))
    return out


def overlay_png(image: np.ndarray, importance: np.ndarray) -> bytes:
    """PNG bytes of `overlay_image(image, importance)` (RGB, the ROI's size)."""
    rendered = overlay_image(image, importance)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rendered, cv2.COLOR_RGB2BGR))
    if not ok:
        raise PathStreamError(ErrorCode.INTERNAL, "OpenCV could not encode the OSM overlay as PNG.")
    return encoded.tobytes()


def write_overlay_png(path: str | Path, image: np.ndarray, importance: np.ndarray) -> Path:
    """Write `overlay_png(image, importance)` to `path` atomically (folders created); returns it."""
    target = Path(path)
    write_bytes_atomically(target, overlay_png(image, importance))
    return target
