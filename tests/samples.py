"""Valid example events, one per type, for tests that need realistic messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pathstream.shared.errors import ErrorCode
from pathstream.shared.events import (
    BBox,
    Event,
    FailureStage,
    LnLabel,
    LymphNodeDetected,
    LymphNodeScored,
    MarrowClass,
    MarrowClassified,
    MarrowRoi,
    PnCategory,
    ReportReady,
    SlideDetected,
    SlideFailed,
    SlideScanned,
    Specimen,
)

SHA = "a" * 64
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CONTOUR = [(1000, 1000), (5000, 1000), (5000, 4000), (1000, 4000)]
BOX = BBox(x=1000, y=1000, width=4000, height=3000)
MICRO_LESION = [(1100, 1100), (2100, 1100), (2100, 2100)]
"""1414 px across: 0.33 mm at the samples' 0.2301 um/px, a micrometastasis."""
ITC_LESION = [(1100, 1100), (1200, 1100), (1200, 1200)]
"""141 px across: 0.03 mm, isolated tumour cells."""


def slide_scanned(slide_id: str = "S-001", study_id: str = "ST-001") -> SlideScanned:
    return SlideScanned(
        slide_id=slide_id,
        study_id=study_id,
        specimen=Specimen.LYMPH_NODE,
        uri=f"/data/slides/{slide_id}.svs",
        sha256=SHA,
        occurred_at=T0,
    )


def slide_detected(slide_id: str = "S-001", study_id: str = "ST-001", ln_count: int = 2) -> SlideDetected:
    return SlideDetected(
        slide_id=slide_id,
        study_id=study_id,
        ln_count=ln_count,
        store_uri=f"/data/stores/{slide_id}",
        model_version="detector-deeplabv3plus@sha256:1111",
        mpp_x=0.2301,
        mpp_y=0.2301,
        width_px=40_000,
        height_px=30_000,
        occurred_at=T0 + timedelta(minutes=1),
    )


def ln_detected(index: int = 0, slide_id: str = "S-001", study_id: str = "ST-001") -> LymphNodeDetected:
    return LymphNodeDetected(
        ln_id=f"{slide_id}-ln{index:03d}",
        slide_id=slide_id,
        study_id=study_id,
        index=index,
        contour=CONTOUR,
        bbox=BOX,
        area_um2=12_000_000.0 * 0.0529,
        store_uri=f"/data/stores/{slide_id}",
        model_version="detector-deeplabv3plus@sha256:1111",
        occurred_at=T0 + timedelta(minutes=1),
    )


def ln_scored(
    index: int = 0,
    score: float = 0.83,
    slide_id: str = "S-001",
    study_id: str = "ST-001",
    at: datetime | None = None,
    lesion: list[tuple[int, int]] | None = None,
) -> LymphNodeScored:
    """An LN score; a positive one carries `lesion` (default a micrometastasis) as its CAM polygon."""
    label = LnLabel.POSITIVE if score >= 0.4 else LnLabel.NEGATIVE
    screening = LnLabel.POSITIVE if score >= 0.15 else LnLabel.NEGATIVE
    return LymphNodeScored(
        ln_id=f"{slide_id}-ln{index:03d}",
        slide_id=slide_id,
        study_id=study_id,
        index=index,
        contour=CONTOUR,
        bbox=BOX,
        area_um2=12_000_000.0 * 0.0529,
        score=score,
        label=label,
        threshold=0.4,
        screening_label=screening,
        screening_threshold=0.15,
        heatmap_uri=f"/data/artifacts/{slide_id}/ln{index:03d}-cam.png",
        lesion_polygons=[lesion or MICRO_LESION] if label == LnLabel.POSITIVE else [],
        model_version="escnn-resnet50@sha256:2222",
        occurred_at=at or T0 + timedelta(minutes=5),
    )


def marrow_classified(slide_id: str = "M-001", study_id: str = "ST-002") -> MarrowClassified:
    probabilities = {MarrowClass.MDS: 0.7, MarrowClass.AML: 0.2, MarrowClass.DONOR: 0.1}
    return MarrowClassified(
        slide_id=slide_id,
        study_id=study_id,
        rois=[
            MarrowRoi(
                index=0,
                bbox=BBox(x=0, y=0, width=2048, height=2048),
                probabilities=probabilities,
                osm_uri="/data/artifacts/M-001/roi0-osm.png",
                quality={"cellularity": 0.8, "stain_quality": 0.9},
            )
        ],
        case_call=MarrowClass.MDS,
        case_probabilities=probabilities,
        model_version="marrow-densenet201@sha256:3333",
        occurred_at=T0,
    )


def report_ready(study_id: str = "ST-001") -> ReportReady:
    return ReportReady(
        study_id=study_id,
        report_version=1,
        slide_count=1,
        slides_complete=1,
        slides_failed=0,
        ln_positive=1,
        ln_negative=1,
        ln_examined=2,
        pn_category=PnCategory.N1,
        below_ajcc_minimum=True,
        fhir_report={"resourceType": "DiagnosticReport", "status": "preliminary"},
        occurred_at=T0,
    )


def slide_failed(slide_id: str = "S-002", study_id: str = "ST-001") -> SlideFailed:
    return SlideFailed(
        slide_id=slide_id,
        study_id=study_id,
        stage=FailureStage.INGEST,
        error_code=ErrorCode.MPP_MISSING,
        message="The slide has no openslide.mpp-x; pass --mpp.",
        retriable=False,
        occurred_at=T0,
    )


def one_of_each() -> list[Event]:
    """One valid instance of every event type, in pipeline order."""
    return [
        slide_scanned(),
        slide_detected(),
        ln_detected(),
        ln_scored(),
        marrow_classified(),
        report_ready(),
        slide_failed(),
    ]
