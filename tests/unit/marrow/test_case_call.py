"""The case-level aggregation rule: mean of ROI probabilities, ties to MDS, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from pathstream.services.marrow.case_call import case_call
from pathstream.shared.events import MarrowClass

THREE = (MarrowClass.MDS, MarrowClass.AML, MarrowClass.DONOR)


def test_mean_of_roi_probabilities_decides_the_call() -> None:
    # Two confident donor ROIs and one confident MDS ROI: a majority vote would also say donor,
    # but the case probabilities must be the column means.
    rois = np.array([[0.1, 0.0, 0.9], [0.2, 0.0, 0.8], [0.95, 0.05, 0.0]])
    call, probabilities = case_call(rois, THREE)
    assert call == MarrowClass.DONOR
    assert probabilities[MarrowClass.MDS] == pytest.approx(1.25 / 3)
    assert probabilities[MarrowClass.DONOR] == pytest.approx(1.7 / 3)
    assert sum(probabilities.values()) == pytest.approx(1.0)


def test_one_uncertain_roi_does_not_outvote_confident_ones() -> None:
    # Majority of ROIs lean AML weakly; one ROI is certain MDS: the mean calls MDS.
    rois = np.array([[0.45, 0.55], [0.45, 0.55], [1.0, 0.0]])
    call, probabilities = case_call(rois, (MarrowClass.MDS, MarrowClass.AML))
    assert call == MarrowClass.MDS
    assert probabilities[MarrowClass.MDS] == pytest.approx(1.9 / 3)


def test_an_exact_tie_goes_to_mds() -> None:
    call, _ = case_call(np.array([[0.5, 0.5]]), (MarrowClass.MDS, MarrowClass.DONOR))
    assert call == MarrowClass.MDS


@pytest.mark.parametrize(
    "rois",
    [np.zeros((0, 3)), np.array([[0.5, 0.5]]), np.array([[0.5, 0.6, -0.1]]), np.array([[0.2, 0.2, 0.2]])],
)
def test_bad_roi_probabilities_are_refused(rois: np.ndarray) -> None:
    with pytest.raises(ValueError):
        case_call(rois, THREE)
