"""ESCNN as a FastStream service: consumer group `escnn` on `ln.detected` (key ln_id).

`pathstream serve escnn` runs one worker; start N of them (on GPU machines) to share the topic's
partitions, so the LNs of one slide are scored in parallel and one slow LN holds back only its own
partition. The model loads once per worker. Each LN runs in a worker thread, so heartbeats continue
while it computes; its offset is committed only after the result was acknowledged by the brokers,
so an LN whose worker stops or dies is scored again by another member, and the reporter stores the
repeated result once (same ln_id, same event id). See `pathstream.shared.bus.worker`.
"""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from faststream.kafka import KafkaBroker
from pathstream.services.escnn.handler import EscnnHandler
from pathstream.services.escnn.model import build_escnn, checkpoint_version
from pathstream.services.escnn.scoring import LymphNodeScorer, Thresholds
from pathstream.services.escnn.streaming import StreamingESCNN
from pathstream.shared.bus.app import service_app
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.worker import subscribe_handler
from pathstream.shared.devices import resolve_device
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import LymphNodeDetected
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic

GROUP_ID = "escnn"


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


def build_escnn_app(
    settings: PathStreamSettings, scorer: LymphNodeScorer | None = None
) -> tuple[FastStream, KafkaBroker]:
    """The ESCNN worker's FastStream app and broker; `scorer` defaults to `load_scorer`."""
    handler = EscnnHandler(settings, scorer or load_scorer(settings))
    broker = build_broker(settings, description="PathStream ESCNN worker")

    subscribe_handler(broker, settings, Topic.LN_DETECTED, GROUP_ID, LymphNodeDetected, handler.handle)
    return service_app(broker, settings, GROUP_ID), broker
