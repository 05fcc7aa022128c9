"""ESCNN evaluation from LN-level predictions: LN-level and slide-level ROC AUC with 95 % CIs,
sensitivity, specificity and MCC at the operating thresholds, and a ROC curve PNG.

A slide's score is the maximum over its LNs (Huang et al. 2022), and a slide is positive when any of its
LNs is. Metrics come from `pathstream.training.classification_metrics`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathstream.training.classification_metrics import operating_point, roc_auc, roc_curve
from pathstream.training.roc_plot import draw_roc_png


@dataclass(frozen=True)
class LnPrediction:
    """One LN's reference label (1 = metastatic) and its ESCNN score."""

    ln_id: str
    slide_id: str
    label: int
    score: float


def slide_level(predictions: Sequence[LnPrediction]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(slide ids, labels, scores): a slide is positive if any LN is; its score is the LNs' maximum."""
    labels: dict[str, int] = defaultdict(int)
    scores: dict[str, float] = defaultdict(lambda: -np.inf)
    for p in predictions:
        labels[p.slide_id] = max(labels[p.slide_id], p.label)
        scores[p.slide_id] = max(scores[p.slide_id], p.score)
    slides = sorted(labels)
    return slides, np.array([labels[s] for s in slides]), np.array([scores[s] for s in slides])


def evaluate_predictions(
    predictions: Sequence[LnPrediction], thresholds: Sequence[float] = (0.4, 0.15), level: float = 0.95
) -> dict[str, Any]:
    """LN-level and slide-level metrics as a JSON-ready dict (`auc`, `auc_ci`, `thresholds`, counts).

    A level whose labels hold only one class reports `auc: null` with the reason.
    """
    ln_labels = np.array([p.label for p in predictions])
    ln_scores = np.array([p.score for p in predictions])
    _, slide_labels, slide_scores = slide_level(predictions)
    out: dict[str, Any] = {}
    for name, labels, scores in (("ln", ln_labels, ln_scores), ("slide", slide_labels, slide_scores)):
        entry: dict[str, Any] = {"n": len(labels), "positives": int(labels.sum())}
        try:
            auc = roc_auc(labels, scores, level)
            entry.update(auc=auc.auc, auc_ci=[auc.low, auc.high])
        except ValueError as exc:
            entry.update(auc=None, auc_ci=None, auc_note=str(exc))
        entry["thresholds"] = {
            f"{t:g}": operating_point(labels, scores, t, level).to_json() for t in thresholds
        }
        out[name] = entry
    return out


def roc_png_for(path: Path, predictions: Sequence[LnPrediction]) -> None:
    """The LN-level and slide-level ROC curves of `predictions` in one PNG (levels with one class skipped)."""
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    ln = (np.array([p.label for p in predictions]), np.array([p.score for p in predictions]))
    _, slide_labels, slide_scores = slide_level(predictions)
    for name, (labels, scores) in (("LN", ln), ("slide", (slide_labels, slide_scores))):
        if 0 < labels.sum() < len(labels):
            fpr, tpr, _ = roc_curve(labels, scores)
            curves[name] = (fpr, tpr, roc_auc(labels, scores).auc)
    draw_roc_png(path, curves)
