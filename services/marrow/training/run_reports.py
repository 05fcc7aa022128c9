"""What a `pathstream train marrow` run leaves beside its model: the fold assignment, out-of-fold
predictions, the trials, the cross-validated metrics and the ROC figure."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from pathstream.services.marrow.training.dataset import MarrowCohort
from pathstream.services.marrow.training.evaluation import Predictions, roc_png
from pathstream.services.marrow.training.folds import Fold
from pathstream.shared.atomic_files import write_bytes_atomically

CV_METRICS = "cv_metrics.json"
ROC_PNG = "roc.png"
TRIALS_CSV = "trials.csv"
FOLDS_CSV = "folds.csv"
PREDICTIONS_CSV = "predictions.csv"


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    write_bytes_atomically(path, buffer.getvalue().encode())


def write_run_reports(
    out: Path,
    cohort: MarrowCohort,
    folds: list[Fold],
    predictions: Predictions,
    report: dict[str, Any],
    summary: dict[str, Any],
    trial_rows: list[dict[str, Any]],
) -> dict[str, str]:
    """Write a training run's reports into `out`: `folds.csv` (patient -> fold), `predictions.csv`
    (out-of-fold probabilities per ROI), `trials.csv`, `cv_metrics.json` (`summary` plus the
    metrics `report`) and `roc.png`. Returns {file name: path}."""
    classes = [c.value for c in cohort.task.classes]
    fold_of = {p: f.index + 1 for f in folds for p in f.test_patients}
    labels = cohort.patient_labels
    images = {p: cohort.patient_ids.count(p) for p in labels}
    _write_csv(
        out / FOLDS_CSV,
        ["patient_id", "label", "fold", "images"],
        [[p, classes[labels[p]], fold_of[p], images[p]] for p in sorted(labels)],
    )
    _write_csv(
        out / PREDICTIONS_CSV,
        ["path", "patient_id", "label", "fold", *[f"p_{c}" for c in classes]],
        [
            [str(r.path), r.patient_id, r.label.value, int(f) + 1, *[f"{p:.6f}" for p in probs]]
            for r, f, probs in zip(cohort.records, predictions.folds, predictions.probabilities, strict=True)
        ],
    )
    columns = [
        "number",
        "state",
        "value",
        "architecture",
        "learning_rate",
        "batch_size",
        "strength",
        "seconds",
        "note",
    ]
    _write_csv(out / TRIALS_CSV, columns, [[row.get(c, "") for c in columns] for row in trial_rows])
    metrics = {**summary, "metrics": report}
    write_bytes_atomically(out / CV_METRICS, json.dumps(metrics, indent=2).encode())
    title = f"{cohort.task.value}: {summary['config']['architecture']}, {len(folds)}-fold patient-level CV"
    roc_png(out / ROC_PNG, predictions, classes, title)
    return {name: str(out / name) for name in (CV_METRICS, ROC_PNG, TRIALS_CSV, FOLDS_CSV, PREDICTIONS_CSV)}
