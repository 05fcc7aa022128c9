"""The detector as a FastStream service: consumer group `detector` on `slides.scanned`.

`pathstream serve detector` runs it. The model loads once per worker; each scan is processed in a
worker thread so the event loop keeps heartbeating to the group coordinator while a slide is
segmented. Offsets are committed after the resulting events were acknowledged by the brokers, so a
worker that dies mid-slide leaves the scan to the next member (the handler is idempotent).
"""

from __future__ import annotations

from faststream import FastStream
from faststream.kafka import KafkaBroker

from pathstream.services.detector.inference import LymphNodeSegmenter
from pathstream.services.detector.loader import detector_handler, load_segmenter
from pathstream.shared.bus.app import service_app
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.worker import subscribe_handler
from pathstream.shared.events import SlideScanned
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic

__all__ = ["GROUP_ID", "build_detector_app", "load_segmenter"]

GROUP_ID = "detector"


def build_detector_app(
    settings: PathStreamSettings, segmenter: LymphNodeSegmenter | None = None
) -> tuple[FastStream, KafkaBroker]:
    """The detector's FastStream app and its broker; `segmenter` defaults to `load_segmenter`."""
    handler = detector_handler(settings, segmenter)
    handler.wait_out_outages = True  # the delivery policy waits outages out (shared/bus/delivery.py)
    broker = build_broker(settings, description="PathStream LN detector")

    subscribe_handler(broker, settings, Topic.SLIDES_SCANNED, GROUP_ID, SlideScanned, handler.handle)
    return service_app(broker, settings, GROUP_ID), broker
