"""What a slide may claim to be, checked from its header before a single pixel is read.

A slide's header says how large it is; a damaged or hostile file can claim 10^6 x 10^6 px in a few
megabytes. Ingest memory is bounded by the tile-row buffers of the widest working array and the
detector's 7.36 um/px probability map, both known from the header and the resolution, so an absurd
claim is refused (`SLIDE_TOO_LARGE`) instead of being discovered by the kernel's OOM killer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.layout import CHANNELS, DETECTOR_1_25X, ArrayInfo, TileFormat

DETECTION_BYTES_PER_PX = 4 + 1 + CHANNELS
"""Per 7.36 um/px pixel the detector holds a float32 probability, a mask byte and the RGB pixel."""
ROW_BUFFER_COPIES = 3
"""A tile row is held as the writer's buffer, its concatenation copy and the chunks in flight."""


@dataclass(frozen=True)
class SlideLimits:
    """The largest slide PathStream accepts (`PATHSTREAM_MAX_SLIDE_*`)."""

    max_side_px: int = 500_000
    max_gigapixels: float = 50.0
    max_memory_mb: int = 4_096

    @classmethod
    def from_settings(cls, settings: PathStreamSettings) -> SlideLimits:
        """The limits configured in `settings`."""
        return cls(settings.max_slide_side_px, settings.max_slide_gigapixels, settings.max_slide_memory_mb)


def expected_memory_mb(arrays: Sequence[ArrayInfo], fmt: TileFormat) -> float:
    """Peak working memory (MB) of ingesting `arrays` and detecting on the 1.25x one: the widest
    array's tile-row buffers, or the whole detection map, whichever is larger."""
    row = max((ROW_BUFFER_COPIES * fmt.tile * a.width * CHANNELS for a in arrays), default=0)
    detection = max(
        (a.width * a.height * DETECTION_BYTES_PER_PX for a in arrays if a.name == DETECTOR_1_25X.name),
        default=0,
    )
    return max(row, detection) / 1e6


def _too_large(path: Path, claim: str, limit: str, setting: str) -> PathStreamError:
    return PathStreamError(
        ErrorCode.SLIDE_TOO_LARGE,
        f"Slide {path} claims {claim}, above the limit of {limit}; nothing was read.",
        hint=f"A header this large is usually a damaged or mislabelled file: export the slide again. "
        f"If the slide is genuinely this large, raise {setting}.",
    )


def check_slide_size(
    path: Path, size: tuple[int, int], arrays: Sequence[ArrayInfo], fmt: TileFormat, limits: SlideLimits
) -> None:
    """Refuse a slide whose header-level size (level-0 `size` = (width, height) px) or whose expected
    memory for `arrays` is beyond `limits`. Raises `PathStreamError(SLIDE_TOO_LARGE)`."""
    width, height = size
    if max(width, height) > limits.max_side_px:
        raise _too_large(
            path,
            f"a level 0 of {width} x {height} px",
            f"{limits.max_side_px} px per side",
            "PATHSTREAM_MAX_SLIDE_SIDE_PX",
        )
    gigapixels = width * height / 1e9
    if gigapixels > limits.max_gigapixels:
        raise _too_large(
            path,
            f"{gigapixels:.1f} gigapixels ({width} x {height} px)",
            f"{limits.max_gigapixels:g} gigapixels",
            "PATHSTREAM_MAX_SLIDE_GIGAPIXELS",
        )
    memory = expected_memory_mb(arrays, fmt)
    if memory > limits.max_memory_mb:
        raise _too_large(
            path,
            f"a size ({width} x {height} px) whose processing needs about {memory:,.0f} MB",
            f"{limits.max_memory_mb} MB",
            "PATHSTREAM_MAX_SLIDE_MEMORY_MB",
        )
