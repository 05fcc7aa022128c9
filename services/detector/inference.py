"""Whole-slide LN segmentation at 7.36 um/px in overlapping windows, with bounded memory.

Each window predicts a core region and reads `margin` pixels of context around it (white glass
beyond the slide's edge), so every pixel is classified with at least `margin` pixels of context on
every side, wherever the window boundaries fall. Only one window is in memory at a time, plus the
output probability map (4 bytes per 7.36 um pixel: 40 MB for a 75 x 25 mm slide).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pathstream.backbones.imagenet import normalise_uint8
from pathstream.services.detector.model import LN_CLASS, DeepLabV3Plus, build_detector, checkpoint_version
from pathstream.services.detector.postprocess import mask_to_contours

RegionReader = Callable[[int, int, int, int], np.ndarray]
"""read(x, y, width, height) -> uint8 height x width x 3 RGB; white outside the image."""

DEFAULT_WINDOW = 1024
DEFAULT_MARGIN = 64
_ALIGN = 16  # output stride of the encoder: window sizes stay multiples of it


@dataclass(frozen=True)
class Window:
    """One prediction window: the core it writes and the input box it reads (array pixels)."""

    core_x: int
    core_y: int
    core_w: int
    core_h: int
    margin: int

    @property
    def input_box(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) read for this window, core plus margin on every side."""
        m = self.margin
        return self.core_x - m, self.core_y - m, _aligned(self.core_w + 2 * m), _aligned(self.core_h + 2 * m)


def _aligned(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN


def plan_windows(
    width: int, height: int, window: int = DEFAULT_WINDOW, margin: int = DEFAULT_MARGIN
) -> list[Window]:
    """Cover a width x height image with cores of at most `window - 2 * margin` pixels per side."""
    core = window - 2 * margin
    if core < _ALIGN:
        raise ValueError(f"window {window} leaves no core after a {margin}-pixel margin on each side")

    def spans(length: int) -> Iterator[tuple[int, int]]:
        for start in range(0, length, core):
            yield start, min(core, length - start)

    return [Window(x, y, w, h, margin) for y, h in spans(height) for x, w in spans(width)]


class LymphNodeSegmenter:
    """A trained detector on a device: uint8 RGB at 7.36 um/px -> LN probability per pixel."""

    def __init__(
        self,
        model: DeepLabV3Plus,
        model_version: str,
        *,
        device: torch.device | str | None = None,
        window: int = DEFAULT_WINDOW,
        margin: int = DEFAULT_MARGIN,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.model_version = model_version
        self.window = window
        self.margin = margin

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: object) -> LymphNodeSegmenter:
        """Load a detector checkpoint once (its version is the file's hash)."""
        return cls(build_detector(weights=path), checkpoint_version(path), **kwargs)  # type: ignore[arg-type]

    @torch.inference_mode()
    def probabilities(self, read: RegionReader, width: int, height: int) -> np.ndarray:
        """float32 height x width map of P(lymph node) (softmax over the two classes)."""
        out = np.zeros((height, width), np.float32)
        for win in plan_windows(width, height, self.window, self.margin):
            x, y, w, h = win.input_box
            pixels = torch.from_numpy(np.ascontiguousarray(read(x, y, w, h))).to(self.device)
            logits = self.model(normalise_uint8(pixels.permute(2, 0, 1).unsqueeze(0)))
            prob = torch.softmax(logits.float(), dim=1)[0, LN_CLASS].cpu().numpy()
            m = win.margin
            out[win.core_y : win.core_y + win.core_h, win.core_x : win.core_x + win.core_w] = prob[
                m : m + win.core_h, m : m + win.core_w
            ]
        return out

    def mask(self, read: RegionReader, width: int, height: int) -> np.ndarray:
        """bool height x width: True where P(lymph node) > 0.5 (the argmax of two classes)."""
        return self.probabilities(read, width, height) > 0.5

    def predict_image(self, image: np.ndarray) -> np.ndarray:
        """bool H x W LN mask for a uint8 H x W x 3 image held in memory (training, evaluation)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 H x W x 3 RGB image, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        return self.mask(_array_reader(image), width, height)

    def contours(self, read: RegionReader, width: int, height: int) -> list[np.ndarray]:
        """The paper's post-processed LN contours (see `mask_to_contours`) at 7.36 um/px."""
        return mask_to_contours(self.mask(read, width, height))


def padded_region(array: np.ndarray, x: int, y: int, width: int, height: int, fill: int) -> np.ndarray:
    """Rows [y, y+height) and columns [x, x+width) of an H x W x C array; `fill` outside it."""
    rows, cols = array.shape[:2]
    out = np.full((height, width, *array.shape[2:]), fill, array.dtype)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, cols), min(y + height, rows)
    if x1 > x0 and y1 > y0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = array[y0:y1, x0:x1]
    return out


def _array_reader(image: np.ndarray) -> RegionReader:
    return lambda x, y, w, h: padded_region(image, x, y, w, h, 255)
