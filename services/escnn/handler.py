"""ESCNN's handler: `LymphNodeDetected` in, `LymphNodeScored` (or `SlideFailed` for that LN) out.

Transport-free, like the detector's: the FastStream worker and the embedded run call `handle`. The
event id of a result is derived from the LN and the model version, so an LN scored twice (a
redelivery after a worker died) produces the same event, which the reporter stores once.
"""

from __future__ import annotations

import time
import uuid

from pathstream.services.escnn.scoring import LymphNodeScorer
from pathstream.shared.events import Event, FailureStage, LymphNodeDetected
from pathstream.shared.failures import failure_event
from pathstream.shared.logs import get_logger
from pathstream.shared.retry import is_outage, retry_retriable
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.context import tiledb_context
from pathstream.shared.tilestore.location import checked_store_uri
from pathstream.shared.tilestore.reader import TileStore

log = get_logger(__name__)

_EVENT_NAMESPACE = uuid.UUID("0b7f3c1e-5a8d-4f6b-9d2e-7c4a1b9e8f30")


class EscnnHandler:
    """Scores one LN per call with the worker's single loaded model."""

    wait_out_outages: bool = False
    """True under a service consumer: an outage is raised to its delivery policy, which waits it out
    (`pathstream.shared.bus.delivery`), instead of being retried here and reported as a failure."""

    def __init__(self, settings: PathStreamSettings, scorer: LymphNodeScorer) -> None:
        self.settings = settings
        self.scorer = scorer
        self._ctx = tiledb_context(settings)

    def handle(self, event: LymphNodeDetected) -> list[Event]:
        """One `LymphNodeScored`, or one `SlideFailed` (stage `score`, with the ln_id). Never raises
        for bad input: a `store_uri` outside PATHSTREAM_ALLOWED_ROOTS (and the store root) or with no
        store is a failure of this LN; retriable failures are retried first, and an unreachable store
        share is raised to the consumer when `wait_out_outages`."""
        bound = log.bind(slide_id=event.slide_id, study_id=event.study_id, ln_id=event.ln_id)
        started = time.perf_counter()
        try:
            store_uri = checked_store_uri(event.store_uri, self.settings)
            result = retry_retriable(
                self.settings,
                lambda: self.scorer.score(event, TileStore.open(store_uri, ctx=self._ctx)),
                outages=not self.wait_out_outages,
            )
        except Exception as exc:  # every failure becomes an event for this LN; outages reach the consumer
            if self.wait_out_outages and is_outage(exc):
                raise
            stage = FailureStage.SCORE
            return [failure_event(bound, event.slide_id, event.study_id, stage, exc, ln_id=event.ln_id)]
        scored = result.event.model_copy(
            update={"event_id": uuid.uuid5(_EVENT_NAMESPACE, f"{event.ln_id}/{self.scorer.model_version}")}
        )
        bound.info(
            "ln_scored",
            score=round(scored.score, 4),
            label=scored.label.value,
            seconds=round(time.perf_counter() - started, 2),
            model_version=self.scorer.model_version,
        )
        return [scored]
