"""ROI criteria react to what they measure, on synthetic smear fields at 0.2 um/px.

The smear has a hand-placed layout so every field's truth is known: one particle (spicule), a
field beside it, the same distance away on the other sides a field under stain precipitate and a
thick field, and a peripheral-blood (thin) field far from any particle. Each field is 1024 px
(204.8 um), the default ROI size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from pathstream.services.marrow.roi_features import CRITERIA, assess_field, combine
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.synthetic.marrow import MarrowRenderer, Mixture, SmearLayout

MPP = 0.2
FIELD = 1024
CENTRE = 3000
RADIUS = 750  # 150 um particle
GAP = 50  # 10 um between the particle and the fields beside it


def _circle(cx: float, cy: float, radius: float) -> np.ndarray:
    angles = np.linspace(0, 2 * math.pi, 72, endpoint=False)
    return np.rint(np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)).astype(np.int32)


def _rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], np.int32)


NEAR = (CENTRE + RADIUS + GAP, CENTRE - FIELD // 2)
ARTEFACT = (CENTRE - RADIUS - GAP - FIELD, CENTRE - FIELD // 2)
THICK = (CENTRE - FIELD // 2, CENTRE + RADIUS + GAP)
INSIDE = (CENTRE - FIELD // 2, CENTRE - FIELD // 2)
THIN = (9000, 9000)

LAYOUT = SmearLayout(
    spicules=[_circle(CENTRE, CENTRE, RADIUS)],
    thick=[_rect(THICK[0] - 200, THICK[1] - 100, THICK[0] + FIELD + 200, THICK[1] + FIELD + 200)],
    thin=[_rect(THIN[0] - 500, THIN[1] - 500, THIN[0] + FIELD + 500, THIN[1] + FIELD + 500)],
    artefacts=[_circle(ARTEFACT[0] + FIELD / 2, ARTEFACT[1] + FIELD / 2, 300)],
)


@pytest.fixture(scope="module")
def fields() -> dict[str, np.ndarray]:
    """uint8 1024 x 1024 x 3 RGB fields at 0.2 um/px, by kind."""
    render = MarrowRenderer(
        Mixture(blast=0.08, dysplasia=0.4, cellularity=0.7), seed=11, mpp=MPP, layout=LAYOUT
    )
    origins = {"near": NEAR, "artefact": ARTEFACT, "thick": THICK, "inside": INSIDE, "thin": THIN}
    return {name: render(x, y, FIELD, FIELD) for name, (x, y) in origins.items()}


def test_a_field_beside_a_particle_is_good_on_every_criterion(fields: dict[str, np.ndarray]) -> None:
    near = assess_field(fields["near"], MPP)
    assert near.accepted
    assert set(near.scores) == set(CRITERIA)
    assert all(score >= 0.5 for score in near.scores.values()), near.explain()
    assert near.combined >= 0.7, near.explain()


def test_peripheral_blood_scores_low_on_cellularity_and_spicule(fields: dict[str, np.ndarray]) -> None:
    near, thin = assess_field(fields["near"], MPP), assess_field(fields["thin"], MPP)
    assert thin.measurements["nucleated_red_ratio"] < near.measurements["nucleated_red_ratio"] / 2
    assert thin.scores["cellularity"] < near.scores["cellularity"] - 0.4, (near.explain(), thin.explain())
    assert thin.scores["spicule"] < near.scores["spicule"] - 0.4, (near.explain(), thin.explain())
    assert thin.combined < near.combined / 2


def test_stain_precipitate_scores_low_on_artefacts(fields: dict[str, np.ndarray]) -> None:
    near, artefact = assess_field(fields["near"], MPP), assess_field(fields["artefact"], MPP)
    assert near.scores["no_artefacts"] >= 0.9, near.explain()
    assert artefact.scores["no_artefacts"] <= 0.2, artefact.explain()
    assert artefact.measurements["dots_per_1000um2"] > 10 * max(near.measurements["dots_per_1000um2"], 0.05)


def test_thick_and_particle_interior_fields_score_low_on_clumping(fields: dict[str, np.ndarray]) -> None:
    near = assess_field(fields["near"], MPP)
    thick = assess_field(fields["thick"], MPP)
    inside = assess_field(fields["inside"], MPP)
    assert near.scores["no_clumping"] >= 0.9, near.explain()
    assert thick.scores["no_clumping"] <= 0.2, thick.explain()
    assert thick.measurements["crowded_fraction"] > 0.8
    # Inside the particle is the most particle-like field of all, yet too packed to read.
    assert inside.scores["spicule"] == 1.0
    assert inside.scores["no_clumping"] < near.scores["no_clumping"] - 0.3, inside.explain()
    assert thick.combined < near.combined / 2 and inside.combined < near.combined


def test_washed_out_and_over_stained_fields_score_low_on_stain(fields: dict[str, np.ndarray]) -> None:
    near = fields["near"].astype(np.float32)
    pale = (near * 0.55 + 255 * 0.45).astype(np.uint8)
    dark = (near * 0.5).astype(np.uint8)
    good, washed, over = (assess_field(image, MPP) for image in (fields["near"], pale, dark))
    assert good.scores["stain"] >= 0.9
    assert washed.scores["stain"] < 0.3, washed.explain()
    assert over.scores["stain"] < 0.3, over.explain()


def test_blur_scores_low_on_focus(fields: dict[str, np.ndarray]) -> None:
    sharp = assess_field(fields["near"], MPP)
    blurred = assess_field(cv2.GaussianBlur(fields["near"], (0, 0), 1.2 / MPP), MPP)  # 1.2 um defocus
    assert sharp.scores["focus"] >= 0.9
    assert blurred.scores["focus"] < 0.2, blurred.explain()


def test_blank_glass_is_rejected_whatever_the_scores() -> None:
    glass = np.full((FIELD, FIELD, 3), 244, np.uint8)
    assessment = assess_field(glass, MPP)
    assert not assessment.accepted
    assert "blank" in (assessment.rejection or "")
    assert assessment.combined == 0.0


def test_criteria_mean_the_same_at_a_coarser_resolution(fields: dict[str, np.ndarray]) -> None:
    """The same 204.8 um field at 0.2 and at 0.5 um/px gets about the same measurements."""
    fine = assess_field(fields["near"], MPP)
    coarse_image = cv2.resize(fields["near"], (410, 410), interpolation=cv2.INTER_AREA)
    coarse = assess_field(coarse_image, MPP * FIELD / 410)
    assert abs(fine.measurements["nuclear_fraction"] - coarse.measurements["nuclear_fraction"]) < 0.02
    for name in ("cellularity", "spicule", "no_clumping", "stain"):
        assert abs(fine.scores[name] - coarse.scores[name]) < 0.2, (name, fine.explain(), coarse.explain())


def test_scores_are_in_unit_range_and_explained(fields: dict[str, np.ndarray]) -> None:
    for name, image in fields.items():
        assessment = assess_field(image, MPP)
        assert all(0.0 <= s <= 1.0 for s in assessment.scores.values()), name
        assert all(math.isfinite(v) for v in assessment.measurements.values()), name
        text = assessment.explain()
        assert all(criterion in text for criterion in CRITERIA)
        assert f"combined {assessment.combined:.3f}" in text


def test_combined_is_a_weighted_geometric_mean_that_one_failure_sinks() -> None:
    scores = {"stain": 0.81, "cellularity": 1.0, "focus": 0.0}
    assert combine(scores) == 0.0
    assert combine(scores, {"focus": 0.0}) == pytest.approx(0.9)
    assert combine({"stain": 0.25, "cellularity": 1.0}, {"stain": 2.0, "cellularity": 0.0}) == pytest.approx(
        0.25
    )


def test_bad_inputs_raise_named_errors() -> None:
    with pytest.raises(PathStreamError) as grey:
        assess_field(np.zeros((64, 64), np.uint8), MPP)
    assert grey.value.code == ErrorCode.INVALID_EVENT
    with pytest.raises(PathStreamError) as mpp:
        assess_field(np.zeros((64, 64, 3), np.uint8), 0.0)
    assert mpp.value.code == ErrorCode.MPP_ABSURD
