"""Automatic ROI proposal on a whole synthetic smear, judged against the smear's own layout.

The smear is rendered at 0.8 um/px (2048 px = 1.6 mm a side, so the test stays fast; every size in
the proposer is in micrometres, so the default 204.8 um field is 256 px here). Its layout's polygons
are the truth: particles (spicules), thick, thin (peripheral-blood) and precipitate areas.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pathstream.services.marrow.roi_features import CRITERIA
from pathstream.services.marrow.roi_proposal import RoiProposalConfig, propose_rois, propose_rois_in_image
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import MarrowClass
from pathstream.synthetic.marrow import MarrowRenderer, case_mixture, plan_smear

MPP = 0.8
SIZE = 2048
SEED = 3
NEAR_UM = 250.0


@pytest.fixture(scope="module")
def smear() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(uint8 SIZE x SIZE x 3 RGB smear at MPP, truth masks by region name incl. "near")."""
    rng = np.random.default_rng(SEED)
    layout = plan_smear(SIZE, SIZE, MPP, rng)
    image = MarrowRenderer(case_mixture(MarrowClass.MDS, rng), SEED, MPP, layout)(0, 0, SIZE, SIZE)
    masks: dict[str, np.ndarray] = {}
    for name in ("spicules", "thick", "thin", "artefacts"):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        cv2.fillPoly(mask, [p.astype(np.int32) for p in getattr(layout, name)], 1)
        masks[name] = mask.astype(bool)
    distance = cv2.distanceTransform((~masks["spicules"]).astype(np.uint8), cv2.DIST_L2, 5) * MPP
    masks["near"] = distance <= NEAR_UM
    return image, masks


def _cover(mask: np.ndarray, bbox: tuple[int, int, int, int]) -> float:
    x, y, w, h = bbox
    return float(mask[y : y + h, x : x + w].mean())


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_rois_lie_beside_particles_away_from_blood_thick_and_artefacts(
    smear: tuple[np.ndarray, dict[str, np.ndarray]],
) -> None:
    image, truth = smear
    rois = propose_rois_in_image(image, MPP)
    assert len(rois) == 4 and rois.shortfall is None
    near = [_cover(truth["near"], roi.bbox) for roi in rois]
    # Only about a third of this smear lies within 250 um of a particle; the ROIs nearly all do.
    assert truth["near"].mean() < 0.4
    assert min(near) >= 0.5 and float(np.mean(near)) >= 0.8, near
    for roi in rois:
        assert roi.width == roi.height == round(204.8 / MPP)
        assert _cover(truth["thin"], roi.bbox) <= 0.25, roi.explanation()
        assert _cover(truth["thick"], roi.bbox) <= 0.25, roi.explanation()
        assert _cover(truth["artefacts"], roi.bbox) <= 0.02, roi.explanation()
        assert _cover(truth["spicules"], roi.bbox) <= 0.5, roi.explanation()  # beside, not on, a particle


@pytest.mark.parametrize("k", [1, 4, 10])
def test_k_is_honoured_and_rois_never_overlap(
    smear: tuple[np.ndarray, dict[str, np.ndarray]], k: int
) -> None:
    image, _ = smear
    rois = propose_rois_in_image(image, MPP, RoiProposalConfig(k=k))
    assert len(rois) == k
    boxes = [roi.bbox for roi in rois]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    for x, y, w, h in boxes:
        assert x >= 0 and y >= 0 and x + w <= SIZE and y + h <= SIZE


def test_rois_are_ranked_and_explained(smear: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    image, _ = smear
    rois = propose_rois_in_image(image, MPP)
    assert [roi.rank for roi in rois] == list(range(1, len(rois) + 1))
    combined = [roi.combined for roi in rois]
    assert combined == sorted(combined, reverse=True)
    for roi in rois:
        assert set(roi.scores) == set(CRITERIA)
        assert roi.quality["combined"] == roi.combined
        assert all(0.0 <= v <= 1.0 for v in roi.quality.values())
        text = roi.explanation()
        assert f"ROI {roi.rank} at x={roi.x}, y={roi.y}" in text
        assert all(criterion in text for criterion in CRITERIA)
        assert "near a particle" in text  # the overview's context reached the spicule criterion


def test_with_an_overview_only_the_best_candidates_are_read(
    smear: tuple[np.ndarray, dict[str, np.ndarray]],
) -> None:
    image, _ = smear
    side = round(SIZE * MPP / 7.36)  # the tile store's 1.25x overview resolution
    overview = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    reads: list[tuple[int, int, int, int]] = []

    def read(x: int, y: int, w: int, h: int) -> np.ndarray:
        reads.append((x, y, w, h))
        return image[y : y + h, x : x + w]

    config = RoiProposalConfig(k=4, candidates_to_score=12)
    rois = propose_rois(read, SIZE, SIZE, MPP, overview=overview, config=config)
    assert len(rois) == 4
    assert rois.scored == len(reads) <= config.max_fields_scored
    assert rois.candidates > 10 * rois.scored
    assert all(w == h == 256 for _, _, w, h in reads)
    assert sum(w * h for _, _, w, h in reads) < 0.25 * SIZE * SIZE


def test_an_image_smaller_than_a_field_is_one_roi_the_whole_image(
    smear: tuple[np.ndarray, dict[str, np.ndarray]],
) -> None:
    image, _ = smear
    best = propose_rois_in_image(image, MPP)[0]
    crop = image[best.y : best.y + 200, best.x : best.x + 240]
    rois = propose_rois_in_image(crop, MPP, RoiProposalConfig(k=4))
    assert len(rois) == 1 and rois.candidates == 1
    assert rois[0].bbox == (0, 0, 240, 200)
    assert rois.shortfall is not None and "only 1 of 4" in rois.shortfall


def test_fewer_usable_fields_than_k_returns_them_and_says_so(
    smear: tuple[np.ndarray, dict[str, np.ndarray]],
) -> None:
    image, _ = smear
    best = propose_rois_in_image(image, MPP)[0]
    slide = np.full((1024, 1024, 3), 244, np.uint8)  # empty glass with one good field on it
    slide[512:768, 512:768] = image[best.y : best.y + 256, best.x : best.x + 256]
    rois = propose_rois_in_image(slide, MPP, RoiProposalConfig(k=4))
    assert len(rois) == 1
    assert rois[0].bbox == (512, 512, 256, 256)
    assert rois.shortfall is not None and "only 1 of 4" in rois.shortfall


def test_a_blank_slide_raises_slide_empty_with_the_reason() -> None:
    with pytest.raises(PathStreamError) as raised:
        propose_rois_in_image(np.full((1024, 1024, 3), 244, np.uint8), MPP)
    assert raised.value.code == ErrorCode.SLIDE_EMPTY
    assert "blank" in raised.value.message
    assert raised.value.hint


def test_bad_settings_are_refused() -> None:
    for settings in (
        {"k": 0},
        {"field_um": -1.0},
        {"weights": {"sharpness": 1.0}},
        {"weights": {"focus": -1.0}},
    ):
        with pytest.raises(PathStreamError) as raised:
            RoiProposalConfig(**settings)  # type: ignore[arg-type]
        assert raised.value.code == ErrorCode.INVALID_CONFIGURATION
