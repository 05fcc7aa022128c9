"""Detector metrics: pixel IoU and accuracy of the LN mask, LN count error, and per-LN matching.

Pixel metrics compare the network's mask (before post-processing, as the paper's IoU does) with the
rasterised annotations at 7.36 um/px and are pooled over all pixels of all slides. Instance metrics
compare the post-processed contours with the annotated LNs: a prediction matches an LN when their
filled regions overlap with IoU >= 0.5 (at that threshold a match is necessarily one-to-one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from pathstream.services.detector.inference import LymphNodeSegmenter
from pathstream.services.detector.postprocess import mask_to_contours
from pathstream.services.detector.training.dataset import TrainingImage, rasterise

MATCH_IOU = 0.5


@dataclass(frozen=True)
class SlideMetrics:
    """One slide's counts; ratios are derived when slides are pooled."""

    name: str
    intersection: int
    union: int
    correct: int
    pixels: int
    true_lns: int
    predicted_lns: int
    matched_lns: int

    @property
    def iou(self) -> float:
        return self.intersection / self.union if self.union else 1.0

    @property
    def pixel_accuracy(self) -> float:
        return self.correct / self.pixels if self.pixels else 1.0

    @property
    def count_error(self) -> int:
        """Predicted minus annotated LN count (positive = too many)."""
        return self.predicted_lns - self.true_lns


@dataclass(frozen=True)
class DetectorMetrics:
    """Pooled metrics over a set of slides, plus the per-slide rows."""

    iou: float
    pixel_accuracy: float
    count_mae: float
    exact_count_fraction: float
    ln_precision: float
    ln_recall: float
    slides: list[SlideMetrics]

    def to_json(self) -> dict[str, object]:
        """Plain dict for `--json` output and training logs."""
        data = asdict(self)
        data["slides"] = [
            {**asdict(s), "iou": s.iou, "pixel_accuracy": s.pixel_accuracy, "count_error": s.count_error}
            for s in self.slides
        ]
        return data


def _instance_masks(polygons: Sequence[np.ndarray], shape: tuple[int, int]) -> list[np.ndarray]:
    masks = []
    for polygon in polygons:
        mask = np.zeros(shape, np.uint8)
        cv2.fillPoly(mask, [polygon.reshape(-1, 1, 2).astype(np.int32)], 1)
        masks.append(mask.astype(bool))
    return masks


def match_instances(predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray]) -> int:
    """How many predicted instance masks match a distinct truth mask at IoU >= 0.5."""
    matched = 0
    used: set[int] = set()
    for pred in predicted:
        area = pred.sum()
        for index, true in enumerate(truth):
            if index in used:
                continue
            inter = np.logical_and(pred, true).sum()
            union = area + true.sum() - inter
            if union and inter / union >= MATCH_IOU:
                used.add(index)
                matched += 1
                break
    return matched


def score_slide(name: str, predicted_mask: np.ndarray, truth: TrainingImage) -> SlideMetrics:
    """Compare a predicted bool LN mask (same grid as `truth.image`) with the annotations."""
    if predicted_mask.shape != truth.mask.shape:
        raise ValueError(f"mask shape {predicted_mask.shape} differs from the truth's {truth.mask.shape}")
    contours = mask_to_contours(predicted_mask)
    shape = truth.mask.shape
    true_instances = [rasterise([polygon], shape, (1.0, 1.0)) for polygon in truth.polygons]
    predicted_instances = _instance_masks(contours, shape)
    return SlideMetrics(
        name=name,
        intersection=int(np.logical_and(predicted_mask, truth.mask).sum()),
        union=int(np.logical_or(predicted_mask, truth.mask).sum()),
        correct=int((predicted_mask == truth.mask).sum()),
        pixels=int(truth.mask.size),
        true_lns=len(true_instances),
        predicted_lns=len(predicted_instances),
        matched_lns=match_instances(predicted_instances, true_instances),
    )


def pool(slides: Sequence[SlideMetrics]) -> DetectorMetrics:
    """Pooled metrics of per-slide rows (pixel counts summed, count errors averaged)."""
    if not slides:
        raise ValueError("no slides to evaluate")
    inter = sum(s.intersection for s in slides)
    union = sum(s.union for s in slides)
    predicted = sum(s.predicted_lns for s in slides)
    true = sum(s.true_lns for s in slides)
    matched = sum(s.matched_lns for s in slides)
    return DetectorMetrics(
        iou=inter / union if union else 1.0,
        pixel_accuracy=sum(s.correct for s in slides) / sum(s.pixels for s in slides),
        count_mae=float(np.mean([abs(s.count_error) for s in slides])),
        exact_count_fraction=float(np.mean([s.count_error == 0 for s in slides])),
        ln_precision=matched / predicted if predicted else 1.0,
        ln_recall=matched / true if true else 1.0,
        slides=list(slides),
    )


def evaluate_images(segmenter: LymphNodeSegmenter, images: Sequence[TrainingImage]) -> DetectorMetrics:
    """Segment every image with `segmenter` and pool the metrics."""
    return pool([score_slide(image.name, segmenter.predict_image(image.image), image) for image in images])
