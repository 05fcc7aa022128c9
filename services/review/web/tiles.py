"""Deep-zoom tiles of a slide, from the original file, with OpenSlide's own `DeepZoomGenerator`.

Tiles are 256 px (254 + 1 px overlap each side, as OpenSlide's deep-zoom server serves them), JPEG,
in level-0 pixel coordinates of the whole slide (`limit_bounds=False`), so the LN contours stored in
level-0 pixels lie on them unchanged. A slide's tiles never change for its id and SHA-256, so they
carry a strong ETag and private caching (patient data: no shared cache).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import openslide
from openslide.deepzoom import DeepZoomGenerator
from sqlalchemy.orm import Session, sessionmaker

from pathstream.shared.allowed_roots import check_allowed
from pathstream.shared.db.models import Slide
from pathstream.shared.errors import ErrorCode, PathStreamError

TILE_SIZE = 254
OVERLAP = 1
JPEG_QUALITY = 80
CACHE_CONTROL = "private, max-age=86400"


@dataclass(frozen=True)
class Tile:
    """One encoded tile: JPEG bytes and the ETag that names them."""

    jpeg: bytes
    etag: str


@dataclass
class _OpenSlide:
    slide: openslide.OpenSlide
    generator: DeepZoomGenerator
    sha256: str
    lock: threading.Lock


class SlideTiles:
    """Deep-zoom tiles of the slides in the report database, keeping the last `keep_open` open."""

    def __init__(
        self, sessions: sessionmaker[Session], allowed_roots: Sequence[str], keep_open: int = 16
    ) -> None:
        self.sessions = sessions
        self.allowed_roots = list(allowed_roots)
        self.keep_open = keep_open
        self._open: OrderedDict[str, _OpenSlide] = OrderedDict()
        self._lock = threading.Lock()

    def dzi(self, slide_id: str) -> str:
        """The slide's Deep Zoom descriptor (XML), as OpenSeadragon reads it."""
        return self._slide(slide_id).generator.get_dzi("jpeg")

    def etag(self, slide_id: str, level: int, col: int, row: int) -> str:
        """The ETag of a tile, known without reading it (a 304 costs no decoding)."""
        return f'"{self._slide(slide_id).sha256[:20]}-{level}-{col}-{row}"'

    def tile(self, slide_id: str, level: int, col: int, row: int) -> Tile:
        """JPEG of tile (`col`, `row`) at deep-zoom `level`; UNKNOWN_ENTITY when it does not exist."""
        opened = self._slide(slide_id)
        generator = opened.generator
        if not 0 <= level < generator.level_count:
            raise _no_tile(slide_id, f"level {level} (the slide has 0-{generator.level_count - 1})")
        cols, rows = generator.level_tiles[level]
        if not (0 <= col < cols and 0 <= row < rows):
            raise _no_tile(slide_id, f"tile {col}_{row} at level {level} (it has {cols} x {rows})")
        # One reader per slide at a time: OpenSlide handles are safe, but decoding one region twice
        # at once for two viewers of the same slide is only wasted CPU.
        with opened.lock:
            image = generator.get_tile(level, (col, row)).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
        return Tile(buffer.getvalue(), self.etag(slide_id, level, col, row))

    def close(self) -> None:
        """Close every open slide."""
        with self._lock:
            while self._open:
                _close(self._open.popitem()[1])

    def _slide(self, slide_id: str) -> _OpenSlide:
        with self._lock:
            if slide_id in self._open:
                self._open.move_to_end(slide_id)
                return self._open[slide_id]
        with self.sessions() as session:
            slide = session.get(Slide, slide_id)
            if slide is None:
                raise PathStreamError(ErrorCode.UNKNOWN_ENTITY, f"There is no slide {slide_id}.")
            uri, sha256 = slide.uri, slide.sha256 or ""
        if not uri:
            raise PathStreamError(
                ErrorCode.UNKNOWN_ENTITY,
                f"Slide {slide_id} has no recorded file, so it has no tiles.",
                hint="Its results can still be read; the viewer needs the slide as scanned.",
            )
        path = Path(check_allowed(uri, self.allowed_roots))
        try:
            handle = openslide.OpenSlide(path)
            generator = DeepZoomGenerator(handle, tile_size=TILE_SIZE, overlap=OVERLAP, limit_bounds=False)
        except (OSError, openslide.OpenSlideError) as exc:
            raise PathStreamError(
                ErrorCode.UNKNOWN_ENTITY,
                f"The file of slide {slide_id} ({path}) cannot be opened for viewing: {exc}.",
                hint="Check that the slide is still where it was scanned to, readable by the review service.",
            ) from None
        opened = _OpenSlide(handle, generator, sha256, threading.Lock())
        evicted = []
        with self._lock:
            self._open[slide_id] = opened
            while len(self._open) > self.keep_open:
                evicted.append(self._open.popitem(last=False)[1])
        for old in evicted:
            _close(old)
        return opened


def _close(opened: _OpenSlide) -> None:
    with opened.lock:  # not while a tile of it is being read
        opened.slide.close()


def _no_tile(slide_id: str, what: str) -> PathStreamError:
    return PathStreamError(ErrorCode.UNKNOWN_ENTITY, f"Slide {slide_id} has no {what}.")
