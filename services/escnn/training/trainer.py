"""Train ESCNN with weak labels (Huang et al. 2022, "Model training"): whole LN images, one label each.

Each step streams one augmented image per process through `StreamingESCNN.train_step` (exact
gradients, memory of one tile) with the forward-corrected cross-entropy of `LabelNoise`, averages
the gradients over `images_per_step` images and over the processes
(`pathstream.services.escnn.training.distributed`),
and takes an AdamW step (lr 1e-5, betas 0.9 / 0.999, weight decay 0.01). Augmentation (mirror,
rotation, stain perturbation) is applied tile by tile in the producer thread.

After every epoch the validation images are scored and the validation loss (the same corrected
cross-entropy) decides: a new lowest loss writes `best.pt` (its file hash is the model version);
16 epochs without one drop the learning rate to 1e-6; 16 more end the training. `last.pt` holds
everything needed to resume (weights, optimiser, epoch and position, plateau state) and is written
atomically every `save_every` steps, after every epoch and when the run is interrupted.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pathstream.services.escnn.model import (
    build_escnn,
    calibrate_batchnorm,
    checkpoint_version,
    preprocess,
    save_checkpoint,
)
from pathstream.services.escnn.streaming import Precision, StreamingESCNN
from pathstream.services.escnn.training.augment import draw_augmentation
from pathstream.services.escnn.training.data import TrainingExample, example_source
from pathstream.services.escnn.training.distributed import DistributedContext, shard
from pathstream.services.escnn.training.label_noise import LabelNoise
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger
from pathstream.shared.tilestore.reader import TileStore
from pathstream.training.classification_metrics import roc_auc
from pathstream.training.loop import Evaluation, Plateau, Step, TrainingLoop, load_if_resuming
from pathstream.training.stain import StainJitter
from pathstream.training.state import BEST_CHECKPOINT, METRICS_LOG, RESUME_STATE, save_state_atomically

log = get_logger(__name__)


@dataclass(frozen=True)
class EscnnTrainingConfig:
    """Hyper-parameters; the defaults are Huang et al.'s (2022) (ResNet-50, AdamW 1e-5, patience 16)."""

    backbone: str = "resnet50"
    learning_rate: float = 1e-5
    reduced_learning_rate: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    patience: int = 16
    """Epochs without a lower validation loss before the lr drops, and again before stopping."""
    max_epochs: int = 1000
    images_per_step: int = 1
    """Images per process whose gradients are averaged into one optimiser step (paper: 1)."""
    false_positive_rate: float = 0.0
    false_negative_rate: float = 0.0
    flip: bool = True
    rotate: bool = True
    stain: bool = True
    tile_size: int | None = None
    precision: Precision = "fp32"
    seed: int = 0
    save_every: int = 50
    """Optimiser steps between resume states (besides the one after every epoch)."""

    def __post_init__(self) -> None:
        LabelNoise(self.false_positive_rate, self.false_negative_rate)  # validates the rates
        if self.patience < 1 or self.max_epochs < 1 or self.images_per_step < 1 or self.save_every < 1:
            raise ValueError("patience, max_epochs, images_per_step and save_every must be at least 1")
        if not 0.0 < self.reduced_learning_rate <= self.learning_rate:
            raise ValueError("the reduced learning rate must be positive and at most the learning rate")

    @property
    def label_noise(self) -> LabelNoise:
        return LabelNoise(self.false_positive_rate, self.false_negative_rate)

    def to_json(self) -> dict[str, Any]:
        """Plain dict (stored in checkpoints; a resumed run must match it)."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values


@dataclass(frozen=True)
class EscnnTrainingOutcome:
    """Where the best model is, how good it was, and why training stopped."""

    best_checkpoint: Path
    model_version: str
    best_epoch: int
    best_metrics: dict[str, Any]
    epochs: int
    stopped: str
    seconds: float


@dataclass(frozen=True)
class Prediction:
    """One validation image's logit."""

    example_id: str
    label: int
    logit: float


class _Plateau(Plateau):
    """`Plateau` under the names ESCNN resume states have always stored, so older `last.pt` files
    still resume."""

    def __init__(
        self, best_loss: float = math.inf, best_epoch: int = 0, stalled: int = 0, reduced: bool = False
    ) -> None:
        super().__init__(best_loss, best_epoch, stalled, reduced)

    @property
    def best_loss(self) -> float:
        return self.best

    @property
    def best_epoch(self) -> int:
        return self.best_at

    def to_json(self) -> dict[str, Any]:
        """The stored form: {"best_loss", "best_epoch", "stalled", "reduced"}."""
        return {
            "best_loss": self.best,
            "best_epoch": self.best_at,
            "stalled": self.stalled,
            "reduced": self.reduced,
        }


class _Stores:
    """Tile stores opened once each."""

    def __init__(self) -> None:
        self._open: dict[str, TileStore] = {}

    def get(self, uri: str) -> TileStore:
        store = self._open.get(uri)
        if store is None:
            store = self._open[uri] = TileStore.open(uri)
        return store


def _check_examples(train: Sequence[TrainingExample], val: Sequence[TrainingExample]) -> None:
    if not train:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            "No labelled training images.",
            hint="Give slides whose LNs are classified Positive/Negative, or slide labels in --manifest.",
        )
    if not val:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            "No validation images.",
            hint="Give --val, or --val-fraction to hold out some studies.",
        )
    overlap = {e.study_id for e in train} & {e.study_id for e in val}
    if overlap:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"Studies {sorted(overlap)[:5]} are in both training and validation.",
            hint="Keep every study on one side (split by study).",
        )


def validation_loss(predictions: Sequence[Prediction], noise: LabelNoise) -> float:
    """Mean corrected cross-entropy of the predictions against their (observed) labels."""
    logits = torch.tensor([[p.logit] for p in predictions], dtype=torch.float64)
    labels = torch.tensor([[float(p.label)] for p in predictions], dtype=torch.float64)
    return float(noise.loss(logits, labels))


def validation_auc(predictions: Sequence[Prediction]) -> float | None:
    """LN-level ROC AUC of the validation predictions; None when a class is missing."""
    labels = [p.label for p in predictions]
    if len(set(labels)) < 2:
        return None
    return roc_auc(labels, [p.logit for p in predictions]).auc


def train_escnn(
    train: Sequence[TrainingExample],
    val: Sequence[TrainingExample],
    out_dir: Path,
    config: EscnnTrainingConfig,
    *,
    initial_weights: Path | None = None,
    resume: bool = False,
    device: torch.device | str = "cpu",
    distributed: DistributedContext | None = None,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> EscnnTrainingOutcome:
    """Train on `train`, validate on `val` every epoch; write `best.pt`, `last.pt` and
    `metrics.jsonl` into `out_dir` (rank 0 only when distributed).

    `initial_weights`: an ESCNN checkpoint or torchvision ResNet state dict to start from (the
    paper starts from ImageNet). `resume`: continue from `out_dir/last.pt` (same config required).
    `progress(values)` gets {"epoch", "image", "images", "loss"} after every image and also
    {"val_loss", "val_auc"} after every validation. Returns the best model's outcome.
    """
    _check_examples(train, val)
    main = distributed is None or distributed.is_main
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = build_escnn(config.backbone, str(initial_weights) if initial_weights else None)
    stores = _Stores()
    if initial_weights is None and not resume:
        calibrate_batchnorm(model, _calibration_tiles(train, stores, config.seed))
    engine = StreamingESCNN(model, config.tile_size, device=device, precision=config.precision)
    if distributed is not None:
        distributed.broadcast_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        params, lr=config.learning_rate, betas=config.betas, weight_decay=config.weight_decay
    )
    noise = config.label_noise
    stain = StainJitter() if config.stain else None
    plateau = _Plateau()
    epoch, position, steps = 0, 0, 0
    best_metrics: dict[str, Any] = {}
    resume_path = out_dir / RESUME_STATE
    state = load_if_resuming(resume_path, json.dumps(config.to_json()), resume)
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        epoch, position, steps = state["epoch"], state["position"], state["steps"]
        plateau = _Plateau(**json.loads(state["plateau"]))
        best_metrics = json.loads(state["best_metrics"])
        log.info("training_resumed", epoch=epoch, position=position)

    def save_resume_state() -> None:
        if not main:
            return
        save_state_atomically(
            {
                "config": json.dumps(config.to_json()),
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "epoch": loop.done,
                "position": position,
                "steps": steps,
                "plateau": json.dumps(plateau.to_json()),
                "best_metrics": json.dumps(loop.best_summary),
            },
            resume_path,
        )

    def set_learning_rate(value: float) -> None:
        for group in optimiser.param_groups:
            group["lr"] = value

    if plateau.reduced:
        set_learning_rate(config.reduced_learning_rate)

    def run_epoch(index: int) -> Step:
        nonlocal position, steps
        epoch_started = time.perf_counter()
        order = [int(i) for i in np.random.default_rng([config.seed, index]).permutation(len(train))]
        mine = shard(len(train), order, distributed)
        losses: list[float] = []
        pending = 0
        while position < len(mine):
            example = train[mine[position]]
            rng = np.random.default_rng(
                [config.seed, index, position, distributed.rank if distributed else 0]
            )
            augmentation = draw_augmentation(rng, config.flip, config.rotate, stain)
            source = augmentation.view(example_source(example, stores.get(example.store_uri)))
            losses.append(engine.train_step(source, float(example.label), noise.loss))
            pending += 1
            position += 1
            if pending == config.images_per_step or position == len(mine):
                if pending > 1:
                    for param in params:
                        if param.grad is not None:
                            param.grad /= pending
                if distributed is not None:
                    distributed.average_gradients(params)
                optimiser.step()
                optimiser.zero_grad(set_to_none=True)
                pending, steps = 0, steps + 1
                # Every rank must take part in the vote, raised or not, or the others hang.
                loop.interruption_point(distributed.any if distributed else None)
                if steps % config.save_every == 0:
                    save_resume_state()
            if progress is not None and main:
                progress(
                    {
                        "epoch": index + 1,
                        "image": position,
                        "images": len(mine),
                        "loss": float(np.mean(losses)),
                    }
                )
        predictions = _predict(engine, val, stores, distributed)
        train_loss = float(np.mean(losses)) if losses else math.nan
        if distributed is not None:
            train_loss = float(np.nanmean(distributed.gather(train_loss)))
        val_loss = validation_loss(predictions, noise)
        val_auc = validation_auc(predictions)
        position = 0
        record = {
            "epoch": index + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_auc": val_auc,
            "lr": optimiser.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - epoch_started, 2),
            "images_per_minute": round(
                len(losses) * (distributed.world_size if distributed else 1)
                * 60.0 / max(time.perf_counter() - epoch_started, 1e-9), 3
            ),
        }  # fmt: skip
        values = {
            "epoch": index + 1,
            "image": len(mine),
            "images": len(mine),
            "loss": train_loss,
            "val_loss": val_loss,
            "val_auc": math.nan if val_auc is None else val_auc,
        }
        summary = {"epoch": index + 1, "val_loss": val_loss, "val_auc": val_auc}
        return Step(values, Evaluation(val_loss, record, summary))

    def save_best(done: int, evaluation: Evaluation) -> None:
        if main:
            save_checkpoint(
                model,
                out_dir / BEST_CHECKPOINT,
                {"metrics": json.dumps(evaluation.summary), "training": json.dumps(config.to_json())},
            )

    def reduce_learning_rate(done: int) -> None:
        set_learning_rate(config.reduced_learning_rate)
        log.info("learning_rate_reduced", epoch=done, lr=config.reduced_learning_rate)

    def interrupted() -> None:
        log.warning("training_interrupted", epoch=loop.done, position=position, resume_state=str(resume_path))

    loop = TrainingLoop(
        run_epoch,
        total=config.max_epochs,
        done=epoch,
        plateau=plateau,
        patience=config.patience,
        best_summary=best_metrics,
        best_key="best",
        metrics=out_dir / METRICS_LOG if main else None,
        save=save_resume_state,
        on_best=save_best,
        on_reduce=reduce_learning_rate,
        on_evaluated=(lambda done, record: log.info("escnn_epoch", **record)) if main else None,
        on_interrupt=interrupted,
        progress=(lambda done, values: progress(values)) if progress is not None and main else None,
    )
    result = loop.run()
    best = out_dir / BEST_CHECKPOINT
    return EscnnTrainingOutcome(
        best_checkpoint=best,
        model_version=checkpoint_version(best) if best.is_file() else "",
        best_epoch=plateau.best_epoch,
        best_metrics=loop.best_summary,
        epochs=result.done,
        stopped="plateau" if result.stopped_early else "max_epochs",
        seconds=time.perf_counter() - started,
    )


def _predict(
    engine: StreamingESCNN,
    examples: Sequence[TrainingExample],
    stores: _Stores,
    distributed: DistributedContext | None,
) -> list[Prediction]:
    """Logits of every example (each rank scores its share; all ranks get all, in input order)."""
    indices = list(range(len(examples)))
    mine = indices if distributed is None else indices[distributed.rank :: distributed.world_size]
    found = []
    for index in mine:
        example = examples[index]
        logit, _ = engine.infer(example_source(example, stores.get(example.store_uri)))
        found.append((index, Prediction(example.example_id, example.label, float(logit[0]))))
    if distributed is not None:
        found = [item for part in distributed.gather(found) for item in part]
    return [prediction for _, prediction in sorted(found, key=lambda item: item[0])]


def _calibration_tiles(
    examples: Sequence[TrainingExample], stores: _Stores, seed: int, count: int = 8, side: int = 384
) -> list[torch.Tensor]:
    """Normalised 1 x 3 x side x side crops from the middle of `count` training images (seeded)."""
    chosen = np.random.default_rng(seed).permutation(len(examples))[:count]
    tiles = []
    for index in chosen:
        example = examples[int(index)]
        source = example_source(example, stores.get(example.store_uri))
        y0, x0 = max(0, (source.height - side) // 2), max(0, (source.width - side) // 2)
        tiles.append(preprocess(np.ascontiguousarray(source.read(y0, x0, side, side))))
    return tiles
