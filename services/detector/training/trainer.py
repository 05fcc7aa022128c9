"""Train the LN detector (Huang et al. 2022, "Model training"): SGD, pixel cross-entropy, cosine annealing.

Random crops of the 7.36 um/px training images (half centred on LN pixels, so small nodes are seen
often) are flipped, rotated by any angle and stain-perturbed. Every `validate_every` iterations the
whole validation slides are segmented; the checkpoint with the best validation IoU is kept as
`best.pt` (its file hash is the model version). `last.pt` holds everything needed to resume after an
interruption (weights, optimiser, schedule, random-number states, best so far) and is written
atomically every `save_every` iterations and when the run is interrupted.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pathstream.backbones.imagenet import normalise_uint8
from pathstream.services.detector.inference import LymphNodeSegmenter, padded_region
from pathstream.services.detector.model import (
    DeepLabV3Plus,
    DetectorConfig,
    checkpoint_version,
    load_backbone_weights,
    save_checkpoint,
)
from pathstream.services.detector.training.dataset import TrainingImage
from pathstream.services.detector.training.evaluation import DetectorMetrics, evaluate_images
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger
from pathstream.training.loop import Evaluation, Plateau, Step, TrainingLoop, load_if_resuming
from pathstream.training.stain import StainJitter
from pathstream.training.state import (
    BEST_CHECKPOINT,
    METRICS_LOG,
    RESUME_STATE,
    restore_rng,
    rng_state_text,
    save_state_atomically,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters; the defaults are the paper's (40,000 iterations, SGD 0.01 / 0.9 / 5e-4)."""

    iterations: int = 40_000
    batch_size: int = 8
    crop: int = 512
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    validate_every: int = 1000
    save_every: int = 100
    seed: int = 0
    ln_fraction: float = 0.5
    rotate: bool = True
    stain: bool = True
    model: DetectorConfig = field(default_factory=DetectorConfig)

    def to_json(self) -> dict[str, Any]:
        """Plain dict (stored in checkpoints; a resumed run must match it)."""
        return asdict(self)


@dataclass(frozen=True)
class TrainingOutcome:
    """Where the best model is and how good it was."""

    best_checkpoint: Path
    model_version: str
    best_iteration: int
    best_metrics: dict[str, Any]
    iterations: int
    seconds: float


class CropSampler:
    """Augmented training crops: uint8 N x 3 x C x C images and int64 N x C x C labels (1 = LN)."""

    def __init__(
        self, images: Sequence[TrainingImage], config: TrainingConfig, rng: np.random.Generator
    ) -> None:
        if not images:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION, "No training slides.", hint="Give --train."
            )
        self.images = list(images)
        self.config = config
        self.rng = rng
        areas = np.array([i.mask.size for i in self.images], np.float64)
        self.weights = areas / areas.sum()
        self.ln_pixels = [np.flatnonzero(i.mask) for i in self.images]
        self.stain = StainJitter() if config.stain else None

    def _centre(self, index: int) -> tuple[int, int]:
        image = self.images[index]
        height, width = image.mask.shape
        ln = self.ln_pixels[index]
        if ln.size and self.rng.random() < self.config.ln_fraction:
            flat = int(ln[self.rng.integers(ln.size)])
            return flat % width, flat // width
        return int(self.rng.integers(width)), int(self.rng.integers(height))

    def crop(self) -> tuple[np.ndarray, np.ndarray]:
        """One augmented crop: uint8 C x C x 3 RGB and uint8 C x C mask."""
        index = int(self.rng.choice(len(self.images), p=self.weights))
        image = self.images[index]
        size = self.config.crop
        cx, cy = self._centre(index)
        # Read a window large enough that any rotation of the crop stays inside it.
        reach = math.ceil(size * math.sqrt(2) / 2) + 2
        side = 2 * reach
        pixels = padded_region(image.image, cx - reach, cy - reach, side, side, 255)
        labels = padded_region(image.mask.astype(np.uint8), cx - reach, cy - reach, side, side, 0)
        angle = float(self.rng.uniform(-180, 180)) if self.config.rotate else 0.0
        matrix = cv2.getRotationMatrix2D((reach, reach), angle, 1.0)
        matrix[:, 2] = matrix[:, 2] - (reach - size / 2)
        pixels = cv2.warpAffine(
            pixels, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255)
        )
        labels = cv2.warpAffine(labels, matrix, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)
        if self.rng.random() < 0.5:
            pixels, labels = pixels[:, ::-1], labels[:, ::-1]
        if self.stain is not None:
            pixels = self.stain.sample(self.rng)(np.ascontiguousarray(pixels))
        return np.ascontiguousarray(pixels), np.ascontiguousarray(labels)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 N x 3 x C x C and int64 N x C x C."""
        crops = [self.crop() for _ in range(self.config.batch_size)]
        images = torch.from_numpy(np.stack([c[0] for c in crops])).permute(0, 3, 1, 2)
        labels = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.int64))
        return images, labels


def train_detector(
    train: Sequence[TrainingImage],
    val: Sequence[TrainingImage],
    out_dir: Path,
    config: TrainingConfig,
    *,
    resume: bool = False,
    backbone_weights: Path | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> TrainingOutcome:
    """Train a detector on `train`, validate on `val`, write `best.pt`, `last.pt`, `metrics.jsonl`
    into `out_dir`. With `resume`, continue from `out_dir/last.pt` (same config required).

    `progress(iteration, total, values)` is called after every iteration. Returns the best model.
    """
    if not val:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            "No validation slides.",
            hint="Give --val, or --val-fraction to hold out some training slides.",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = DeepLabV3Plus(config.model)
    if backbone_weights is not None:
        load_backbone_weights(model, backbone_weights)
    model.to(device)
    optimiser = torch.optim.SGD(
        model.parameters(),
        lr=config.learning_rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.iterations)
    iteration = 0
    # IoU is never negative, so -1 makes the first validation the best so far.
    plateau = Plateau(best=-1.0)
    best_metrics: dict[str, Any] = {}
    resume_path = out_dir / RESUME_STATE
    state = load_if_resuming(resume_path, json.dumps(config.to_json()), resume)
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        restore_rng(rng, state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        iteration = state["iteration"]
        plateau = Plateau(best=state["best_iou"], best_at=state["best_iteration"])
        best_metrics = json.loads(state["best_metrics"])
        log.info("training_resumed", iteration=iteration, best_iou=plateau.best)
    sampler = CropSampler(train, config, rng)

    def save_resume_state() -> None:
        save_state_atomically(
            {
                "config": json.dumps(config.to_json()),
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
                "numpy_rng": rng_state_text(rng),
                "torch_rng": torch.get_rng_state(),
                "iteration": loop.done,
                "best_iou": plateau.best,
                "best_iteration": plateau.best_at,
                "best_metrics": json.dumps(loop.best_summary),
            },
            resume_path,
        )

    def validate() -> DetectorMetrics:
        segmenter = LymphNodeSegmenter(model, "training", device=device)
        metrics = evaluate_images(segmenter, val)
        model.train()
        return metrics

    def run_iteration(index: int) -> Step:
        loop.interruption_point()
        images, labels = sampler.batch()
        logits = model(normalise_uint8(images.to(device)))
        loss = F.cross_entropy(logits, labels.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        done = index + 1
        values = {"loss": float(loss.item()), "lr": float(schedule.get_last_lr()[0])}
        if done % config.validate_every != 0 and done != config.iterations:
            return Step(values)
        metrics = validate()
        values.update(val_iou=metrics.iou, val_pixel_accuracy=metrics.pixel_accuracy)
        record = {"iteration": done, **values, "val_count_mae": metrics.count_mae}
        summary = {k: v for k, v in metrics.to_json().items() if k != "slides"}
        return Step(values, Evaluation(metrics.iou, record, summary))

    def save_best(done: int, evaluation: Evaluation) -> None:
        save_checkpoint(
            model,
            out_dir / BEST_CHECKPOINT,
            {
                "iteration": done,
                "metrics": json.dumps(evaluation.summary),
                "training": json.dumps(config.to_json()),
            },
        )

    def validated(done: int, record: dict[str, Any]) -> None:
        values = {k: v for k, v in record.items() if k not in ("iteration", "val_count_mae")}
        log.info("detector_validated", iteration=done, **values)

    loop = TrainingLoop(
        run_iteration,
        total=config.iterations,
        done=iteration,
        plateau=plateau,
        higher_is_better=True,
        best_summary=best_metrics,
        metrics=out_dir / METRICS_LOG,
        save=save_resume_state,
        save_every=config.save_every,
        on_best=save_best,
        on_evaluated=validated,
        on_interrupt=lambda: log.warning(
            "training_interrupted", iteration=loop.done, resume_state=str(resume_path)
        ),
        progress=(lambda done, values: progress(done, config.iterations, values)) if progress else None,
    )
    model.train()
    result = loop.run()
    best = out_dir / BEST_CHECKPOINT
    return TrainingOutcome(
        best_checkpoint=best,
        model_version=checkpoint_version(best),
        best_iteration=plateau.best_at,
        best_metrics=loop.best_summary,
        iterations=result.done,
        seconds=time.perf_counter() - started,
    )
