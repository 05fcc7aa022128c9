"""The detector's model and handler from settings, for `pathstream serve detector` and the embedded run."""

from __future__ import annotations

from pathstream.services.detector.handler import DetectorHandler
from pathstream.services.detector.inference import LymphNodeSegmenter
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings


def load_segmenter(settings: PathStreamSettings) -> LymphNodeSegmenter:
    """The segmenter `PATHSTREAM_DETECTOR_CHECKPOINT` names, on `PATHSTREAM_DEVICE`.

    Raises `PathStreamError(MODEL_UNAVAILABLE)` when no checkpoint is configured or it is unusable.
    """
    if settings.detector_checkpoint is None:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            "No LN detector checkpoint is configured.",
            hint="Set PATHSTREAM_DETECTOR_CHECKPOINT to a file written by `pathstream train detector`.",
        )
    device = None if settings.device == "auto" else settings.device
    return LymphNodeSegmenter.from_checkpoint(
        settings.detector_checkpoint, device=device, window=settings.detector_window
    )


def detector_handler(
    settings: PathStreamSettings, segmenter: LymphNodeSegmenter | None = None
) -> DetectorHandler:
    """The detector's handler over `segmenter`, by default the one `load_segmenter(settings)` loads."""
    return DetectorHandler(settings, segmenter or load_segmenter(settings))
