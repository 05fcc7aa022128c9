"""Synthetic slides open in OpenSlide with the right resolution and ingest like real ones."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np
import openslide
import pytest

from pathstream.shared.events import MarrowClass, Specimen
from pathstream.shared.tilestore.ingest import ingest_slide
from pathstream.shared.tilestore.reader import TileStore
from pathstream.synthetic.lymph_node import write_lymph_node_slide
from pathstream.synthetic.marrow import write_marrow_cohort
from pathstream.synthetic.truth import LymphNodeSlideTruth, MarrowCohortTruth
from tests.integration.slide_checks import assert_physical_size, region_difference

pytestmark = pytest.mark.integration


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lymph_node_slide_is_a_pyramidal_tiff_with_truth(tmp_path: Path) -> None:
    slide, truth = write_lymph_node_slide(tmp_path, 9000, 7000, 2, seed=4, mpp=0.5, positive_fraction=0.5)
    with openslide.OpenSlide(str(slide)) as handle:
        assert openslide.OpenSlide.detect_format(str(slide)) == "generic-tiff"
        assert handle.dimensions == (9000, 7000)
        assert handle.level_count == 3 and handle.level_dimensions[1] == (2250, 1750)
        assert float(handle.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        node = truth.lymph_nodes[0]
        polygon = np.array(node.polygon)
        cx, cy = polygon.mean(axis=0).astype(int)
        centre = np.asarray(handle.read_region((int(cx) - 50, int(cy) - 50), 0, (100, 100)).convert("RGB"))
        corner = np.asarray(handle.read_region((0, 0), 0, (50, 50)).convert("RGB"))
    assert centre.mean() < corner.mean() - 40, "a lymph node is much darker than the glass"
    loaded = LymphNodeSlideTruth.load(tmp_path / "truth.json")
    assert loaded == truth
    assert len(loaded.lymph_nodes) == 2 and sum(1 for n in loaded.lymph_nodes if n.lesions) == 1
    for n in loaded.lymph_nodes:
        xs = [p[0] for p in n.polygon]
        ys = [p[1] for p in n.polygon]
        assert min(xs) >= 0 and max(xs) < 9000 and min(ys) >= 0 and max(ys) < 7000


def test_same_seed_same_file(tmp_path: Path) -> None:
    a, _ = write_lymph_node_slide(tmp_path / "a", 4000, 4000, 1, seed=9, mpp=0.5)
    b, _ = write_lymph_node_slide(tmp_path / "b", 4000, 4000, 1, seed=9, mpp=0.5)
    c, _ = write_lymph_node_slide(tmp_path / "c", 4000, 4000, 1, seed=10, mpp=0.5)
    assert _sha(a) == _sha(b) != _sha(c)


def test_reduced_levels_match_level0_down_to_the_last_partial_tile_row(tmp_path: Path) -> None:
    # 4000 rows = 7 full tile rows + a partial one; the reduced levels once lost that last row.
    slide, _ = write_lymph_node_slide(tmp_path, 5200, 4000, 2, seed=5, mpp=0.92)
    with openslide.OpenSlide(str(slide)) as handle:
        level0 = np.asarray(handle.read_region((0, 0), 0, handle.dimensions).convert("RGB"))
        size1 = handle.level_dimensions[1]
        level1 = np.asarray(handle.read_region((0, 0), 1, size1).convert("RGB"))
    expected = cv2.resize(level0, size1, interpolation=cv2.INTER_AREA)
    difference = np.abs(expected.astype(int) - level1.astype(int))
    bottom = difference[-150:]
    assert difference.mean() < 3 and bottom.mean() < 3, (difference.mean(), bottom.mean())


def test_a_slide_too_small_for_its_nodes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no room"):
        write_lymph_node_slide(tmp_path, 2000, 2000, 6, seed=1, mpp=0.25)


def test_synthetic_slide_ingests_at_the_right_size_and_pixels(tmp_path: Path) -> None:
    slide, _ = write_lymph_node_slide(tmp_path / "slide", 10000, 8000, 1, seed=2, mpp=0.25)
    result = ingest_slide(slide, str(tmp_path / "stores"), "synthetic")
    store = TileStore.open(result.store_uri)
    assert_physical_size(store)
    escnn = store.array("20x")
    assert (escnn.width, escnn.height) == (round(10000 * 0.25 / 0.46), round(8000 * 0.25 / 0.46))
    mean, p99 = region_difference(slide, escnn, 1500, 1200, 512)
    assert mean < 1.0 and p99 < 10, (mean, p99)


def test_marrow_cohort_fields_truth_and_slides(tmp_path: Path) -> None:
    cohort = write_marrow_cohort(
        tmp_path, cases=3, seed=2, rois=2, field_size=256, slides=True, slide_size=2048
    )
    assert {c.label for c in cohort.cases} == set(MarrowClass)
    assert MarrowCohortTruth.load(tmp_path / "truth.json") == cohort
    with (tmp_path / "fields.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {r["patient_id"] for r in rows} == {c.patient_id for c in cohort.cases}
    for case in cohort.cases:
        image = cv2.imread(str(tmp_path / case.fields[0]))
        assert image.shape == (256, 256, 3)
        assert case.slide is not None
        with openslide.OpenSlide(str(tmp_path / case.slide)) as handle:
            assert handle.dimensions == (2048, 2048)
            assert float(handle.properties["openslide.mpp-x"]) == pytest.approx(0.2)
    aml = next(c for c in cohort.cases if c.label == MarrowClass.AML)
    result = ingest_slide(tmp_path / aml.slide, str(tmp_path / "stores"), "smear", Specimen.BONE_MARROW)  # type: ignore[operator]
    roi = next(a for a in result.arrays if a.name == "marrow_roi")
    assert roi.mpp == pytest.approx(0.2) and (roi.width, roi.height) == (2048, 2048)
