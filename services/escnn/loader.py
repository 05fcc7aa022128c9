"""ESCNN's scorer and handler from settings, for `pathstream serve escnn` and the embedded run."""

from __future__ import annotations

from pathlib import Path

from pathstream.backbones.devices import resolve_device
from pathstream.services.escnn.handler import EscnnHandler
from pathstream.services.escnn.model import build_escnn, checkpoint_version
from pathstream.services.escnn.scoring import LymphNodeScorer, Thresholds
from pathstream.services.escnn.streaming import StreamingESCNN
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings


def load_scorer(settings: PathStreamSettings) -> LymphNodeScorer:
    """The scorer `PATHSTREAM_ESCNN_*` describe: model loaded once, on CUDA when present.

    Raises `PathStreamError(MODEL_UNAVAILABLE)` without a usable checkpoint.
    """
    if settings.escnn_checkpoint is None:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            "No ESCNN checkpoint is configured.",
            hint="Set PATHSTREAM_ESCNN_CHECKPOINT to a file written by `pathstream train escnn`.",
        )
    device = resolve_device(settings.device)
    model = build_escnn(settings.escnn_backbone, str(settings.escnn_checkpoint)).eval()
    engine = StreamingESCNN(
        model,
        tile_size=settings.escnn_tile_size,
        device=device,
        precision=settings.escnn_precision if device.startswith("cuda") else "fp32",
    )
    return LymphNodeScorer(
        engine,
        checkpoint_version(settings.escnn_checkpoint),
        Path(settings.artifact_root),
        Thresholds(settings.escnn_threshold, settings.escnn_screening_threshold),
    )


def escnn_handler(settings: PathStreamSettings, scorer: LymphNodeScorer | None = None) -> EscnnHandler:
    """ESCNN's handler over `scorer`, by default the one `load_scorer(settings)` builds."""
    return EscnnHandler(settings, scorer or load_scorer(settings))
