"""The detector service on the real broker: LN events for a synthetic slide, zero LNs, failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pathstream.services.detector.app import build_detector_app, load_segmenter
from pathstream.services.detector.handler import CONTOURS_FILE, ln_id_for
from pathstream.services.detector.inference import LymphNodeSegmenter
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import (
    Event,
    FailureStage,
    LymphNodeDetected,
    SlideDetected,
    SlideFailed,
    SlideScanned,
    Specimen,
)
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.fingerprint import slide_sha256
from pathstream.shared.topics import Topic
from tests.integration.bus_helpers import collected, wait_until
from tests.integration.detector_cohort import TrainedDetector, make_slide

# The first test to use `trained_detector` also pays for training it (about 2 minutes on 2 cores).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _scanned(slide: Path, slide_id: str, specimen: Specimen = Specimen.LYMPH_NODE) -> SlideScanned:
    return SlideScanned(
        slide_id=slide_id,
        study_id="S26-0042",
        specimen=specimen,
        uri=str(slide),
        sha256=slide_sha256(slide) if slide.exists() else "0" * 64,
    )


@pytest.fixture
async def outputs(bus_settings: PathStreamSettings) -> AsyncIterator[dict[str, list[Any]]]:
    """Everything the detector publishes."""
    topics: dict[str, tuple[Topic, type[Event]]] = {
        "detected": (Topic.SLIDES_DETECTED, SlideDetected),
        "lns": (Topic.LN_DETECTED, LymphNodeDetected),
        "failed": (Topic.SLIDES_FAILED, SlideFailed),
    }
    async with collected(bus_settings, topics) as seen:
        yield seen


async def test_detector_service_publishes_lns_zero_ln_results_and_failures(
    trained_detector: TrainedDetector,
    bus_settings: PathStreamSettings,
    outputs: dict[str, list[Any]],
    tmp_path: Path,
) -> None:
    settings = bus_settings.model_copy(update={"allowed_roots": [str(trained_detector.root), str(tmp_path)]})
    slide, truth = make_slide(tmp_path / "slides", 301, nodes=3)
    empty, empty_truth = make_slide(tmp_path / "slides", 302, nodes=0)
    assert len(empty_truth.lymph_nodes) == 0
    segmenter = LymphNodeSegmenter.from_checkpoint(trained_detector.outcome.best_checkpoint, device="cpu")
    _, broker = build_detector_app(settings, segmenter)
    await start_with_retry(broker, settings)
    try:
        await publish_event(broker, settings, _scanned(slide, "S26-0042_A1"))
        await publish_event(broker, settings, _scanned(empty, "S26-0042_A2"))
        await publish_event(broker, settings, _scanned(tmp_path / "missing.svs", "S26-0042_A3"))
        # Marrow slides are the marrow service's; the detector leaves them alone.
        await publish_event(broker, settings, _scanned(slide, "S26-0042_B1", Specimen.BONE_MARROW))
        await wait_until(
            lambda: len(outputs["detected"]) == 2 and len(outputs["failed"]) == 1,
            timeout_s=180,
            what="two SlideDetected and one SlideFailed",
        )
        await asyncio.sleep(1.0)  # anything extra (duplicates, the marrow slide) would arrive by now
    finally:
        await broker.stop()

    by_slide = {e.slide_id: e for e in outputs["detected"]}
    assert set(by_slide) == {"S26-0042_A1", "S26-0042_A2"}
    found = by_slide["S26-0042_A1"]
    assert found.ln_count == len(truth.lymph_nodes) == 3
    assert by_slide["S26-0042_A2"].ln_count == 0
    assert found.model_version == segmenter.model_version
    assert (found.mpp_x, found.mpp_y) == pytest.approx((0.92, 0.92))

    lns = sorted(outputs["lns"], key=lambda e: e.index)
    assert [e.ln_id for e in lns] == [ln_id_for("S26-0042_A1", i) for i in range(3)]
    assert all(e.slide_id == "S26-0042_A1" and e.store_uri == found.store_uri for e in lns)
    areas_um2 = sorted(ln.area_um2 for ln in truth.lymph_nodes)
    for detected, true_area in zip(sorted(e.area_um2 for e in lns), areas_um2, strict=True):
        assert detected == pytest.approx(true_area, rel=0.25)

    geojson = json.loads(Path(found.contours_uri or "").read_text())
    assert [f["properties"]["ln_id"] for f in geojson["features"]] == [e.ln_id for e in lns]
    empty_geojson = Path(by_slide["S26-0042_A2"].contours_uri or "")
    assert empty_geojson.name == CONTOURS_FILE and json.loads(empty_geojson.read_text())["features"] == []

    (failure,) = outputs["failed"]
    assert failure.slide_id == "S26-0042_A3" and failure.stage == FailureStage.INGEST
    # A missing file may still be on its way from the scanner: retried, then reported as retriable.
    assert failure.error_code == ErrorCode.SLIDE_NOT_FOUND and failure.retriable


async def test_a_redelivered_scan_yields_the_same_event_ids(
    trained_detector: TrainedDetector, bus_settings: PathStreamSettings, tmp_path: Path
) -> None:
    from pathstream.services.detector.handler import DetectorHandler

    settings = bus_settings.model_copy(update={"allowed_roots": [str(tmp_path)]})
    slide, _ = make_slide(tmp_path / "slides", 303, nodes=2)
    handler = DetectorHandler(
        settings, LymphNodeSegmenter.from_checkpoint(trained_detector.outcome.best_checkpoint, device="cpu")
    )
    event = _scanned(slide, "S26-0043_A1")
    first, second = handler.handle(event), handler.handle(event)
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert [type(e).__name__ for e in first][-1] == "SlideDetected"


def test_service_refuses_to_start_without_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(PathStreamError, match="No LN detector checkpoint") as info:
        load_segmenter(PathStreamSettings(data_dir=tmp_path))
    assert info.value.code == ErrorCode.MODEL_UNAVAILABLE


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [("notes.svs", b"this is not a slide", ErrorCode.NOT_A_SLIDE), ("empty.svs", b"", ErrorCode.SLIDE_EMPTY)],
)
def test_bad_slides_become_one_failure_event_each(
    tmp_path: Path, name: str, content: bytes, code: ErrorCode
) -> None:
    from pathstream.services.detector.handler import DetectorHandler
    from pathstream.services.detector.model import DeepLabV3Plus
    from tests.integration.detector_cohort import SMALL_DETECTOR

    settings = PathStreamSettings(data_dir=tmp_path, handler_retry_wait_s=0.01)
    bad = tmp_path / name
    bad.write_bytes(content)
    handler = DetectorHandler(
        settings, LymphNodeSegmenter(DeepLabV3Plus(SMALL_DETECTOR), "untrained", device="cpu")
    )
    (failure,) = handler.handle(_scanned(bad, "S26-0044_A1"))
    assert isinstance(failure, SlideFailed)
    assert failure.error_code == code and failure.stage == FailureStage.INGEST and not failure.retriable
    outside = handler.handle(_scanned(Path("/etc/hostname"), "S26-0044_A2"))
    assert [f.error_code for f in outside if isinstance(f, SlideFailed)] == [ErrorCode.OUTSIDE_ALLOWED_ROOTS]
    assert not (tmp_path / "artifacts").exists(), "a failed slide must leave no artifact behind"
