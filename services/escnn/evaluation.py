"""ESCNN evaluation from LN-level predictions: LN-level and slide-level ROC AUC with 95 % CIs,
sensitivity, specificity and MCC at the operating thresholds, and a ROC curve PNG.

A slide's score is the maximum over its LNs (paper 004), and a slide is positive when any of its
LNs is. Metrics come from `shared.classification_metrics`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from shared.atomic_files import write_bytes_atomically
from shared.classification_metrics import operating_point, roc_auc, roc_curve


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


def draw_roc_png(
    path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, float]], size: int = 512
) -> None:
    """Write ROC curves (name -> (fpr, tpr, auc)) as a PNG with axes, the chance line and a legend."""
    margin = 60
    plot = size - 2 * margin
    image = np.full((size, size, 3), 255, np.uint8)

    def to_px(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
        return np.stack([margin + fpr * plot, size - margin - tpr * plot], 1).round().astype(np.int32)

    cv2.rectangle(image, (margin, margin), (size - margin, size - margin), (0, 0, 0), 1)
    cv2.line(image, (margin, size - margin), (size - margin, margin), (170, 170, 170), 1, cv2.LINE_AA)
    for tick in (0.0, 0.5, 1.0):
        x, y = int(margin + tick * plot), int(size - margin - tick * plot)
        cv2.putText(
            image, f"{tick:g}", (x - 8, size - margin + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1
        )
        cv2.putText(image, f"{tick:g}", (margin - 28, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(
        image, "1 - specificity", (size // 2 - 50, size - 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
    )
    cv2.putText(image, "sensitivity", (8, margin - 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    colours = [(200, 60, 0), (0, 120, 220), (0, 160, 0), (160, 0, 160)]
    for index, (name, (fpr, tpr, auc)) in enumerate(curves.items()):
        colour = colours[index % len(colours)]
        cv2.polylines(image, [to_px(fpr, tpr).reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
        legend_y = size - margin - 15 - 18 * index
        cv2.putText(
            image, f"{name}: AUC {auc:.3f}", (size // 2, legend_y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1
        )
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"could not encode the ROC plot for {path}")
    write_bytes_atomically(path, encoded.tobytes())


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
