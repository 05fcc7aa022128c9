"""`pathstream train marrow`: MDS / AML / donor ROI classifiers, cross-validated and exported.

    pathstream train marrow --csv rois.csv --task mds_vs_aml --out runs/mds-aml \\
        --architectures resnet18,densenet121,squeezenet1_1 --trials 30 --imagenet-weights weights/

Input is a CSV (path, patient_id, label) or a folder tree <root>/<label>/<patient_id>/<image>
(see `pathstream.services.marrow.training.dataset`). The search and the export are described in
`pathstream.services.marrow.training.tuning`; rerunning the same command resumes the study.

Model code (and torch) is imported inside the command, so `pathstream --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from pathstream.services.cli.progress import progress_bar
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import get_settings

console = Console(highlight=False)


def _invalid(message: str, hint: str) -> PathStreamError:
    return PathStreamError(ErrorCode.INVALID_CONFIGURATION, message, hint=hint)


def _names(text: str, option: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise _invalid(f"{option} is empty.", f"Give {option} a comma-separated list.")
    return names


def _numbers(text: str, option: str, count: int | None, kind: type[float] | type[int]) -> tuple[Any, ...]:
    parts = _names(text, option)
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError:
        raise _invalid(
            f"{option} {text!r} is not a list of {kind.__name__}s.", f"Example: {option} 1e-4,1e-2."
        ) from None
    if count is not None and len(values) != count:
        raise _invalid(f"{option} {text!r} needs {count} values.", f"Example: {option} LOW,HIGH.")
    return values


def _fmt(metric: dict[str, Any]) -> str:
    value, ci = metric.get("value"), metric.get("ci")
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def _print_report(outcome: Any, dropped: dict[str, int]) -> None:
    images = outcome.report["images"]
    table = Table(
        "fold", "images", "accuracy", "precision", "recall", "ROC AUC",
        title=f"{outcome.config.architecture} (image level, 95% CI)",
    )  # fmt: skip
    for fold in images["folds"]:
        table.add_row(
            str(fold["fold"]), str(fold["n"]),
            *(_fmt(fold[m]) for m in ("accuracy", "precision", "recall", "auc")),
        )  # fmt: skip
    macro, pooled = images["macro_average"], images["pooled"]
    table.add_row("macro", "", *(_fmt(macro[m]) for m in ("accuracy", "precision", "recall", "auc")))
    table.add_row(
        "pooled", str(pooled["n"]), *(_fmt(pooled[m]) for m in ("accuracy", "precision", "recall", "auc"))
    )
    console.print(table)
    cases = outcome.report["cases"]["macro_average"]
    console.print(
        f"case level (mean of a patient's ROIs), macro average: accuracy {_fmt(cases['accuracy'])}, "
        f"AUC {_fmt(cases['auc'])}"
    )
    if dropped:
        console.print(
            "dropped (not in the task): " + ", ".join(f"{n} {label} ROI(s)" for label, n in dropped.items())
        )
    if outcome.study_name:
        console.print(
            f"study {outcome.study_name!r} in {outcome.storage}: {outcome.trials_finished} trial(s) "
            f"finished, {outcome.trials_new} run now; chosen trial {outcome.trial}"
        )
    console.print(
        f"exported {outcome.checkpoint} ({outcome.model_version}"
        f"{'' if outcome.retrained else ', unchanged'}); ROC curves: {outcome.files['roc.png']}"
    )


def train(
    csv_path: Path | None = typer.Option(
        None, "--csv", help="CSV with columns path, patient_id, label (paths relative to the CSV)."
    ),
    folders: Path | None = typer.Option(
        None, "--folders", help="Image tree <root>/<label>/<patient_id>/<image> (or <root>/<label>/<image>)."
    ),
    task: str = typer.Option(
        "mds_aml_donor", "--task", help="mds_vs_aml, mds_vs_donor or mds_aml_donor; other labels are dropped."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for best.pt, cv_metrics.json, roc.png, trials.csv."),
    architectures: str = typer.Option(
        "resnet18,densenet121,squeezenet1_1,shufflenet_v2_x1_0",
        "--architectures",
        help="Comma-separated candidates for the search (the first is the default configuration's).",
    ),
    trials: int = typer.Option(
        20,
        "--trials",
        min=0,
        help="Total trials wanted in the study (0: no search, cross-validate the defaults).",
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage: sqlite:///file.db or postgresql+psycopg://user@host/db "
        "(default OUT/optuna.db).",
    ),
    study_name: str | None = typer.Option(
        None, "--study-name", help="Study to create or resume (default marrow-<task>)."
    ),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Epochs per training (balanced epochs)."),
    input_size: int = typer.Option(384, "--input-size", min=64, help="ROI side (px) the network sees."),
    mpp: float = typer.Option(0.2, "--mpp", min=0.01, help="um/px of the ROIs (recorded in the model)."),
    folds: int = typer.Option(5, "--folds", min=2, help="Patient-level cross-validation folds."),
    seed: int = typer.Option(0, "--seed", help="Seeds folds, initialisation, augmentation and the sampler."),
    learning_rate: float = typer.Option(1e-3, "--lr", help="Default configuration: AdamW learning rate."),
    batch_size: int = typer.Option(16, "--batch-size", help="Default configuration: batch size."),
    strength: float = typer.Option(
        0.5, "--strength", help="Default configuration: augmentation strength 0-1."
    ),
    lr_range: str = typer.Option(
        "1e-4,1e-2", "--lr-range", help="Search: learning rate LOW,HIGH (log scale)."
    ),
    batch_sizes: str = typer.Option("8,16,32", "--batch-sizes", help="Search: batch sizes to choose from."),
    strength_range: str = typer.Option(
        "0,1", "--strength-range", help="Search: augmentation strength LOW,HIGH."
    ),
    weight_decay: float = typer.Option(1e-4, "--weight-decay", min=0.0, help="AdamW weight decay."),
    imagenet_weights: Path | None = typer.Option(
        None,
        "--imagenet-weights",
        help="Folder of torchvision ImageNet .pth files, one per candidate (or one file for one "
        "candidate); default: random initialisation.",
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:N (default: PATHSTREAM_DEVICE)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
) -> None:
    """Train MDS / AML / donor ROI classifiers: patient-level k-fold cross-validation, Optuna search
    (resumable), metrics with 95% CIs, ROC plot, and the best configuration exported as OUT/best.pt."""
    from pathstream.backbones.devices import resolve_device
    from pathstream.services.marrow.model import MarrowTask
    from pathstream.services.marrow.training.dataset import load_cohort, read_csv_records, read_folder_records
    from pathstream.services.marrow.training.trainer import TrainingConfig, imagenet_weight_files
    from pathstream.services.marrow.training.tuning import SearchSpace, train_marrow

    if (csv_path is None) == (folders is None):
        raise _invalid("Give exactly one of --csv and --folders.", "See `pathstream train marrow --help`.")
    try:
        marrow_task = MarrowTask(task.strip().lower())
    except ValueError:
        raise _invalid(
            f"--task {task!r} is unknown.", "Use " + ", ".join(t.value for t in MarrowTask) + "."
        ) from None
    if out.exists() and not out.is_dir():
        raise _invalid(f"--out {out} is a file.", "Give a folder (it is created when missing).")
    candidates = _names(architectures, "--architectures")
    space = SearchSpace(
        architectures=candidates,
        learning_rate=_numbers(lr_range, "--lr-range", 2, float),
        batch_sizes=tuple(int(b) for b in _numbers(batch_sizes, "--batch-sizes", None, int)),
        strength=_numbers(strength_range, "--strength-range", 2, float),
    )
    base = TrainingConfig(
        architecture=candidates[0],
        learning_rate=learning_rate,
        batch_size=batch_size,
        strength=strength,
        epochs=epochs,
        weight_decay=weight_decay,
        seed=seed,
    )
    weights = imagenet_weight_files(imagenet_weights, candidates) if imagenet_weights else {}
    if csv_path is not None:
        records = read_csv_records(csv_path)
    else:
        assert folders is not None  # exactly one of the two was given
        records = read_folder_records(folders)
    bar = progress_bar("train marrow", "{task.description}")
    with bar:
        loading = bar.add_task("reading ROIs", total=len(records))
        cohort = load_cohort(
            records, marrow_task, input_size, lambda done, total: bar.update(loading, completed=done)
        )
        bar.remove_task(loading)
        training = bar.add_task("", total=None)

        def progress(values: dict[str, Any]) -> None:
            where = f"fold {values['fold']}/{values['folds']}" if values["fold"] else "final model"
            if "trial" in values:
                where = f"trial {values['trial']}/{values['trials']} {where}"
            bar.update(
                training,
                completed=values["epoch"],
                total=values["epochs"],
                description=f"{where} epoch {values['epoch']}/{values['epochs']} loss {values['loss']:.4f}",
            )

        outcome = train_marrow(
            cohort,
            out,
            base,
            space,
            trials=trials,
            folds=folds,
            storage=storage,
            study_name=study_name,
            mpp=mpp,
            imagenet_weights=weights,
            device=resolve_device(device or get_settings().device),
            progress=progress,
        )
    if as_json:
        images = outcome.report["images"]
        print(
            json.dumps(
                {
                    "best_checkpoint": str(outcome.checkpoint),
                    "model_version": outcome.model_version,
                    "task": marrow_task.value,
                    "images": len(cohort.records),
                    "patients": len(cohort.patient_labels),
                    "dropped": cohort.dropped,
                    "config": outcome.config.to_json(),
                    "cv_auc": outcome.cv_auc,
                    "macro_average": images["macro_average"],
                    "pooled": {k: images["pooled"][k] for k in ("accuracy", "precision", "recall", "auc")},
                    "case_macro_average": outcome.report["cases"]["macro_average"],
                    "folds": [sorted(f.test_patients) for f in outcome.folds],
                    "study": {
                        "name": outcome.study_name,
                        "storage": outcome.storage,
                        "trials_finished": outcome.trials_finished,
                        "trials_new": outcome.trials_new,
                        "chosen_trial": outcome.trial,
                    },
                    "retrained": outcome.retrained,
                    "seconds": round(outcome.seconds, 1),
                    "files": outcome.files,
                }
            )
        )
        return
    _print_report(outcome, cohort.dropped)
