"""The marrow service's handler: `SlideScanned` (bone marrow) in; `MarrowClassified` out.

Transport-free like the other handlers: `pathstream serve marrow` and the embedded run call the
same `MarrowHandler.handle`. One smear: ingest to its tile store (the ~0.2 um/px `marrow_roi` array
and the 7.36 um/px overview), propose ROIs by the paper's quality criteria (no manual selection),
classify each ROI, aggregate to the case call (`pathstream.services.marrow.case_call`), and draw an occlusion
sensitivity overlay per ROI for the class called. The event id derives from (slide, checksum,
model version), so a redelivered scan yields the same event, which the reporter stores once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pathstream.services.marrow.case_call import case_call
from pathstream.services.marrow.model import MarrowClassifier, resize_roi
from pathstream.services.marrow.occlusion import OcclusionConfig, occlusion_sensitivity, write_overlay_png
from pathstream.services.marrow.roi_proposal import ProposedRoi, RoiProposalConfig, propose_rois
from pathstream.shared.events import (
    BBox,
    Event,
    FailureStage,
    MarrowClass,
    MarrowClassified,
    MarrowRoi,
    SlideScanned,
    Specimen,
)
from pathstream.shared.failures import failure_event
from pathstream.shared.logs import get_logger
from pathstream.shared.retry import is_outage, retry_retriable
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.context import tiledb_context
from pathstream.shared.tilestore.ingest import Progress as IngestProgress
from pathstream.shared.tilestore.layout import DETECTOR_1_25X, MARROW_ROI
from pathstream.shared.tilestore.reader import StoreArray, TileStore
from pathstream.shared.tilestore.scanned import store_for_scan

log = get_logger(__name__)

_EVENT_NAMESPACE = uuid.UUID("9a3e51c7-2d84-4f0b-b6e2-61f0c8d4a27e")
COARSE_MPP_WARNING = 1.5
"""A smear scanned this many times coarser than the model's training mpp is classified with a
warning: the ROI still covers the trained physical area, but with less detail than trained on."""


@dataclass(frozen=True)
class SmearResult:
    """What the marrow service concluded for one smear (ROIs in the marrow array's pixels)."""

    rois: Sequence[ProposedRoi]
    level0_boxes: list[BBox]
    """The ROIs' boxes in level-0 pixels of the source slide."""
    probabilities: np.ndarray
    call: MarrowClass
    case_probabilities: dict[MarrowClass, float]
    osm_paths: list[Path | None]
    seconds: float


class MarrowHandler:
    """Propose ROIs, classify, aggregate and explain one bone-marrow smear per call."""

    wait_out_outages: bool = False
    """True under a service consumer: an outage is raised to its delivery policy, which waits it out
    (`pathstream.shared.bus.delivery`), instead of being retried here and reported as a failure."""
    ingest_progress: IngestProgress | None = None
    """Called with (tile rows done, in total) while a slide is ingested (the embedded run's bar)."""

    def __init__(self, settings: PathStreamSettings, classifier: MarrowClassifier) -> None:
        self.settings = settings
        self.classifier = classifier
        self._ctx = tiledb_context(settings)
        self.occlusion = OcclusionConfig(
            occluder_px=settings.marrow_occluder_px, stride_px=settings.marrow_occlusion_stride_px
        )

    def handle(self, event: SlideScanned) -> list[Event]:
        """One `MarrowClassified`, or one `SlideFailed` naming the stage and error, or nothing for a
        slide that is not a bone-marrow smear. Never raises for bad input; retriable failures (a
        slide not yet on the share) are retried `handler_max_attempts` times first."""
        bound = log.bind(slide_id=event.slide_id, study_id=event.study_id)
        if event.specimen != Specimen.BONE_MARROW:
            bound.info("slide_ignored", reason="not a bone-marrow specimen", specimen=event.specimen.value)
            return []
        stage = FailureStage.INGEST
        try:
            store = retry_retriable(
                self.settings,
                lambda: store_for_scan(event, self.settings, self._ctx, self.ingest_progress),
                outages=not self.wait_out_outages,
            )
            stage = FailureStage.CLASSIFY
            result = retry_retriable(
                self.settings,
                lambda: self.classify_store(store, event.slide_id),
                outages=not self.wait_out_outages,
            )
            classified = self._event(event, result)
        except Exception as exc:  # every failure becomes an event; only outages reach the consumer
            if self.wait_out_outages and is_outage(exc):
                raise
            return [failure_event(bound, event.slide_id, event.study_id, stage, exc)]
        bound.info(
            "smear_classified",
            case_call=classified.case_call.value,
            case_probabilities={k.value: round(v, 4) for k, v in classified.case_probabilities.items()},
            rois=len(classified.rois),
            seconds=round(result.seconds, 2),
            model_version=self.classifier.model_version,
        )
        return [classified]

    def classify_store(self, store: TileStore, slide_id: str) -> SmearResult:
        """Propose, classify and explain the ROIs of a complete store (see `classify_array`)."""
        return self.classify_array(
            store.array(MARROW_ROI.name), store.array(DETECTOR_1_25X.name), slide_id, store.slide_id
        )

    def classify_array(
        self, array: StoreArray, overview: StoreArray | None, slide_id: str, log_id: str
    ) -> SmearResult:
        """ROIs of the marrow array (uint8 RGB at ~0.2 um/px or native) -> per-ROI probabilities
        and OSM overlay PNGs under `<artifact_root>/<slide_id>/`."""
        started = time.perf_counter()
        spec = self.classifier.spec
        if array.mpp > spec.mpp * COARSE_MPP_WARNING:
            log.warning(
                "smear_coarser_than_model", slide_id=log_id, smear_mpp=round(array.mpp, 3), model_mpp=spec.mpp
            )
        # A field covers the physical area the model was trained on, whatever the scan's mpp.
        config = RoiProposalConfig(
            k=self.settings.marrow_roi_count, field_um=self.settings.marrow_roi_px * spec.mpp
        )
        rois = propose_rois(
            array.read,
            array.width,
            array.height,
            array.mpp,
            None if overview is None else overview.read_all(),
            config,
        )
        images = [array.read(*roi.bbox) for roi in rois]
        probabilities = self.classifier.probabilities(images)
        call, case_probabilities = case_call(probabilities, self.classifier.classes)
        target = self.classifier.classes.index(call)
        osm_paths: list[Path | None] = []
        for index, image in enumerate(images):
            if not self.settings.marrow_occlusion_maps:
                osm_paths.append(None)
                continue
            model_input = resize_roi(image, spec.input_size)
            importance = occlusion_sensitivity(
                self.classifier.predict_batch, model_input, target, self.occlusion
            )
            path = Path(self.settings.artifact_root) / slide_id / f"roi{index:02d}_osm.png"
            write_overlay_png(path, image, importance)
            osm_paths.append(path)
        boxes = [_level0_box(array, roi.bbox) for roi in rois]
        seconds = time.perf_counter() - started
        return SmearResult(rois, boxes, probabilities, call, case_probabilities, osm_paths, seconds)

    def _event(self, event: SlideScanned, result: SmearResult) -> MarrowClassified:
        classes = self.classifier.classes
        rois = []
        for index, (roi, box, row, osm) in enumerate(
            zip(result.rois, result.level0_boxes, result.probabilities, result.osm_paths, strict=True)
        ):
            rois.append(
                MarrowRoi(
                    index=index,
                    bbox=box,
                    probabilities=_distribution(classes, row),
                    osm_uri=None if osm is None else str(osm),
                    quality={k: round(v, 4) for k, v in roi.quality.items()},
                )
            )
        return MarrowClassified(
            event_id=uuid.uuid5(
                _EVENT_NAMESPACE, f"{event.slide_id}/{event.sha256}/{self.classifier.model_version}"
            ),
            slide_id=event.slide_id,
            study_id=event.study_id,
            rois=rois,
            case_call=result.call,
            case_probabilities=result.case_probabilities,
            model_version=self.classifier.model_version,
        )


def _level0_box(array: StoreArray, bbox: tuple[int, int, int, int]) -> BBox:
    """A box in `array`'s pixels -> the same box in level-0 pixels of the source slide."""
    x, y, width, height = bbox
    left, top = array.to_level0(x, y)
    right, bottom = array.to_level0(x + width, y + height)
    x0, y0 = int(left), int(top)
    return BBox(x=x0, y=y0, width=max(1, round(right) - x0), height=max(1, round(bottom) - y0))


def _distribution(classes: tuple[MarrowClass, ...], row: np.ndarray) -> dict[MarrowClass, float]:
    """One ROI's probabilities as {class: p}, renormalised in float64 so they sum to 1 exactly."""
    values = np.asarray(row, dtype=np.float64)
    values = values / values.sum()
    return {cls: float(p) for cls, p in zip(classes, values, strict=True)}
