"""The slide-quality gate's checks on images whose answer is known (real cell images, re-stained,
re-coloured and blank ones); the real slides go through it in tests/integration/test_slide_quality_gate.py."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.tilestore.quality import (
    QualityThresholds,
    check_slide_quality,
    measure_quality,
    quality_problems,
)
from tests.bad_slides import restained
from tests.conftest import SHARED_DATA

MPP = 7.36
DAB = (0.268, 0.570, 0.776)
SMEARS = sorted((SHARED_DATA / "bone_marrow_mll_smear").glob("*.jpg"))


def _slide_like(seed: int = 0) -> np.ndarray:
    """White glass with an H&E-coloured disc of tissue (~2 mm across at 7.36 um/px)."""
    rng = np.random.default_rng(seed)
    image = np.full((600, 800, 3), 246, np.uint8)
    yy, xx = np.mgrid[:600, :800]
    disc = (yy - 300) ** 2 + (xx - 400) ** 2 < 150**2
    pink = np.array([200, 120, 170]) + rng.integers(-20, 20, (int(disc.sum()), 3))
    image[disc] = np.clip(pink, 0, 255)
    return image


def test_a_brightfield_h_and_e_slide_passes_with_its_measurements() -> None:
    quality = check_slide_quality(_slide_like(), MPP, "S1")
    assert quality.glass_luminance > 240 and quality.glass_spread < 2
    assert 1.0 < quality.tissue_mm2 < 5.0
    assert quality.green_share > 0.38 and quality.tissue_od[1] == max(quality.tissue_od)


def test_a_dark_background_is_not_brightfield() -> None:
    fluorescence = 255 - _slide_like()  # bright structures on black, as a fluorescence scan
    with pytest.raises(PathStreamError) as info:
        check_slide_quality(fluorescence, MPP, "S1")
    assert info.value.code == ErrorCode.QC_FAILED
    assert "background is dark" in info.value.message and "S1" in info.value.message


def test_false_colour_shows_as_coloured_glass() -> None:
    swapped = _slide_like()[..., [0, 2, 1]].copy()
    swapped[..., 1] = (swapped[..., 1] * 0.55).astype(np.uint8)  # salmon glass, as the real DICOM
    problems = quality_problems(measure_quality(swapped, MPP, QualityThresholds()), QualityThresholds())
    assert len(problems) == 1 and "glass is coloured" in problems[0]


def test_a_blank_slide_has_no_tissue() -> None:
    with pytest.raises(PathStreamError, match="no tissue was found"):
        check_slide_quality(np.full((400, 600, 3), 250, np.uint8), MPP, "S1")


def test_a_speck_of_tissue_below_the_minimum_area_is_blank() -> None:
    image = np.full((400, 600, 3), 250, np.uint8)
    image[200:203, 300:303] = (150, 60, 160)  # 9 px = 0.0005 mm^2
    assert (
        "no tissue"
        in quality_problems(measure_quality(image, MPP, QualityThresholds()), QualityThresholds())[0]
    )


def test_the_same_tissue_stained_with_dab_is_refused() -> None:
    with pytest.raises(PathStreamError) as info:
        check_slide_quality(restained(_slide_like(), DAB), MPP, "S1")
    assert "does not absorb like H&E or MGG" in info.value.message


@pytest.mark.parametrize("path", SMEARS, ids=[p.stem for p in SMEARS])
def test_real_mgg_cells_absorb_as_the_stain_check_expects(path: object) -> None:
    # Single-cell crops have no glass, so only the stain measurement applies to them.
    quality = measure_quality(np.asarray(Image.open(path).convert("RGB")), 0.2, QualityThresholds())  # type: ignore[arg-type]
    assert quality.tissue_od[1] == max(quality.tissue_od)
    assert quality.green_share >= QualityThresholds().min_green_share


def test_a_malformed_overview_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="uint8"):
        measure_quality(np.zeros((4, 4), np.uint8), MPP, QualityThresholds())
