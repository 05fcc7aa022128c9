"""`pathstream evaluate escnn`: score annotated LNs through the worker's own path and report metrics.

Model code (and torch) is imported inside the command, so `pathstream --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from shared.settings import get_settings

console = Console(highlight=False)


def evaluate(
    data: list[Path] = typer.Argument(
        ...,
        help="Folder(s) of synthetic slides (truth.json) or slides with QuPath .geojson (Positive/Negative).",
    ),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="ESCNN checkpoint (or torchvision ResNet)."),
    backbone: str = typer.Option("resnet50", "--backbone", help="resnet18, resnet34, resnet50, ..."),
    out: Path = typer.Option(Path("escnn-evaluation"), "--out", help="Folder for roc.png and heatmaps."),
    work: Path = typer.Option(Path("escnn-eval-stores"), "--work", help="Tile stores of the slides."),
    tile_size: int | None = typer.Option(
        None, "--tile-size", help="Streaming tile side (default: from memory)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
) -> None:
    """LN-level and slide-level ROC AUC (95 % CI), sensitivity, specificity and MCC at 0.4 and
    0.15, and a ROC curve PNG."""
    import torch

    from services.escnn.evaluation import LnPrediction, evaluate_predictions, roc_png_for
    from services.escnn.model import build_escnn, checkpoint_version
    from services.escnn.scoring import LymphNodeScorer, Thresholds
    from services.escnn.streaming import StreamingESCNN
    from shared.annotated_slides import find_annotated_slides, ingest_annotated, ln_label
    from shared.events import BBox, LymphNodeDetected

    settings = get_settings()
    device = (
        settings.device if settings.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    engine = StreamingESCNN(build_escnn(backbone, str(checkpoint)).eval(), tile_size=tile_size, device=device)
    thresholds = Thresholds(settings.escnn_threshold, settings.escnn_screening_threshold)
    scorer = LymphNodeScorer(engine, checkpoint_version(checkpoint), out / "heatmaps", thresholds)
    slides = find_annotated_slides(data)
    predictions: list[LnPrediction] = []
    unlabelled = 0
    total = sum(len(s.lymph_nodes) for s in slides)
    with Progress(
        TextColumn("evaluate escnn"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} LNs"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
        transient=True,
    ) as bar:
        task = bar.add_task("lns", total=total)
        for slide in slides:
            store = ingest_annotated(slide, str(work))
            for index, annotation in enumerate(slide.lymph_nodes):
                bar.advance(task)
                label = ln_label(annotation)
                if label is None:
                    unlabelled += 1
                    continue
                contour = [(max(0, round(x)), max(0, round(y))) for x, y in annotation.outer]
                xs, ys = [p[0] for p in contour], [p[1] for p in contour]
                event = LymphNodeDetected(
                    ln_id=f"{store.slide_id}_ln{index:03d}",
                    slide_id=store.slide_id,
                    study_id=store.slide_id,
                    index=index,
                    contour=contour,
                    bbox=BBox(
                        x=min(xs),
                        y=min(ys),
                        width=max(1, max(xs) - min(xs)),
                        height=max(1, max(ys) - min(ys)),
                    ),
                    area_um2=1.0,
                    store_uri=store.uri,
                    model_version="annotation",
                )
                scored = scorer.score(event, store).event
                predictions.append(LnPrediction(event.ln_id, slide.name, label, scored.score))
    metrics = evaluate_predictions(predictions, (thresholds.general, thresholds.screening))
    roc_png_for(out / "roc.png", predictions)
    result = {
        "model_version": scorer.model_version,
        "unlabelled_lns_skipped": unlabelled,
        "roc_png": str(out / "roc.png"),
        **metrics,
    }
    if as_json:
        print(json.dumps(result))
        return
    table = Table("level", "n", "positives", "AUC (95% CI)", "threshold", "sensitivity", "specificity", "MCC")
    for level in ("ln", "slide"):
        entry = metrics[level]
        auc = (
            "n/a"
            if entry["auc"] is None
            else f"{entry['auc']:.4f} ({entry['auc_ci'][0]:.4f}-{entry['auc_ci'][1]:.4f})"
        )
        for name, point in entry["thresholds"].items():
            table.add_row(
                level, str(entry["n"]), str(entry["positives"]), auc, name,
                f"{point['sensitivity']:.4f}", f"{point['specificity']:.4f}", f"{point['mcc']:.4f}",
            )  # fmt: skip
    console.print(table)
    console.print(f"ROC curve: {out / 'roc.png'} ({scorer.model_version})")
