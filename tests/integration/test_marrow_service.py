"""`pathstream serve marrow` on the real broker: a synthetic smear in, `MarrowClassified` out;
lymph-node scans left alone; a broken smear becomes `SlideFailed`; a redelivery is the same event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from pathstream.services.marrow.app import GROUP_ID, build_marrow_app, load_classifier
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import (
    Event,
    FailureStage,
    MarrowClassified,
    SlideFailed,
    SlideScanned,
    Specimen,
)
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.fingerprint import slide_sha256
from pathstream.shared.topics import Topic
from tests.integration.bus_helpers import collected, wait_until
from tests.integration.marrow_fixtures import SMEAR_PX, small_checkpoint, write_smears

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _scanned(slide: Path, slide_id: str, specimen: Specimen = Specimen.BONE_MARROW) -> SlideScanned:
    return SlideScanned(
        slide_id=slide_id,
        study_id="BM26-0007",
        specimen=specimen,
        uri=str(slide),
        sha256=slide_sha256(slide) if slide.exists() else "0" * 64,
    )


@pytest.fixture
async def outputs(bus_settings: PathStreamSettings) -> AsyncIterator[dict[str, list[Any]]]:
    """What the marrow service publishes."""
    topics: dict[str, tuple[Topic, type[Event]]] = {
        "classified": (Topic.MARROW_CLASSIFIED, MarrowClassified),
        "failed": (Topic.SLIDES_FAILED, SlideFailed),
    }
    async with collected(bus_settings, topics) as seen:
        yield seen


async def test_marrow_service_classifies_smears_and_reports_failures(
    bus_settings: PathStreamSettings, outputs: dict[str, list[Any]], tmp_path: Path
) -> None:
    truth = write_smears(tmp_path / "smears", cases=1)
    smear = tmp_path / "smears" / (truth.cases[0].slide or "")
    broken = tmp_path / "smears" / "broken.tif"
    broken.write_bytes(b"II*\x00" + b"\x00" * 64)
    checkpoint = tmp_path / "marrow.pt"
    version = small_checkpoint(checkpoint)
    settings = bus_settings.model_copy(
        update={
            "allowed_roots": [str(tmp_path)],
            "marrow_checkpoint": checkpoint,
            "marrow_roi_px": 512,
            "marrow_occluder_px": 32,
            "marrow_occlusion_stride_px": 32,
            "device": "cpu",
        }
    )
    _, broker = build_marrow_app(settings, load_classifier(settings))
    assert GROUP_ID == "marrow"
    await start_with_retry(broker, settings)
    try:
        await publish_event(broker, settings, _scanned(smear, "BM26-0007_A1"))
        await publish_event(broker, settings, _scanned(broken, "BM26-0007_A2"))
        # A lymph-node scan is the detector's; the marrow service acknowledges and skips it.
        await publish_event(broker, settings, _scanned(smear, "BM26-0007_LN1", Specimen.LYMPH_NODE))
        await wait_until(
            lambda: len(outputs["classified"]) == 1 and len(outputs["failed"]) == 1,
            timeout_s=240,
            what="one MarrowClassified and one SlideFailed",
        )
        # A redelivered scan (same event) gives the same result event, which the reporter dedupes.
        await publish_event(broker, settings, _scanned(smear, "BM26-0007_A1"))
        await wait_until(lambda: len(outputs["classified"]) == 2, timeout_s=240, what="the repeat")
        await asyncio.sleep(1.0)  # anything extra (the lymph-node scan) would arrive by now
    finally:
        await broker.stop()

    first, again = outputs["classified"]
    assert first.event_id == again.event_id and first.rois == again.rois
    assert first.slide_id == "BM26-0007_A1" and first.model_version == version
    assert len(first.rois) == settings.marrow_roi_count
    assert set(first.case_probabilities) == {"mds", "aml", "donor"}
    assert first.case_call == max(first.case_probabilities, key=lambda k: first.case_probabilities[k])
    boxes = [r.bbox for r in first.rois]
    for roi in first.rois:
        assert roi.bbox.x + roi.bbox.width <= SMEAR_PX and roi.bbox.y + roi.bbox.height <= SMEAR_PX
        assert roi.bbox.width == 512 and "combined" in roi.quality
        image = cv2.imread(roi.osm_uri or "")
        assert image is not None and image.shape[:2] == (512, 512)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert (
                a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y
            ), "proposed ROIs overlap"
    (failed,) = outputs["failed"]
    assert failed.slide_id == "BM26-0007_A2" and failed.stage == FailureStage.INGEST
    assert failed.error_code in {ErrorCode.SLIDE_CORRUPT, ErrorCode.NOT_A_SLIDE}


def test_serving_without_a_checkpoint_says_what_to_set(bus_settings: PathStreamSettings) -> None:
    with pytest.raises(PathStreamError) as caught:
        load_classifier(bus_settings)
    assert caught.value.code == ErrorCode.MODEL_UNAVAILABLE
    assert "PATHSTREAM_MARROW_CHECKPOINT" in caught.value.hint
