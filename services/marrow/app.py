"""The marrow service on the bus: consumer group `marrow` on `slides.scanned`.

`pathstream serve marrow` runs one worker; it reacts to `SlideScanned` with specimen
`bone_marrow` (lymph-node scans are acknowledged and skipped) and publishes `MarrowClassified`
or `SlideFailed`. The model loads once per worker; each smear is processed in a worker thread so
heartbeats continue, and the offset is committed only after the result was acknowledged (see
`pathstream.shared.bus.worker`). Add workers to share the topic's partitions.
"""

from __future__ import annotations

from faststream import FastStream
from faststream.kafka import KafkaBroker

from pathstream.services.marrow.loader import load_classifier, marrow_handler
from pathstream.services.marrow.model import MarrowClassifier
from pathstream.shared.bus.app import service_app
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.worker import subscribe_handler
from pathstream.shared.events import SlideScanned
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic

__all__ = ["GROUP_ID", "build_marrow_app", "load_classifier"]

GROUP_ID = "marrow"


def build_marrow_app(
    settings: PathStreamSettings, classifier: MarrowClassifier | None = None
) -> tuple[FastStream, KafkaBroker]:
    """The marrow worker's FastStream app and broker; `classifier` defaults to `load_classifier`."""
    handler = marrow_handler(settings, classifier)
    handler.wait_out_outages = True  # the delivery policy waits outages out (shared/bus/delivery.py)
    broker = build_broker(settings, description="PathStream marrow classifier")
    subscribe_handler(broker, settings, Topic.SLIDES_SCANNED, GROUP_ID, SlideScanned, handler.handle)
    return service_app(broker, settings, GROUP_ID), broker
