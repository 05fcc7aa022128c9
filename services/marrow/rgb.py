"""The one input check every marrow image path shares: an 8-bit RGB image with pixels."""

from __future__ import annotations

import numpy as np

from pathstream.shared.errors import ErrorCode, PathStreamError


def require_rgb(image: np.ndarray, what: str) -> None:
    """Raise `PathStreamError(INVALID_EVENT)` naming `what` (e.g. "A smear field") unless `image`
    is a non-empty uint8 H x W x 3 RGB array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise PathStreamError(
            ErrorCode.INVALID_EVENT,
            f"{what} must be a uint8 H x W x 3 RGB image, got {image.dtype} {image.shape}.",
            hint="Convert the image to 8-bit RGB (drop alpha, expand greyscale) first.",
        )
