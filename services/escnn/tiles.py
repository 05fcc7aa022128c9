"""Image sources and the producer thread that feeds tiles to the streaming compute loop.

An `ImageSource` is anything that can hand out uint8 RGB windows of a (possibly huge, possibly
virtual) image: an in-memory array, a TileDB store region, or an augmented view of either. The
`TileProducer` reads, transforms and normalises tiles in a background thread while the GPU (or
CPU) computes the previous ones (Huang et al. 2022, Fig. 7c), and marks white tiles so that the consumer
can skip them.

White, precisely: every byte of the tile's input window (its valid region plus the receptive-field
margin) is 255 in all three channels, after the source's own masking and augmentation. Outside-
contour masking sets exactly 255, so masked-out areas are white by this definition.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from pathstream.services.escnn.geometry import TileSpan

WHITE = 255


class ImageSource(Protocol):
    """A readable RGB image: `read` returns uint8 h x w x 3 for rows y0.. and columns x0.."""

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...

    def read(self, y0: int, x0: int, height: int, width: int) -> np.ndarray: ...


class ArraySource:
    """An in-memory uint8 H x W x 3 image."""

    def __init__(self, image: np.ndarray) -> None:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 H x W x 3 RGB image, got {image.dtype} {image.shape}")
        self.image = image

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def read(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        return self.image[y0 : y0 + height, x0 : x0 + width]


@dataclass(frozen=True)
class Tile:
    """One tile: its spans along y and x, and its position in the plan."""

    index: int
    y: TileSpan
    x: TileSpan

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the tile's input window."""
        return self.y.length, self.x.length


@dataclass
class ReadyTile:
    """A tile read and prepared by the producer: None pixels means white (skippable)."""

    tile: Tile
    tensor: torch.Tensor | None


def is_white(pixels: np.ndarray) -> bool:
    """True when every byte of the window is 255."""
    return bool((pixels == WHITE).all())


class TileProducer:
    """Reads tiles of `source` in order in a background thread, `prefetch` ahead of the consumer.

    `prepare` turns uint8 pixels into the model's input tensor (normalisation, device transfer).
    With `mark_white`, white tiles arrive with `tensor=None` (not normalised, not transferred).
    """

    def __init__(
        self,
        source: ImageSource,
        tiles: Sequence[Tile],
        prepare: Callable[[np.ndarray], torch.Tensor],
        mark_white: bool,
        prefetch: int = 2,
    ) -> None:
        self.source = source
        self.tiles = tiles
        self.prepare = prepare
        self.mark_white = mark_white
        self.queue: queue.Queue[ReadyTile | BaseException | None] = queue.Queue(maxsize=max(1, prefetch))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="escnn-tile-producer", daemon=True)

    def _run(self) -> None:
        try:
            for tile in self.tiles:
                if self.stop.is_set():
                    return
                pixels = self.source.read(tile.y.input_start, tile.x.input_start, *tile.shape)
                if pixels.shape[:2] != tile.shape:
                    raise ValueError(f"source returned {pixels.shape[:2]} for a {tile.shape} tile")
                tensor = None if self.mark_white and is_white(pixels) else self.prepare(pixels)
                self._put(ReadyTile(tile, tensor))
            self._put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def _put(self, item: ReadyTile | BaseException | None) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[ReadyTile]:
        self.thread.start()
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop.set()
            self.thread.join()
