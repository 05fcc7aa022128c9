"""Cross-validated marrow metrics and the ROC figure (Eckardt et al.: recall, precision, accuracy and
ROC AUC, each with a 95% confidence interval; Fig. 1 shows per-fold ROC curves and their mean).

Per set of predictions (one fold, or all folds pooled), at image (ROI) level and at case level:

- accuracy of the most probable class, with a Wilson interval;
- binary tasks: precision and recall of MDS (the positive class, column 0) at the most probable
  class, with Wilson intervals, and the ROC AUC of the MDS probability with DeLong's interval;
- the 3-class task: per class one-vs-rest precision, recall and AUC (with intervals), and their
  unweighted means as the macro averages (those carry no interval: the per-class estimates share
  the same images, so no simple closed form applies). A class never predicted counts as precision
  0 in the macro precision.

Case level: a patient's probabilities are the mean of its ROIs' probabilities (the rule of
`pathstream.services.marrow.case_call`), and the case is called by its most probable class.

Across folds, `macro_average` is the mean of the per-fold values with a 95% Student-t interval
over the folds (it says how much the estimate moves between folds; folds where a value is
undefined are left out and `folds` says how many had it); `pooled` scores all out-of-fold
predictions at once, with Wilson / DeLong intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathstream.training.classification_metrics import roc_auc, roc_curve, wilson_interval
from pathstream.training.roc_plot import RocCurve, RocPanel, write_roc_png

HEADLINE = ("accuracy", "precision", "recall", "auc")
"""The metrics that get a macro average over folds."""

# Student-t 97.5% quantiles for 1..30 degrees of freedom (the normal 1.96 beyond).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True)
class Predictions:
    """Out-of-fold predictions, one row per image: `labels` int N (class index), `probabilities`
    float N x C (columns in the task's class order), `folds` int N (0-based test fold)."""

    patient_ids: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    folds: np.ndarray

    def subset(self, mask: np.ndarray) -> Predictions:
        """The rows where `mask` (bool N) is true."""
        return Predictions(
            [p for p, keep in zip(self.patient_ids, mask, strict=True) if keep],
            self.labels[mask],
            self.probabilities[mask],
            self.folds[mask],
        )


def case_level(predictions: Predictions) -> Predictions:
    """One row per patient (sorted by id): the mean of its images' probabilities, its label and fold."""
    patients = sorted(set(predictions.patient_ids))
    ids = np.array(predictions.patient_ids, dtype=object)
    rows = [np.flatnonzero(ids == p) for p in patients]
    return Predictions(
        patients,
        np.array([predictions.labels[r[0]] for r in rows], np.int64),
        np.array([predictions.probabilities[r].mean(axis=0) for r in rows]).reshape(len(rows), -1),
        np.array([predictions.folds[r[0]] for r in rows], np.int64),
    )


def _proportion(successes: int, total: int, level: float) -> dict[str, Any]:
    low, high = wilson_interval(successes, total, level)
    return {"value": successes / total if total else None, "ci": [low, high], "n": total}


def _auc(positive: np.ndarray, scores: np.ndarray, level: float) -> dict[str, Any]:
    if positive.all() or not positive.any():
        return {"value": None, "ci": None}
    result = roc_auc(positive.astype(int), scores, level)
    return {"value": result.auc, "ci": [result.low, result.high]}


def _one_vs_rest(labels: np.ndarray, probabilities: np.ndarray, cls: int, level: float) -> dict[str, Any]:
    predicted = probabilities.argmax(axis=1) == cls
    actual = labels == cls
    hits = int((predicted & actual).sum())
    return {
        "precision": _proportion(hits, int(predicted.sum()), level),
        "recall": _proportion(hits, int(actual.sum()), level),
        "auc": _auc(actual, probabilities[:, cls], level),
    }


def _mean_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if len(known) == len(values) and known else None


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str], level: float = 0.95
) -> dict[str, Any]:
    """Metrics of int N `labels` against float N x C `probabilities` (see the module docstring).

    Returns {"n", "counts", "accuracy", "precision", "recall", "auc", "per_class"}; each metric is
    {"value", "ci"} with value None where undefined (e.g. no image predicted positive, or one class
    only for an AUC).
    """
    labels = np.asarray(labels, np.int64)
    probabilities = np.asarray(probabilities, np.float64)
    per_class = {name: _one_vs_rest(labels, probabilities, i, level) for i, name in enumerate(classes)}
    correct = int((probabilities.argmax(axis=1) == labels).sum())
    result: dict[str, Any] = {
        "n": len(labels),
        "counts": {name: int((labels == i).sum()) for i, name in enumerate(classes)},
        "accuracy": _proportion(correct, len(labels), level),
        "per_class": per_class,
    }
    if len(classes) == 2:
        positive = per_class[classes[0]]
        for name in ("precision", "recall", "auc"):
            result[name] = positive[name]
    else:
        for name in ("precision", "recall"):
            # A class that is never predicted has precision 0 here, not "undefined": in a 3-class
            # model, never calling a class is a failure the macro average must show.
            values = [per_class[c][name]["value"] for c in classes]
            result[name] = {"value": float(np.mean([v or 0.0 for v in values])), "ci": None}
        result["auc"] = {"value": _mean_of([per_class[c]["auc"]["value"] for c in classes]), "ci": None}
    return result


def _across_folds(values: list[float | None]) -> dict[str, Any]:
    """Mean of the defined per-fold values with a 95% Student-t interval; `folds` counts the folds
    that had the value (e.g. a fold in which no image was called MDS has no MDS precision)."""
    known = [v for v in values if v is not None]
    if not known:
        return {"value": None, "ci": None, "sd": None, "folds": 0}
    mean = float(np.mean(known))
    if len(known) < 2:
        return {"value": mean, "ci": None, "sd": None, "folds": len(known)}
    sd = float(np.std(known, ddof=1))
    t = _T975[len(known) - 2] if len(known) - 1 <= len(_T975) else 1.96
    half = t * sd / math.sqrt(len(known))
    return {
        "value": mean,
        "ci": [max(0.0, mean - half), min(1.0, mean + half)],
        "sd": sd,
        "folds": len(known),
    }


def _level_report(predictions: Predictions, classes: Sequence[str], level: float) -> dict[str, Any]:
    folds = sorted({int(f) for f in predictions.folds})
    per_fold = []
    for fold in folds:
        part = predictions.subset(predictions.folds == fold)
        per_fold.append(
            {"fold": fold + 1, **classification_metrics(part.labels, part.probabilities, classes, level)}
        )
    macro = {name: _across_folds([f[name]["value"] for f in per_fold]) for name in HEADLINE}
    macro["per_class_auc"] = {
        c: _across_folds([f["per_class"][c]["auc"]["value"] for f in per_fold]) for c in classes
    }
    return {
        "folds": per_fold,
        "macro_average": macro,
        "pooled": classification_metrics(predictions.labels, predictions.probabilities, classes, level),
    }


def cross_validation_report(
    predictions: Predictions, classes: Sequence[str], level: float = 0.95
) -> dict[str, Any]:
    """{"images": ..., "cases": ...}, each {"folds": [per-fold metrics], "macro_average": {metric:
    {"value", "ci", "sd", "folds"}}, "pooled": metrics of all out-of-fold predictions}."""
    return {
        "images": _level_report(predictions, classes, level),
        "cases": _level_report(case_level(predictions), classes, level),
    }


def macro_auc(predictions: Predictions, classes: Sequence[str]) -> float | None:
    """Mean over folds of the image-level AUC (binary: MDS; 3-class: macro one-vs-rest): the value
    the hyper-parameter search maximises. None when some fold's AUC is undefined."""
    values = []
    for fold in sorted({int(f) for f in predictions.folds}):
        part = predictions.subset(predictions.folds == fold)
        values.append(classification_metrics(part.labels, part.probabilities, classes)["auc"]["value"])
    return _mean_of(values)


def _tpr_on_grid(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The ROC step curve's TPR at each grid FPR (the highest TPR reached at FPR <= grid)."""
    last = np.searchsorted(fpr, grid, side="right") - 1
    return tpr[np.clip(last, 0, len(tpr) - 1)]


def roc_png(path: Path, predictions: Predictions, classes: Sequence[str], title: str = "") -> None:
    """Write a ROC figure (PNG) of image-level out-of-fold predictions: per-fold curves, their mean
    (vertical average) with a +-1 SD band, and the chance line. Binary tasks get one panel (MDS
    positive); the 3-class task one panel per class, one-vs-rest. Panels whose folds lack a class
    show what can be drawn."""
    grid = np.linspace(0.0, 1.0, 201)
    folds = sorted({int(f) for f in predictions.folds})
    panels = []
    for cls in [0] if len(classes) == 2 else list(range(len(classes))):
        curves, on_grid, aucs = [], [], []
        for fold in folds:
            part = predictions.subset(predictions.folds == fold)
            positive = (part.labels == cls).astype(int)
            if positive.all() or not positive.any():
                continue
            fpr, tpr, _ = roc_curve(positive, part.probabilities[:, cls])
            auc = roc_auc(positive, part.probabilities[:, cls]).auc
            curves.append(RocCurve(f"fold {fold + 1} (AUC {auc:.3f})", fpr, tpr))
            on_grid.append(_tpr_on_grid(fpr, tpr, grid))
            aucs.append(auc)
        mean = band = None
        if on_grid:
            average, sd = np.mean(on_grid, axis=0), np.std(on_grid, axis=0)
            # Start at the origin: the curve rises vertically to its TPR at zero FPR.
            label = f"mean (AUC {np.mean(aucs):.3f} ± {np.std(aucs):.3f})"
            mean = RocCurve(label, np.r_[0.0, grid], np.r_[0.0, average])
            band = (grid, average - sd, average + sd)
        name = classes[cls]
        others = " / ".join(c for i, c in enumerate(classes) if i != cls)
        panels.append(
            RocPanel(f"{name.upper()} vs {others.upper()}", curves, mean, band, f"{name.upper()} positive")
        )
    write_roc_png(path, panels, title)
