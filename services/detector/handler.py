"""The detector's handler: `SlideScanned` in; `LymphNodeDetected` x N and `SlideDetected` out.

Transport-free on purpose: the FastStream app (`pathstream.services.detector.app`) and the embedded run call
the same `DetectorHandler.handle`, which returns the events to publish instead of publishing them.

Redelivery is safe: a slide already ingested reuses its store, LN ids are `<slide_id>_ln<index>`,
and event ids are derived from (slide, checksum, model version, LN index), so processing the same
scan twice with the same model yields events with the same ids and content, which consumers
deduplicate.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pathstream.services.detector.inference import LymphNodeSegmenter
from pathstream.services.detector.postprocess import LymphNodeOutline, contours_to_level0
from pathstream.shared.events import (
    BBox,
    Event,
    FailureStage,
    LymphNodeDetected,
    SlideDetected,
    SlideScanned,
    Specimen,
)
from pathstream.shared.failures import failure_event
from pathstream.shared.logs import get_logger
from pathstream.shared.qupath import feature, write_feature_collection
from pathstream.shared.retry import is_outage, retry_retriable
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.context import tiledb_context
from pathstream.shared.tilestore.ingest import Progress as IngestProgress
from pathstream.shared.tilestore.layout import DETECTOR_1_25X
from pathstream.shared.tilestore.reader import TileStore
from pathstream.shared.tilestore.scanned import store_for_scan

log = get_logger(__name__)

_EVENT_NAMESPACE = uuid.UUID("6f1d4a52-2b0e-4c41-9a59-5d0c6c1f3e11")
CONTOURS_FILE = "lymph_nodes.geojson"
LN_CLASS_NAME = "Lymph node"


def ln_id_for(slide_id: str, index: int) -> str:
    """The id of LN `index` (0-based) of a slide: `<slide_id>_ln<index, 3 digits>`, at most 200 chars."""
    suffix = f"_ln{index:03d}"
    if len(slide_id) + len(suffix) <= 200:
        return slide_id + suffix
    # Very long slide ids keep a readable head and a hash of the whole id, so ids stay unique.
    digest = hashlib.sha256(slide_id.encode()).hexdigest()[:12]
    return f"{slide_id[: 200 - len(suffix) - 13]}-{digest}{suffix}"


@dataclass(frozen=True)
class Detection:
    """What the detector found on one slide, in level-0 coordinates."""

    store_uri: str
    outlines: list[LymphNodeOutline]
    mpp: tuple[float, float]
    seconds: float
    size: tuple[int, int]
    """Level-0 (width, height) of the slide in pixels."""


def detect_in_store(store: TileStore, segmenter: LymphNodeSegmenter) -> list[LymphNodeOutline]:
    """Segment the store's 7.36 um/px array and return the post-processed LN outlines (level 0)."""
    array = store.array(DETECTOR_1_25X.name)
    contours = segmenter.contours(array.read, array.width, array.height)
    return contours_to_level0(
        contours,
        (array.info.level0_per_px_x, array.info.level0_per_px_y),
        store.mpp,
        store.level0_size,
    )


class DetectorHandler:
    """Ingest (when needed), detect, write the GeoJSON artifact, and describe the result as events."""

    wait_out_outages: bool = False
    """True under a service consumer: an outage is raised to its delivery policy, which waits it out
    (`pathstream.shared.bus.delivery`), instead of being retried here and reported as a failure."""
    ingest_progress: IngestProgress | None = None
    """Called with (tile rows done, in total) while a slide is ingested (the embedded run's bar)."""

    def __init__(self, settings: PathStreamSettings, segmenter: LymphNodeSegmenter) -> None:
        self.settings = settings
        self.segmenter = segmenter
        self._ctx = tiledb_context(settings)

    def handle(self, event: SlideScanned) -> list[Event]:
        """Process one scan. Returns the events to publish, in order: one `LymphNodeDetected` per
        LN, then `SlideDetected`; or a single `SlideFailed` naming the stage and error; or nothing
        for a slide that is not a lymph-node specimen. Never raises for bad input.

        Retriable failures (`PathStreamError.retriable`, e.g. a slide not yet on the share) are
        tried `handler_max_attempts` times with exponential back-off before they are reported."""
        bound = log.bind(slide_id=event.slide_id, study_id=event.study_id)
        if event.specimen != Specimen.LYMPH_NODE:
            bound.info("slide_ignored", reason="not a lymph-node specimen", specimen=event.specimen.value)
            return []
        stage = FailureStage.INGEST
        try:
            store = retry_retriable(
                self.settings,
                lambda: store_for_scan(event, self.settings, self._ctx, self.ingest_progress),
                outages=not self.wait_out_outages,
            )
            stage = FailureStage.DETECT
            started = time.perf_counter()
            outlines = retry_retriable(
                self.settings,
                lambda: detect_in_store(store, self.segmenter),
                outages=not self.wait_out_outages,
            )
            detection = Detection(
                store.uri, outlines, store.mpp, time.perf_counter() - started, store.level0_size
            )
            events = self._events(event, detection)
        except Exception as exc:  # every failure becomes an event; only outages reach the consumer
            if self.wait_out_outages and is_outage(exc):
                raise
            return [failure_event(bound, event.slide_id, event.study_id, stage, exc)]
        bound.info(
            "slide_detected",
            ln_count=len(detection.outlines),
            seconds=round(detection.seconds, 2),
            model_version=self.segmenter.model_version,
        )
        return events

    def _event_id(self, event: SlideScanned, what: str) -> uuid.UUID:
        return uuid.uuid5(
            _EVENT_NAMESPACE, f"{event.slide_id}/{event.sha256}/{self.segmenter.model_version}/{what}"
        )

    def _events(self, event: SlideScanned, detection: Detection) -> list[Event]:
        version = self.segmenter.model_version
        contours_path = Path(self.settings.artifact_root) / event.slide_id / CONTOURS_FILE
        features = []
        lymph_nodes: list[Event] = []
        for index, outline in enumerate(detection.outlines):
            ln_id = ln_id_for(event.slide_id, index)
            x, y, width, height = outline.bbox
            lymph_nodes.append(
                LymphNodeDetected(
                    event_id=self._event_id(event, f"ln/{index}"),
                    ln_id=ln_id,
                    slide_id=event.slide_id,
                    study_id=event.study_id,
                    index=index,
                    contour=outline.contour,
                    bbox=BBox(x=x, y=y, width=width, height=height),
                    area_um2=outline.area_um2,
                    store_uri=detection.store_uri,
                    model_version=version,
                )
            )
            features.append(
                feature(
                    outline.contour,
                    LN_CLASS_NAME,
                    ln_id,
                    measurements={"Area um^2": round(outline.area_um2, 1)},
                    properties={"ln_id": ln_id, "index": index, "model_version": version},
                    object_id=str(self._event_id(event, f"feature/{index}")),
                )
            )
        write_feature_collection(contours_path, features)
        summary = SlideDetected(
            event_id=self._event_id(event, "slide"),
            slide_id=event.slide_id,
            study_id=event.study_id,
            ln_count=len(lymph_nodes),
            store_uri=detection.store_uri,
            model_version=version,
            contours_uri=str(contours_path),
            mpp_x=detection.mpp[0],
            mpp_y=detection.mpp[1],
            width_px=detection.size[0],
            height_px=detection.size[1],
        )
        return [*lymph_nodes, summary]
