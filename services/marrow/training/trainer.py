"""Training marrow classifiers: one network on some patients' ROIs, and the patient-level
cross-validation loop that scores every ROI with a network that never saw its patient.

Optimiser: AdamW (decoupled weight decay) with a cosine learning-rate decay to zero over all steps,
and plain cross-entropy (classes are balanced by oversampling, see
`pathstream.services.marrow.training.augment`, so the
loss needs no class weights). AdamW rather than SGD because one learning-rate range suits all
sixteen architectures, from SqueezeNet to Wide-ResNet, so the searched learning rate means the
same thing for each; SGD's good rates differ by an order of magnitude between them.

Everything random is seeded from `TrainingConfig.seed` and the fold: weight initialisation, the
epoch's balanced order and every augmentation, so a rerun reproduces a fold (up to the
non-determinism of some CUDA kernels). Ctrl-C / SIGTERM (an `InterruptFlag`) stop at the next
optimiser step by raising KeyboardInterrupt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from pathstream.services.marrow.architectures import ARCHITECTURES, build_network, load_imagenet_weights
from pathstream.services.marrow.model import MarrowClassifier, MarrowModelSpec, MarrowTask
from pathstream.services.marrow.training.augment import Augmentation, balanced_order
from pathstream.services.marrow.training.dataset import MarrowCohort, RoiDataset
from pathstream.services.marrow.training.evaluation import Predictions
from pathstream.services.marrow.training.folds import Fold, split_images
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger
from pathstream.training.loop import Step, TrainingLoop
from pathstream.training.state import InterruptFlag

log = get_logger(__name__)

Progress = Callable[[dict[str, Any]], None]
"""Gets {"fold", "folds", "epoch", "epochs", "loss"} after every epoch (fold 0 = all patients)."""


@dataclass(frozen=True)
class TrainingConfig:
    """One point of the hyper-parameter space plus the fixed training settings."""

    architecture: str
    learning_rate: float = 1e-3
    batch_size: int = 16
    strength: float = 0.5
    """Augmentation strength in [0, 1] (see `pathstream.services.marrow.training.augment`)."""
    epochs: int = 20
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.architecture not in ARCHITECTURES:
            problems.append(f"unknown architecture {self.architecture!r}")
        if not (0 < self.learning_rate < 1):
            problems.append(f"learning rate {self.learning_rate} is not in (0, 1)")
        if self.batch_size < 2:
            problems.append(f"batch size {self.batch_size} is below 2 (batch normalisation needs 2)")
        if not 0.0 <= self.strength <= 1.0:
            problems.append(f"augmentation strength {self.strength} is not in [0, 1]")
        if self.epochs < 1:
            problems.append(f"epochs {self.epochs} is below 1")
        if self.weight_decay < 0:
            problems.append(f"weight decay {self.weight_decay} is negative")
        if problems:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                "Invalid marrow training settings: " + "; ".join(problems) + ".",
                hint="Architectures: " + ", ".join(ARCHITECTURES) + ".",
            )

    def to_json(self) -> dict[str, Any]:
        """Plain dict (for checkpoints, trial records and `--json`)."""
        return asdict(self)


class TrainingDiverged(PathStreamError):
    """The loss became NaN or infinite: the learning rate is too high for this architecture."""

    def __init__(self, config: TrainingConfig, fold: int) -> None:
        where = f"fold {fold}" if fold else "the final model"
        super().__init__(
            ErrorCode.INVALID_CONFIGURATION,
            f"Training {config.architecture} diverged in {where} (loss not finite) at learning "
            f"rate {config.learning_rate:g}.",
            hint="Lower --lr (or the upper end of --lr-range).",
        )


def _seed(*parts: int) -> int:
    """A 63-bit seed mixed from `parts` (different folds get unrelated streams)."""
    return int(np.random.SeedSequence([abs(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def new_network(architecture: str, num_classes: int, imagenet_weights: Path | None) -> nn.Module:
    """A fresh `architecture` with a `num_classes` head, from ImageNet weights when given."""
    network = build_network(architecture, num_classes)
    if imagenet_weights is not None:
        load_imagenet_weights(network, architecture, imagenet_weights)
    return network


# torchvision's own download names that do not start with the architecture name.
_TORCHVISION_STEMS = {"shufflenet_v2_x0_5": "shufflenetv2_x0.5", "shufflenet_v2_x1_0": "shufflenetv2_x1"}


def imagenet_weight_files(path: Path, architectures: Sequence[str]) -> dict[str, Path]:
    """{architecture: ImageNet state-dict file} for each of `architectures`.

    `path` is one file (allowed for a single architecture) or a folder holding, per architecture,
    `<architecture>.pth` or torchvision's download name (`<architecture>-<hash>.pth`, e.g.
    `resnet18-f37072fd.pth`, `shufflenetv2_x0.5-f707e7126e.pth`; `.pt` works too). Raises
    `PathStreamError(MODEL_UNAVAILABLE)` when a candidate has no file or more than one.
    """
    hint = (
        "Give --imagenet-weights a folder with one torchvision ImageNet .pth per candidate "
        "architecture (named <architecture>.pth or as torchvision names it), or one file for a "
        "single --architectures entry."
    )
    if path.is_file():
        if len(architectures) != 1:
            raise PathStreamError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"One weights file ({path}) for {len(architectures)} candidate architectures.",
                hint=hint,
            )
        return {architectures[0]: path}
    if not path.is_dir():
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE, f"Cannot find the ImageNet weights {path}.", hint=hint
        )
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".pth", ".pt"))
    found: dict[str, Path] = {}
    for architecture in architectures:
        stems = {architecture, _TORCHVISION_STEMS.get(architecture, architecture)}
        matches = [f for f in files if any(f.stem == s or f.stem.startswith(s + "-") for s in stems)]
        if len(matches) != 1:
            what = (
                "no file" if not matches else f"{len(matches)} files ({', '.join(m.name for m in matches)})"
            )
            raise PathStreamError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"{path} has {what} of ImageNet weights for {architecture}.",
                hint=hint,
            )
        found[architecture] = matches[0]
    return found


def train_network(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    config: TrainingConfig,
    input_size: int,
    *,
    fold: int = 0,
    imagenet_weights: Path | None = None,
    device: torch.device | str = "cpu",
    stop: InterruptFlag | None = None,
    progress: Progress | None = None,
    folds: int = 0,
) -> nn.Module:
    """Train a network on uint8 N x T x T x 3 RGB `images` (T >= `input_size`) with int N `labels`
    (class indices < `num_classes`) for `config.epochs` balanced, augmented epochs; returns it in
    eval mode on `device`. `fold` (0 = all patients) salts the seeds and names the run in logs.

    Raises `TrainingDiverged` when the loss stops being finite, KeyboardInterrupt when `stop` is raised.
    """
    torch.manual_seed(_seed(config.seed, fold, 1))
    network = new_network(config.architecture, num_classes, imagenet_weights).to(device)
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    dataset = RoiDataset(
        images, labels, Augmentation(input_size, config.strength), _seed(config.seed, fold, 2)
    )
    order_rng = np.random.default_rng(_seed(config.seed, fold, 3))
    per_epoch = len(balanced_order(labels, np.random.default_rng(0)))
    # Drop a last short batch rather than feed batch normalisation a single image.
    steps_per_epoch = per_epoch // config.batch_size if per_epoch > config.batch_size else 1
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps_per_epoch * config.epochs)

    def run_epoch(epoch: int) -> Step:
        started = time.perf_counter()
        dataset.set_epoch(epoch, balanced_order(labels, order_rng))
        loader = DataLoader(
            dataset, batch_size=config.batch_size, shuffle=False, drop_last=per_epoch > config.batch_size
        )
        network.train()
        losses = []
        for batch, targets in loader:
            logits = network(batch.to(device))
            loss = nn.functional.cross_entropy(logits.float(), targets.to(device))
            if not torch.isfinite(loss):
                raise TrainingDiverged(config, fold)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            loop.interruption_point()
        mean_loss = float(np.mean(losses)) if losses else math.nan
        log.debug(
            "marrow_epoch",
            fold=fold,
            epoch=epoch + 1,
            loss=round(mean_loss, 5),
            seconds=round(time.perf_counter() - started, 2),
        )
        return Step(
            {"fold": fold, "folds": folds, "epoch": epoch + 1, "epochs": config.epochs, "loss": mean_loss}
        )

    # The caller owns the interrupt flag (one for all folds and the export); without one, Ctrl-C
    # keeps its default effect.
    loop = TrainingLoop(
        run_epoch,
        total=config.epochs,
        stop=stop,
        catch_signals=False,
        progress=(lambda done, values: progress(values)) if progress is not None else None,
    )
    loop.run()
    return network.eval()


def predict_probabilities(
    network: nn.Module,
    architecture: str,
    images: np.ndarray,
    task: MarrowTask,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
) -> np.ndarray:
    """uint8 N x S x S x 3 RGB (already at the input size) -> float64 N x C softmax probabilities,
    computed by `MarrowClassifier`, exactly as at inference."""
    classifier = MarrowClassifier(
        network, MarrowModelSpec(architecture, task, images.shape[1]), "training", device
    )
    out = [
        classifier.predict_batch(torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2))
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(out).double().numpy() if out else np.zeros((0, len(task.classes)))


def cross_validate(
    cohort: MarrowCohort,
    folds: Sequence[Fold],
    config: TrainingConfig,
    *,
    imagenet_weights: Path | None = None,
    device: torch.device | str = "cpu",
    stop: InterruptFlag | None = None,
    progress: Progress | None = None,
) -> Predictions:
    """Train one network per fold on its training patients and predict its test patients' ROIs.

    Returns the out-of-fold predictions of every image of `cohort` (each predicted exactly once,
    by the fold that held its patient out). Raises as `train_network` does.
    """
    num_classes = len(cohort.task.classes)
    probabilities = np.full((len(cohort.labels), num_classes), np.nan)
    fold_of = np.full(len(cohort.labels), -1, np.int64)
    for fold in folds:
        train, test = split_images(cohort.patient_ids, fold)
        network = train_network(
            cohort.train_images[train],
            cohort.labels[train],
            num_classes,
            config,
            cohort.input_size,
            fold=fold.index + 1,
            imagenet_weights=imagenet_weights,
            device=device,
            stop=stop,
            progress=progress,
            folds=len(folds),
        )
        if (fold_of[test] >= 0).any():
            raise PathStreamError(
                ErrorCode.INTERNAL,
                f"Fold {fold.index + 1} tests images another fold already tested.",
                hint="This is a bug in the fold assignment; report it.",
            )
        probabilities[test] = predict_probabilities(
            network, config.architecture, cohort.eval_images[test], cohort.task, device
        )
        fold_of[test] = fold.index
        if not np.isfinite(probabilities[test]).all():
            raise TrainingDiverged(config, fold.index + 1)
    if (fold_of < 0).any():
        raise PathStreamError(
            ErrorCode.INTERNAL,
            f"{int((fold_of < 0).sum())} image(s) were in no test fold.",
            hint="This is a bug in the fold assignment; report it.",
        )
    return Predictions(list(cohort.patient_ids), cohort.labels.copy(), probabilities, fold_of)
