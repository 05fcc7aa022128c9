"""`pathstream train marrow` end to end: hyper-parameter search by cross-validation, then the
exported model (Eckardt et al.: "The final architecture for each model was determined using automated
hyperparameter optimization with the Optuna framework").

Search: an Optuna study (TPE sampler, seeded by `--seed` and the number of trials already in the
study, so a resumed search does not replay earlier draws) over the architecture (from the candidates given),
the learning rate (log-uniform), the batch size (categorical) and the augmentation strength
(uniform). A trial's value is the cross-validated AUC (`evaluation.macro_auc`: mean over the
patient-level folds), so the search never sees a patient outside the folds it is scored on.

Resuming: the study lives in a database (SQLite file or PostgreSQL) under a name; running again
with the same name loads it (`load_if_exists`). `trials` is the total wanted: finished trials
(complete, or pruned because training diverged) are never redone, and only the missing ones run.
A trial cut off by Ctrl-C is recorded as failed and replaced on the next run. The study records
the data and the fixed settings it was run with, and refuses to resume under others. Each trial
stores its out-of-fold probabilities, so the report of the best trial needs no retraining.

The first trial of a new study is the given default configuration (retried if it was interrupted),
so a short search is never worse than the defaults. `trials == 0` skips the search: the defaults
are cross-validated alone.

Export: the chosen configuration is retrained on all patients and written with
`save_marrow_checkpoint` as `<out>/best.pt`; beside it `cv_metrics.json` (the chosen trial's
per-fold, macro-average and pooled metrics), `roc.png`, `trials.csv`, `folds.csv` (patient ->
fold) and `predictions.csv` (out-of-fold probabilities per ROI). A rerun whose chosen trial is
the one already exported does not retrain.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pathstream.backbones.model_files import model_version, read_torch_file
from pathstream.services.marrow.architectures import ARCHITECTURES
from pathstream.services.marrow.model import MarrowModelSpec, save_marrow_checkpoint
from pathstream.services.marrow.training.dataset import MarrowCohort
from pathstream.services.marrow.training.evaluation import Predictions, cross_validation_report, macro_auc
from pathstream.services.marrow.training.folds import Fold, patient_folds
from pathstream.services.marrow.training.run_reports import write_run_reports
from pathstream.services.marrow.training.trainer import (
    Progress,
    TrainingConfig,
    TrainingDiverged,
    cross_validate,
    train_network,
)
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger
from pathstream.training.loop import interruptible
from pathstream.training.state import BEST_CHECKPOINT, InterruptFlag

log = get_logger(__name__)

OPTUNA_DB = "optuna.db"


@dataclass(frozen=True)
class SearchSpace:
    """What the study may vary: `architectures` (candidates), `learning_rate` (low, high;
    log-uniform), `batch_sizes` (choices), `strength` (low, high; uniform in [0, 1])."""

    architectures: tuple[str, ...]
    learning_rate: tuple[float, float] = (1e-4, 1e-2)
    batch_sizes: tuple[int, ...] = (8, 16, 32)
    strength: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        problems = []
        unknown = [a for a in self.architectures if a not in ARCHITECTURES]
        if not self.architectures or unknown:
            problems.append(
                f"architectures {list(unknown) or 'none'} are not among " + ", ".join(ARCHITECTURES)
            )
        low, high = self.learning_rate
        if not 0 < low <= high < 1:
            problems.append(f"learning-rate range {low:g}..{high:g} is not within (0, 1) low to high")
        if not self.batch_sizes or min(self.batch_sizes) < 2:
            problems.append(f"batch sizes {list(self.batch_sizes)} must be 2 or more")
        low, high = self.strength
        if not 0.0 <= low <= high <= 1.0:
            problems.append(f"strength range {low:g}..{high:g} is not within [0, 1] low to high")
        if problems:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                "Invalid search space: " + "; ".join(problems) + ".",
                hint="Check --architectures, --lr-range, --batch-sizes and --strength-range.",
            )

    def contains(self, config: TrainingConfig) -> bool:
        """Whether `config`'s searched values lie inside this space."""
        return (
            config.architecture in self.architectures
            and self.learning_rate[0] <= config.learning_rate <= self.learning_rate[1]
            and config.batch_size in self.batch_sizes
            and self.strength[0] <= config.strength <= self.strength[1]
        )

    def to_json(self) -> dict[str, Any]:
        """Plain dict (recorded in the study)."""
        return {
            "architectures": list(self.architectures),
            "learning_rate": list(self.learning_rate),
            "batch_sizes": list(self.batch_sizes),
            "strength": list(self.strength),
        }


@dataclass
class MarrowTrainingOutcome:
    """What a `train_marrow` run produced."""

    checkpoint: Path
    model_version: str
    config: TrainingConfig
    cv_auc: float
    report: dict[str, Any]
    folds: list[Fold]
    trial: int | None
    trials_finished: int
    trials_new: int
    study_name: str | None
    storage: str | None
    retrained: bool
    seconds: float
    files: dict[str, str] = field(default_factory=dict)


def safe_url(url: str) -> str:
    """`url` with any password masked (for messages and output)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: nothing to mask that we could find
        return url.split("@")[-1] if "@" in url else url


def _dataset_digest(cohort: MarrowCohort) -> str:
    """Hash of what the study learns from: each ROI's patient, label, file name and size, in order.
    Names rather than full paths, so a moved data folder still resumes."""
    digest = hashlib.sha256()
    for record in cohort.records:
        size = record.path.stat().st_size if record.path.exists() else -1
        digest.update(f"{record.patient_id}\t{record.label.value}\t{record.path.name}\t{size}\n".encode())
    return digest.hexdigest()[:16]


def _setup(
    cohort: MarrowCohort, base: TrainingConfig, space: SearchSpace, folds: int, weights: Mapping[str, Path]
) -> dict[str, Any]:
    return {
        "task": cohort.task.value,
        "data": _dataset_digest(cohort),
        "images": len(cohort.records),
        "input_size": cohort.input_size,
        "folds": folds,
        "seed": base.seed,
        "epochs": base.epochs,
        "weight_decay": base.weight_decay,
        "space": space.to_json(),
        "imagenet_weights": sorted(weights),
    }


def _open_study(storage: str, study_name: str, setup: dict[str, Any]) -> Any:
    import optuna

    # Optuna's own handler prints a traceback for every failed (e.g. interrupted) trial; route its
    # errors through our structured logs instead and report trial outcomes ourselves.
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    shown = safe_url(storage)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction="maximize",
            load_if_exists=True,
        )
    except Exception as exc:  # SQLAlchemy / driver errors of many types: all mean "cannot use it"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PathStreamError(
            ErrorCode.DATABASE_UNAVAILABLE,
            f"Cannot open the Optuna storage {shown}: {reason}",
            hint="Give --storage sqlite:///path/to/study.db, or postgresql+psycopg://user@host:5432/db "
            "for a database that exists and accepts you.",
            retriable=True,
        ) from None
    recorded = study.user_attrs.get("setup")
    if recorded is None:
        study.set_user_attr("setup", setup)
    elif recorded != setup:
        differing = sorted(k for k in set(recorded) | set(setup) if recorded.get(k) != setup.get(k))
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"Study {study_name!r} in {shown} was run with other data or settings "
            f"(different: {', '.join(differing)}); its trials cannot be compared with these.",
            hint="Repeat the original options to resume it, or give a new --study-name.",
        )
    return study


def _sampler_seed(seed: int, trials_so_far: int) -> int:
    return int(np.random.SeedSequence([abs(seed), trials_so_far]).generate_state(1)[0])


def _trial_config(trial: Any, base: TrainingConfig, space: SearchSpace) -> TrainingConfig:
    return replace(
        base,
        architecture=trial.suggest_categorical("architecture", list(space.architectures)),
        learning_rate=trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        batch_size=trial.suggest_categorical("batch_size", list(space.batch_sizes)),
        strength=trial.suggest_float("strength", *space.strength),
    )


def _search_params(config: TrainingConfig) -> dict[str, Any]:
    return {
        "architecture": config.architecture,
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "strength": config.strength,
    }


def _finished(study: Any) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=done))


def _run_search(
    study: Any,
    trials: int,
    cohort: MarrowCohort,
    folds: list[Fold],
    base: TrainingConfig,
    space: SearchSpace,
    weights: Mapping[str, Path],
    device: str,
    stop: InterruptFlag,
    progress: Progress | None,
) -> int:
    """Run trials until `trials` have finished; returns how many ran now."""
    import optuna

    classes = [c.value for c in cohort.task.classes]
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    # Until a trial has finished, the next one is the default configuration (again, when the
    # first attempt was interrupted).
    if _finished(study) == 0 and not waiting:
        if space.contains(base):
            study.enqueue_trial(_search_params(base))
        else:
            log.warning("marrow_default_outside_search_space", **_search_params(base))
    # A resumed search must not replay the draws of the runs before it: seed by the trials so far.
    study.sampler = optuna.samplers.TPESampler(seed=_sampler_seed(base.seed, len(study.trials)))
    missing = max(0, trials - _finished(study))

    def objective(trial: optuna.Trial) -> float:
        config = _trial_config(trial, base, space)
        started = time.perf_counter()

        def report(values: dict[str, Any]) -> None:
            if progress is not None:
                progress({**values, "trial": trial.number + 1, "trials": trials})

        try:
            predictions = cross_validate(
                cohort,
                folds,
                config,
                imagenet_weights=weights.get(config.architecture),
                device=device,
                stop=stop,
                progress=report,
            )
        except TrainingDiverged as exc:
            trial.set_user_attr("note", exc.message)
            raise optuna.TrialPruned(exc.message) from None
        auc = macro_auc(predictions, classes)
        if auc is None:
            trial.set_user_attr("note", "a fold's AUC is undefined")
            raise optuna.TrialPruned("a fold's AUC is undefined")
        trial.set_user_attr("probabilities", np.round(predictions.probabilities, 6).tolist())
        trial.set_user_attr("folds", predictions.folds.tolist())
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        log.info("marrow_trial", trial=trial.number, auc=round(auc, 4), **_search_params(config))
        return auc

    if missing:
        study.optimize(objective, n_trials=missing, gc_after_trial=True)
    return missing


def _best_trial(study: Any, base: TrainingConfig, shown: str) -> tuple[Any, TrainingConfig]:
    try:
        best = study.best_trial
    except ValueError:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"No trial of study {study.study_name!r} in {shown} completed (all diverged or failed).",
            hint="Lower --lr-range, or run more --trials.",
        ) from None
    params = best.params
    return best, replace(
        base,
        architecture=params["architecture"],
        learning_rate=params["learning_rate"],
        batch_size=params["batch_size"],
        strength=params["strength"],
    )


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            **{k: t.params.get(k) for k in ("architecture", "learning_rate", "batch_size", "strength")},
            "seconds": t.user_attrs.get("seconds"),
            "note": t.user_attrs.get("note", ""),
        }
        for t in study.get_trials(deepcopy=False)
    ]


def _fixed_row(config: TrainingConfig, auc: float, started: float) -> list[dict[str, Any]]:
    """The one "trial" of a run without search (`trials == 0`)."""
    seconds = round(time.perf_counter() - started, 1)
    return [{"number": 0, "state": "COMPLETE", "value": auc, **_search_params(config), "seconds": seconds}]


def _exported_selection(path: Path) -> str | None:
    """The selection recorded in an existing checkpoint (None when absent or unreadable)."""
    if not path.is_file():
        return None
    try:
        state = read_torch_file(path, "the exported marrow model", "")
    except PathStreamError:
        return None
    selection = state.get("selection") if isinstance(state, dict) else None
    return selection if isinstance(selection, str) else None


def train_marrow(
    cohort: MarrowCohort,
    out: Path,
    base: TrainingConfig,
    space: SearchSpace,
    *,
    trials: int,
    folds: int = 5,
    storage: str | None = None,
    study_name: str | None = None,
    mpp: float = 0.2,
    imagenet_weights: Mapping[str, Path] | None = None,
    device: str = "cpu",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> MarrowTrainingOutcome:
    """Cross-validate (searching `trials` configurations of `space`, or just `base` when 0), then
    export the chosen configuration trained on all patients; see the module docstring.

    `storage`: SQLAlchemy URL of the Optuna database (default `sqlite:///<out>/optuna.db`);
    `imagenet_weights`: {architecture: torchvision state-dict file} (all random init when empty);
    `mpp`: um/px of the ROIs, recorded in the checkpoint; `progress` gets {"fold", "folds",
    "epoch", "epochs", "loss"} and, during a search, {"trial", "trials"}; fold 0 is the export.
    """
    started = time.perf_counter()
    weights = dict(imagenet_weights or {})
    out.mkdir(parents=True, exist_ok=True)
    classes = [c.value for c in cohort.task.classes]
    fold_list = patient_folds(
        {p: classes[label] for p, label in cohort.patient_labels.items()}, folds, base.seed
    )
    storage = storage or f"sqlite:///{(out / OPTUNA_DB).resolve()}"
    study_name = study_name or f"marrow-{cohort.task.value}"
    setup = _setup(cohort, base, space, folds, weights)
    with interruptible(
        lambda: log.warning("marrow_training_interrupted", out=str(out), resume="run the same command again")
    ) as stop:
        study, new, trial_number = None, 0, None
        if trials > 0:
            study = _open_study(storage, study_name, setup)
            new = _run_search(study, trials, cohort, fold_list, base, space, weights, device, stop, progress)
            best, config = _best_trial(study, base, safe_url(storage))
            trial_number = best.number
            predictions = Predictions(
                list(cohort.patient_ids),
                cohort.labels.copy(),
                np.array(best.user_attrs["probabilities"], np.float64),
                np.array(best.user_attrs["folds"], np.int64),
            )
        else:
            config = base
            predictions = cross_validate(
                cohort,
                fold_list,
                config,
                imagenet_weights=weights.get(config.architecture),
                device=device,
                stop=stop,
                progress=progress,
            )
        auc = macro_auc(predictions, classes)
        if auc is None:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                "Some fold has a single class among its test images, so its AUC is undefined.",
                hint="Give every class at least as many patients as --folds.",
            )
        trial_rows = _trial_rows(study) if study is not None else _fixed_row(config, auc, started)
        report = cross_validation_report(predictions, classes)
        selection = json.dumps(
            {
                "setup": setup,
                "config": config.to_json(),
                "trial": trial_number,
                "study": study_name if study else None,
            },
            sort_keys=True,
        )
        summary = {
            "task": cohort.task.value,
            "classes": classes,
            "folds": folds,
            "images": len(cohort.records),
            "patients": len(cohort.patient_labels),
            "dropped": cohort.dropped,
            "config": config.to_json(),
            "trial": trial_number,
            "cv_auc": auc,
            "objective": "mean over folds of the image-level ROC AUC (binary: MDS positive; "
            "3-class: macro one-vs-rest)",
        }
        files = write_run_reports(out, cohort, fold_list, predictions, report, summary, trial_rows)
        checkpoint = out / BEST_CHECKPOINT
        retrained = _exported_selection(checkpoint) != selection
        if retrained:
            network = train_network(
                cohort.train_images,
                cohort.labels,
                len(classes),
                config,
                cohort.input_size,
                fold=0,
                imagenet_weights=weights.get(config.architecture),
                device=device,
                stop=stop,
                progress=progress,
                folds=folds,
            )
            spec = MarrowModelSpec(config.architecture, cohort.task, cohort.input_size, mpp)
            extra = {
                "selection": selection,
                "training": json.dumps(config.to_json()),
                "cross_validation": json.dumps(
                    {"cv_auc": auc, "macro_average": report["images"]["macro_average"]}
                ),
            }
            version = save_marrow_checkpoint(network, spec, checkpoint, extra)
        else:
            version = model_version("marrow", checkpoint)
        log.info("marrow_exported", checkpoint=str(checkpoint), model_version=version, retrained=retrained)
    return MarrowTrainingOutcome(
        checkpoint=checkpoint,
        model_version=version,
        config=config,
        cv_auc=auc,
        report=report,
        folds=fold_list,
        trial=trial_number,
        trials_finished=_finished(study) if study is not None else 0,
        trials_new=new,
        study_name=study_name if study is not None else None,
        storage=safe_url(storage) if study is not None else None,
        retrained=retrained,
        seconds=time.perf_counter() - started,
        files={**files, "checkpoint": str(checkpoint)},
    )
