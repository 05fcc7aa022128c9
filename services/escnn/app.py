"""ESCNN as a FastStream service: consumer group `escnn` on `ln.detected` (key ln_id).

`pathstream serve escnn` runs one worker; start N of them (on GPU machines) to share the topic's
partitions, so the LNs of one slide are scored in parallel and one slow LN holds back only its own
partition. The model loads once per worker. Each LN runs in a worker thread, so heartbeats continue
while it computes; its offset is committed only after the result was acknowledged by the brokers,
so an LN whose worker stops or dies is scored again by another member, and the reporter stores the
repeated result once (same ln_id, same event id). See `pathstream.shared.bus.worker`.
"""

from __future__ import annotations

from faststream import FastStream
from faststream.kafka import KafkaBroker

from pathstream.services.escnn.loader import escnn_handler, load_scorer
from pathstream.services.escnn.scoring import LymphNodeScorer
from pathstream.shared.bus.app import service_app
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.worker import subscribe_handler
from pathstream.shared.events import LymphNodeDetected
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic

__all__ = ["GROUP_ID", "build_escnn_app", "load_scorer"]

GROUP_ID = "escnn"


def build_escnn_app(
    settings: PathStreamSettings, scorer: LymphNodeScorer | None = None
) -> tuple[FastStream, KafkaBroker]:
    """The ESCNN worker's FastStream app and broker; `scorer` defaults to `load_scorer`."""
    handler = escnn_handler(settings, scorer)
    handler.wait_out_outages = True  # the delivery policy waits outages out (shared/bus/delivery.py)
    broker = build_broker(settings, description="PathStream ESCNN worker")

    subscribe_handler(broker, settings, Topic.LN_DETECTED, GROUP_ID, LymphNodeDetected, handler.handle)
    return service_app(broker, settings, GROUP_ID), broker
