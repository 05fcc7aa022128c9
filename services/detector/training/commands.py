"""`pathstream train detector` and `pathstream evaluate detector`.

Model code (and torch) is imported inside the commands, so `pathstream --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pathstream.services.cli.progress import progress_bar
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import get_settings

if TYPE_CHECKING:
    from pathstream.services.detector.training.dataset import TrainingImage
    from pathstream.services.detector.training.evaluation import DetectorMetrics

console = Console(highlight=False)


def _device() -> str:
    from pathstream.backbones.devices import resolve_device

    return resolve_device(get_settings().device)


def _load(inputs: list[Path], work: Path, label: str) -> list[TrainingImage]:
    from pathstream.services.detector.training.dataset import load_training_image
    from pathstream.training.annotated_slides import find_annotated_slides

    slides = find_annotated_slides(inputs)
    images = []
    with _bar(f"ingest {label}", "slides") as bar:
        task = bar.add_task(label, total=len(slides))
        for slide in slides:
            images.append(load_training_image(slide, str(work)))
            bar.advance(task)
    return images


def _bar(label: str, unit: str) -> Progress:
    fields = ("{task.completed}/{task.total} " + unit, "{task.fields[status]}")
    return progress_bar(label, *fields, remaining=True)


def train(
    train_inputs: list[Path] = typer.Option(
        ..., "--train", help="Folder(s) of synthetic slides (truth.json) or slides with QuPath .geojson."
    ),
    val_inputs: list[Path] = typer.Option([], "--val", help="Validation folder(s); else --val-fraction."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", min=0.0, max=0.9),
    out: Path = typer.Option(..., "--out", help="Folder for best.pt, last.pt and metrics.jsonl."),
    iterations: int = typer.Option(40_000, "--iterations", min=1, help="Paper: 40,000."),
    batch_size: int = typer.Option(8, "--batch-size", min=2),
    crop: int = typer.Option(512, "--crop", min=64, help="Crop side at 7.36 um/px (multiple of 16)."),
    learning_rate: float = typer.Option(0.01, "--lr", min=0.0),
    backbone: str = typer.Option(
        "resnet50",
        "--backbone",
        help="resnet18, resnet34, resnet50, resnet101, or compact16 / compact32 (CPU demos).",
    ),
    aspp_channels: int = typer.Option(256, "--aspp-channels", min=8),
    decoder_channels: int = typer.Option(256, "--decoder-channels", min=8),
    validate_every: int = typer.Option(1000, "--validate-every", min=1),
    save_every: int = typer.Option(100, "--save-every", min=1, help="Iterations between resume states."),
    seed: int = typer.Option(0, "--seed"),
    backbone_weights: Path | None = typer.Option(
        None, "--backbone-weights", help="torchvision ImageNet ResNet state dict (.pth) to start from."
    ),
    rotate: bool = typer.Option(True, "--rotate/--no-rotate"),
    stain: bool = typer.Option(True, "--stain/--no-stain"),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
    work: Path | None = typer.Option(None, "--work", help="Tile stores of the slides (default OUT/stores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
) -> None:
    """Train the DeepLabv3+ LN detector; keeps the best validation-IoU checkpoint (best.pt)."""
    from pathstream.services.detector.model import DetectorConfig
    from pathstream.services.detector.training.trainer import TrainingConfig, train_detector

    if crop % 16:
        raise PathStreamError(ErrorCode.INVALID_CONFIGURATION, f"--crop {crop} is not a multiple of 16.")
    work = work or out / "stores"
    train_images = _load(train_inputs, work, "train")
    if val_inputs:
        val_images = _load(val_inputs, work, "val")
    else:
        held = max(1, round(len(train_images) * val_fraction)) if val_fraction > 0 else 0
        if held >= len(train_images):
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"{len(train_images)} slide(s) are too few to hold {held} out for validation.",
                hint="Give more slides, or a separate --val folder.",
            )
        order = np.random.default_rng(seed).permutation(len(train_images))
        val_images = [train_images[i] for i in order[:held]]
        train_images = [train_images[i] for i in order[held:]]
    config = TrainingConfig(
        iterations=iterations,
        batch_size=batch_size,
        crop=crop,
        learning_rate=learning_rate,
        validate_every=validate_every,
        save_every=save_every,
        seed=seed,
        rotate=rotate,
        stain=stain,
        model=DetectorConfig(
            backbone=backbone, aspp_channels=aspp_channels, decoder_channels=decoder_channels
        ),
    )
    with _bar("train detector", "iterations") as bar:
        task = bar.add_task("train", total=iterations, status="")

        def progress(done: int, total: int, values: dict[str, float]) -> None:
            status = f"loss {values['loss']:.3f}"
            if "val_iou" in values:
                status += f" val IoU {values['val_iou']:.3f}"
            bar.update(task, completed=done, status=status)

        outcome = train_detector(
            train_images,
            val_images,
            out,
            config,
            resume=resume,
            backbone_weights=backbone_weights,
            device=_device(),
            progress=progress,
        )
    result = {
        "best_checkpoint": str(outcome.best_checkpoint),
        "model_version": outcome.model_version,
        "best_iteration": outcome.best_iteration,
        "iterations": outcome.iterations,
        "seconds": round(outcome.seconds, 1),
        "train_slides": [i.name for i in train_images],
        "val_slides": [i.name for i in val_images],
        "val": outcome.best_metrics,
    }
    if as_json:
        print(json.dumps(result))
        return
    console.print(
        f"best checkpoint {outcome.best_checkpoint} ({outcome.model_version}) at iteration "
        f"{outcome.best_iteration}: validation IoU {outcome.best_metrics.get('iou', float('nan')):.4f}, "
        f"pixel accuracy {outcome.best_metrics.get('pixel_accuracy', float('nan')):.4f}"
    )


def evaluate(
    data: list[Path] = typer.Argument(
        ..., help="Folder(s) of annotated slides (truth.json or QuPath .geojson)."
    ),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Detector checkpoint (best.pt)."),
    work: Path = typer.Option(Path("detector-eval-stores"), "--work", help="Tile stores of the slides."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
) -> None:
    """IoU, pixel accuracy, LN count error and per-LN precision / recall (match at IoU >= 0.5)."""
    from pathstream.services.detector.inference import LymphNodeSegmenter
    from pathstream.services.detector.training.evaluation import evaluate_images

    segmenter = LymphNodeSegmenter.from_checkpoint(checkpoint, device=_device())
    images = _load(data, work, "evaluate")
    metrics = evaluate_images(segmenter, images)
    if as_json:
        print(json.dumps({"model_version": segmenter.model_version, **metrics.to_json()}))
        return
    _print_metrics(metrics, segmenter.model_version)


def _print_metrics(metrics: DetectorMetrics, version: str) -> None:
    table = Table("slide", "IoU", "pixel acc.", "LNs true", "LNs found", "matched", title=version)
    for s in metrics.slides:
        table.add_row(
            s.name,
            f"{s.iou:.4f}",
            f"{s.pixel_accuracy:.4f}",
            str(s.true_lns),
            str(s.predicted_lns),
            str(s.matched_lns),
        )
    console.print(table)
    console.print(
        f"IoU {metrics.iou:.4f}  pixel accuracy {metrics.pixel_accuracy:.4f}  LN count MAE "
        f"{metrics.count_mae:.2f} (exact on {metrics.exact_count_fraction:.0%} of slides)  "
        f"LN precision {metrics.ln_precision:.4f}  recall {metrics.ln_recall:.4f}"
    )
