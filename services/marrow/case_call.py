"""The case-level call: the ROIs of one smear -> MDS / AML / donor with probabilities.

Rule (soft vote): the case's probability of each class is the arithmetic mean of that class's
softmax probability over the case's ROIs, and the call is the most probable class; an exact tie
goes to the class listed first in the model's task, which is MDS whenever MDS is a candidate, so a
tie never silently clears a case of MDS. The mean is used rather than a majority of per-ROI calls
because Eckardt et al. labels every ROI of a case with the case diagnosis and reports confidences near
0 or 1 for most ROIs: averaging keeps an uncertain ROI from counting as a full vote, and the case
probabilities remain a distribution (they sum to 1) that the event contract can carry.
"""

from __future__ import annotations

import numpy as np

from pathstream.shared.events import MarrowClass

AGGREGATION_RULE = "mean-of-roi-probabilities"
"""Recorded with every call so a reader knows how ROI outputs became the case call."""


def case_call(
    roi_probabilities: np.ndarray, classes: tuple[MarrowClass, ...]
) -> tuple[MarrowClass, dict[MarrowClass, float]]:
    """float N x C per-ROI probabilities (rows sum to 1, columns in `classes` order) -> (call,
    {class: case probability}). Raises ValueError for no ROIs, a column count that does not match
    `classes`, or rows that are not probability distributions."""
    probabilities = np.asarray(roi_probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise ValueError(f"expected N x C ROI probabilities with N >= 1, got shape {probabilities.shape}")
    if probabilities.shape[1] != len(classes):
        raise ValueError(f"{probabilities.shape[1]} probability columns for {len(classes)} classes")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any():
        raise ValueError("ROI probabilities must be finite and non-negative")
    if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("every ROI's probabilities must sum to 1")
    mean = probabilities.mean(axis=0)
    mean = mean / mean.sum()
    call = classes[int(np.argmax(mean))]  # argmax returns the first maximum: ties go to MDS
    return call, {cls: float(p) for cls, p in zip(classes, mean, strict=True)}
