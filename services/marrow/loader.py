"""The marrow classifier and handler from settings, for `pathstream serve marrow` and the embedded run."""

from __future__ import annotations

from pathstream.services.marrow.handler import MarrowHandler
from pathstream.services.marrow.model import MarrowClassifier
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings


def load_classifier(settings: PathStreamSettings) -> MarrowClassifier:
    """The classifier `PATHSTREAM_MARROW_CHECKPOINT` names, on `PATHSTREAM_DEVICE`.

    Raises `PathStreamError(MODEL_UNAVAILABLE)` when none is configured or it is unusable.
    """
    if settings.marrow_checkpoint is None:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            "No marrow classifier checkpoint is configured.",
            hint="Set PATHSTREAM_MARROW_CHECKPOINT to the best.pt written by `pathstream train marrow`.",
        )
    return MarrowClassifier.from_checkpoint(settings.marrow_checkpoint, device=settings.device)


def marrow_handler(settings: PathStreamSettings, classifier: MarrowClassifier | None = None) -> MarrowHandler:
    """The marrow service's handler over `classifier`, by default `load_classifier(settings)`'s."""
    return MarrowHandler(settings, classifier or load_classifier(settings))
