"""`pathstream train escnn` and `pathstream evaluate escnn`.

Training streams weakly labelled LN (or slide) images through the exact streaming engine; evaluation
scores annotated LNs through the worker's own path and reports LN- and slide-level metrics.

Model code (and torch) is imported inside the command, so `pathstream --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from pathstream.services.cli.progress import progress_bar
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import get_settings

if TYPE_CHECKING:
    from pathstream.services.escnn.training.data import SlideInfo, TrainingExample
    from pathstream.services.escnn.training.distributed import DistributedContext

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
    from pathstream.backbones.devices import resolve_device
    from pathstream.services.escnn.model import build_escnn, checkpoint_version
    from pathstream.services.escnn.scoring import LymphNodeScorer, Thresholds
    from pathstream.services.escnn.streaming import StreamingESCNN
    from pathstream.services.escnn.training.data import lymph_node_event
    from pathstream.services.escnn.training.evaluation import LnPrediction, evaluate_predictions, roc_png_for
    from pathstream.training.annotated_slides import find_annotated_slides, ingest_annotated, ln_label

    settings = get_settings()
    device = resolve_device(settings.device)
    engine = StreamingESCNN(build_escnn(backbone, str(checkpoint)).eval(), tile_size=tile_size, device=device)
    thresholds = Thresholds(settings.escnn_threshold, settings.escnn_screening_threshold)
    scorer = LymphNodeScorer(engine, checkpoint_version(checkpoint), out / "heatmaps", thresholds)
    slides = find_annotated_slides(data)
    predictions: list[LnPrediction] = []
    unlabelled = 0
    total = sum(len(s.lymph_nodes) for s in slides)
    with progress_bar("evaluate escnn", "{task.completed}/{task.total} LNs", remaining=True) as bar:
        task = bar.add_task("lns", total=total)
        for slide in slides:
            store = ingest_annotated(slide, str(work))
            for index, annotation in enumerate(slide.lymph_nodes):
                bar.advance(task)
                label = ln_label(annotation)
                if label is None:
                    unlabelled += 1
                    continue
                event = lymph_node_event(store, annotation, index)
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


def _load_examples(
    inputs: list[Path],
    work: Path,
    level: str,
    manifest: dict[str, SlideInfo],
    distributed: DistributedContext | None,
) -> list[TrainingExample]:
    """Ingest the annotated slides (rank 0 first, the others then reuse its stores) and list
    their training images."""
    from pathstream.services.escnn.training.data import examples_for_slide
    from pathstream.training.annotated_slides import find_annotated_slides, ingest_annotated

    slides = find_annotated_slides(inputs)
    if distributed is not None and not distributed.is_main:
        distributed.barrier()  # rank 0 ingests; the others then open its stores
    examples: list[TrainingExample] = []
    for slide in slides:
        store = ingest_annotated(slide, str(work))
        examples += examples_for_slide(slide, store, level, manifest.get(slide.name))  # type: ignore[arg-type]
    if distributed is not None and distributed.is_main:
        distributed.barrier()
    return examples


def train(
    train_inputs: list[Path] = typer.Option(
        ..., "--train", help="Folder(s) of synthetic slides (truth.json) or slides with QuPath .geojson."
    ),
    val_inputs: list[Path] = typer.Option([], "--val", help="Validation folder(s); else --val-fraction."),
    val_fraction: float = typer.Option(
        0.2, "--val-fraction", min=0.0, max=0.9, help="Share of studies held out."
    ),
    manifest_path: Path | None = typer.Option(
        None, "--manifest", help="CSV slide,study_id,label: studies for the split, slide-level labels."
    ),
    labels: str = typer.Option("ln", "--labels", help="ln: one image per labelled LN; slide: one per slide."),
    out: Path = typer.Option(..., "--out", help="Folder for best.pt, last.pt and metrics.jsonl."),
    backbone: str = typer.Option(
        "resnet50", "--backbone", help="resnet18/34/50/101/152, or compact16 (CPU tests)."
    ),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        help="Start from these weights (torchvision ImageNet ResNet state dict or ESCNN checkpoint).",
    ),
    learning_rate: float = typer.Option(1e-5, "--lr", min=0.0, help="AdamW learning rate (paper: 1e-5)."),
    reduced_learning_rate: float = typer.Option(
        1e-6, "--reduced-lr", min=0.0, help="After the first plateau."
    ),
    weight_decay: float = typer.Option(0.01, "--weight-decay", min=0.0),
    patience: int = typer.Option(16, "--patience", min=1, help="Epochs without a lower validation loss."),
    max_epochs: int = typer.Option(1000, "--max-epochs", min=1),
    images_per_step: int = typer.Option(1, "--images-per-step", min=1, help="Per process (paper: 1)."),
    false_positive_rate: float = typer.Option(
        0.0, "--noise-fp", min=0.0, max=0.49, help="Label noise: P(labelled positive | truly negative)."
    ),
    false_negative_rate: float = typer.Option(
        0.0, "--noise-fn", min=0.0, max=0.49, help="Label noise: P(labelled negative | truly positive)."
    ),
    flip: bool = typer.Option(True, "--flip/--no-flip"),
    rotate: bool = typer.Option(True, "--rotate/--no-rotate"),
    stain: bool = typer.Option(True, "--stain/--no-stain"),
    tile_size: int | None = typer.Option(
        None, "--tile-size", help="Streaming tile side (default: from memory)."
    ),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16 / fp16 on CUDA."),
    seed: int = typer.Option(0, "--seed"),
    save_every: int = typer.Option(50, "--save-every", min=1, help="Steps between resume states."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
    work: Path | None = typer.Option(None, "--work", help="Tile stores of the slides (default OUT/stores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
) -> None:
    """Train ESCNN with weak labels; keeps the lowest-validation-loss checkpoint (best.pt).

    Several GPUs: torchrun --standalone --nproc_per_node=N -m pathstream.services.cli train escnn ...
    """
    from pathstream.backbones.devices import resolve_device
    from pathstream.services.escnn.training.data import read_manifest, split_by_study
    from pathstream.services.escnn.training.distributed import from_environment
    from pathstream.services.escnn.training.trainer import EscnnTrainingConfig, train_escnn

    if labels not in ("ln", "slide"):
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"--labels {labels!r} is neither ln nor slide.",
            hint="Use ln or slide.",
        )
    if precision not in ("fp32", "bf16", "fp16"):
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"--precision {precision!r} is unknown.",
            hint="Use fp32, bf16 or fp16.",
        )
    try:
        config = EscnnTrainingConfig(
            backbone=backbone,
            learning_rate=learning_rate,
            reduced_learning_rate=reduced_learning_rate,
            weight_decay=weight_decay,
            patience=patience,
            max_epochs=max_epochs,
            images_per_step=images_per_step,
            false_positive_rate=false_positive_rate,
            false_negative_rate=false_negative_rate,
            flip=flip,
            rotate=rotate,
            stain=stain,
            tile_size=tile_size,
            precision=precision,  # type: ignore[arg-type]
            seed=seed,
            save_every=save_every,
        )
    except ValueError as exc:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION, str(exc), hint="Check the training options."
        ) from None
    distributed = from_environment()
    main = distributed is None or distributed.is_main
    device = distributed.device() if distributed is not None else resolve_device(get_settings().device)
    manifest = read_manifest(manifest_path) if manifest_path else {}
    work = work or out / "stores"
    train_examples = _load_examples(train_inputs, work, labels, manifest, distributed)
    if val_inputs:
        val_examples = _load_examples(val_inputs, work, labels, manifest, distributed)
    else:
        train_examples, val_examples = split_by_study(train_examples, val_fraction, seed)
    with progress_bar(
        "train escnn",
        "epoch {task.fields[epoch]} {task.completed}/{task.total} images",
        "{task.fields[status]}",
        show=main,
    ) as bar:
        task = bar.add_task("train", total=None, epoch=1, status="")

        def progress(values: dict[str, float]) -> None:
            status = f"loss {values['loss']:.4f}"
            if "val_loss" in values:
                status += f"  val loss {values['val_loss']:.4f} AUC {values['val_auc']:.4f}"
            bar.update(
                task,
                completed=values["image"],
                total=values["images"],
                epoch=int(values["epoch"]),
                status=status,
            )

        outcome = train_escnn(
            train_examples,
            val_examples,
            out,
            config,
            initial_weights=weights,
            resume=resume,
            device=device,
            distributed=distributed,
            progress=progress,
        )
    if not main:
        return
    result = {
        "best_checkpoint": str(outcome.best_checkpoint),
        "model_version": outcome.model_version,
        "best_epoch": outcome.best_epoch,
        "epochs": outcome.epochs,
        "stopped": outcome.stopped,
        "seconds": round(outcome.seconds, 1),
        "train_images": len(train_examples),
        "val_images": len(val_examples),
        "train_studies": sorted({e.study_id for e in train_examples}),
        "val_studies": sorted({e.study_id for e in val_examples}),
        "val": outcome.best_metrics,
        "processes": distributed.world_size if distributed else 1,
    }
    if as_json:
        print(json.dumps(result))
        return
    auc = outcome.best_metrics.get("val_auc")
    console.print(
        f"best checkpoint {outcome.best_checkpoint} ({outcome.model_version}) at epoch {outcome.best_epoch}: "
        f"validation loss {outcome.best_metrics.get('val_loss', float('nan')):.4f}, "
        f"AUC {'n/a' if auc is None else f'{auc:.4f}'}; "
        f"stopped by {outcome.stopped} after {outcome.epochs} epochs"
    )


def pretrain_patches(
    train_inputs: list[Path] = typer.Option(
        ..., "--train", help="Folder(s) of synthetic training slides (truth.json with lesion outlines)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Checkpoint file to write (give it to train escnn --weights)."
    ),
    backbone: str = typer.Option("compact16", "--backbone", help="ESCNN backbone."),
    iterations: int = typer.Option(300, "--iterations", min=1),
    patch: int = typer.Option(96, "--patch", min=32, help="Patch side at 0.46 um/px."),
    seed: int = typer.Option(0, "--seed"),
    work: Path | None = typer.Option(None, "--work", help="Tile stores of the slides (default beside OUT)."),
) -> None:
    """Starting weights without ImageNet: pretrain the backbone on lesion vs. node patches, head zeroed.

    For sites and demos without ImageNet weights on disk; see services/escnn/training/patch_pretraining.py.
    """
    from pathstream.services.escnn.training.patch_pretraining import pretrain_on_lesion_patches

    pretrain_on_lesion_patches(
        train_inputs,
        work or out.parent / "stores",
        out,
        backbone=backbone,
        iterations=iterations,
        patch=patch,
        seed=seed,
    )
    Console(highlight=False).print(f"wrote {out}")
