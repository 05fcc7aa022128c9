"""A synthetic LN cohort and a small detector trained on it, shared by the detector tests.

Slides are made by PathStream's own generator (deterministic by seed) at 0.92 um/px, which is coarse
enough to render quickly and fine enough for the 20x array (2x upsampling, the most ingestion
allows). The detector is a small DeepLabv3+ (ResNet18, narrow ASPP and decoder) trained on CPU with
the paper's optimiser and schedule, only shorter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pathstream.services.detector.model import DetectorConfig
from pathstream.services.detector.training.dataset import TrainingImage, load_training_image
from pathstream.services.detector.training.trainer import TrainingConfig, TrainingOutcome, train_detector
from pathstream.synthetic.lymph_node import write_lymph_node_slide
from pathstream.synthetic.truth import LymphNodeSlideTruth
from pathstream.training.annotated_slides import find_annotated_slides

MPP = 0.92
SIZE = (5200, 4000)
TRAIN_SEEDS = (101, 102, 103, 104, 105, 106)
VAL_SEEDS = (201,)
TEST_SEEDS = (301, 302)
SMALL_DETECTOR = DetectorConfig(
    backbone="resnet18", aspp_channels=48, decoder_channels=48, low_level_channels=24
)
QUICK_TRAINING = TrainingConfig(
    iterations=240,
    batch_size=8,
    crop=160,
    validate_every=120,
    save_every=60,
    seed=0,
    model=SMALL_DETECTOR,
)


def make_slide(root: Path, seed: int, nodes: int) -> tuple[Path, LymphNodeSlideTruth]:
    """Write synthetic slide `seed` with `nodes` LNs into `root/s<seed>/`."""
    return write_lymph_node_slide(root / f"s{seed}", SIZE[0], SIZE[1], nodes, seed, mpp=MPP)


@dataclass(frozen=True)
class TrainedDetector:
    """The cohort's folders, its 1.25x images, and the trained model."""

    root: Path
    train_dir: Path
    val_dir: Path
    test_dir: Path
    stores: Path
    test_images: list[TrainingImage]
    outcome: TrainingOutcome


def _load(folder: Path, stores: Path) -> list[TrainingImage]:
    return [load_training_image(s, str(stores)) for s in find_annotated_slides([folder])]


@pytest.fixture(scope="session")
def trained_detector(tmp_path_factory: pytest.TempPathFactory) -> TrainedDetector:
    """Generate the cohort (node counts 2-4 per slide) and train the small detector once per session."""
    root = tmp_path_factory.mktemp("ln-cohort")
    for folder, seeds in (("train", TRAIN_SEEDS), ("val", VAL_SEEDS), ("test", TEST_SEEDS)):
        for seed in seeds:
            make_slide(root / folder, seed, nodes=2 + seed % 3)
    stores = root / "stores"
    train_images = _load(root / "train", stores)
    val_images = _load(root / "val", stores)
    outcome = train_detector(train_images, val_images, root / "model", QUICK_TRAINING)
    return TrainedDetector(
        root=root,
        train_dir=root / "train",
        val_dir=root / "val",
        test_dir=root / "test",
        stores=stores,
        test_images=_load(root / "test", stores),
        outcome=outcome,
    )
