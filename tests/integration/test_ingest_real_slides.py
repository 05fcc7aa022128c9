"""Ingestion of every real slide in ../shared/data/real/wsi/ (see its MANIFEST.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathstream.shared.events import Specimen
from pathstream.shared.tilestore.ingest import ingest_slide
from pathstream.shared.tilestore.reader import TileStore
from tests.conftest import SHARED_DATA
from tests.integration.slide_checks import assert_physical_size, region_difference

pytestmark = pytest.mark.integration

WSI = SHARED_DATA / "wsi"

# (file, operator mpp, specimen, OpenSlide vendor)
REAL_SLIDES = [
    ("CMU-1-Small-Region.svs", None, Specimen.LYMPH_NODE, "aperio"),
    ("test3-DAPI-2-387.ndpi", None, Specimen.BONE_MARROW, "hamamatsu"),
    ("CMU-1-Small-Region_dicom_FALSECOLOUR", None, Specimen.LYMPH_NODE, "dicom"),
    # Its resolution tag claims 0.00499 um/px; the operator gives the true 0.499.
    ("CMU-1-Small-Region.jpeg.tiff", 0.499, Specimen.LYMPH_NODE, "generic-tiff"),
    # No mpp at all in the file; the operator supplies it.
    ("tcga-cr-7395-01a-01-ts1.svs", 0.25, Specimen.LYMPH_NODE, "aperio"),
]


@pytest.mark.parametrize(("name", "mpp", "specimen", "vendor"), REAL_SLIDES, ids=[s[0] for s in REAL_SLIDES])
def test_real_slide_ingests_to_the_right_physical_size_and_pixels(
    name: str, mpp: float | None, specimen: Specimen, vendor: str, tmp_path: Path
) -> None:
    slide = WSI / name
    result = ingest_slide(slide, str(tmp_path), "slide", specimen, mpp=mpp, allowed_roots=[str(SHARED_DATA)])
    assert result.vendor == vendor
    assert result.mpp_source == ("operator" if mpp else "metadata")
    expected_arrays = {"20x", "1.25x"} | ({"marrow_roi"} if specimen == Specimen.BONE_MARROW else set())
    assert {a.name for a in result.arrays} == expected_arrays

    store = TileStore.open(result.store_uri)
    assert store.sha256 == result.sha256
    assert_physical_size(store)

    escnn = store.array("20x")
    assert abs(escnn.mpp - 0.46) < 1e-9
    mean, p99 = region_difference(slide, escnn, escnn.width // 3, escnn.height // 3, 512)
    assert mean < 1.0 and p99 < 10, (mean, p99)

    detector = store.array("1.25x")
    assert abs(detector.mpp - 7.36) < 1e-9
    size = min(detector.width, detector.height) - 2
    mean, p99 = region_difference(slide, detector, 1, 1, size)
    assert mean < 1.5 and p99 < 20, (mean, p99)


def test_marrow_roi_array_stays_native_when_the_scan_is_coarser(tmp_path: Path) -> None:
    result = ingest_slide(WSI / "CMU-1-Small-Region.svs", str(tmp_path), "m", Specimen.BONE_MARROW)
    roi = next(a for a in result.arrays if a.name == "marrow_roi")
    assert roi.mpp == pytest.approx(0.499)
    assert (roi.width, roi.height) == (2220, 2967)
    store = TileStore.open(result.store_uri)
    mean, _ = region_difference(WSI / "CMU-1-Small-Region.svs", store.array("marrow_roi"), 500, 700, 256)
    assert mean < 0.5


def test_marrow_roi_array_is_downsampled_to_0_2_from_a_finer_scan(tmp_path: Path) -> None:
    result = ingest_slide(WSI / "CMU-1-Small-Region.svs", str(tmp_path), "m", Specimen.BONE_MARROW, mpp=0.12)
    roi = next(a for a in result.arrays if a.name == "marrow_roi")
    assert roi.mpp == pytest.approx(0.2)
    assert roi.width == round(2220 * 0.12 / 0.2)
