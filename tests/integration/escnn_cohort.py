"""A synthetic LN cohort for ESCNN training tests, and the starting weights weak training begins from.

Slides come from PathStream's own generator (deterministic by seed): 3000 x 3000 px at 0.92 um/px
with three small nodes (0.45-0.7 mm) each, about half of them metastatic. Nodes that small only hold
micrometastases and isolated tumour cells, the hard cases for a max-pooling classifier, and keep an
LN image at 20x near 1-1.5 Mpx, so that a CPU trains an epoch in well under a minute.

Starting weights. The paper starts ESCNN from ImageNet weights; nothing may be downloaded here, and
a network trained from random weights with one weak label per image did not learn in the epochs a
test can afford (measured: validation loss stayed at ln 2 for 8 epochs). So `pretrain_features`
stands in for ImageNet: it trains the same compact backbone for ~15 s as a 96 x 96 px patch
classifier (tumour vs. node tissue) on the *training* slides' deposit outlines, then sets the
classification head to zero. The weak-label training under test must then learn, from one label per
LN, a head (and a fine-tuned backbone) that finds a deposit anywhere in a whole LN; it starts at
AUC 0.5 (every LN scores exactly 0.5). Held-out test slides are never seen by either step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from services.escnn.lymph_node_source import inside_grid
from services.escnn.model import build_escnn, calibrate_batchnorm, preprocess, save_checkpoint
from shared.annotated_slides import find_annotated_slides, ingest_annotated
from shared.synthetic.lymph_node import TRUTH_FILE, write_lymph_node_slide
from shared.synthetic.truth import LymphNodeSlideTruth
from shared.tilestore.layout import ESCNN_20X

MPP = 0.92
SIDE = 3000
NODES = 3
NODE_SIZE_UM = (450.0, 700.0)
POSITIVE_FRACTION = 0.5
BACKBONE = "compact16"
TILE_SIZE = 1024
PATCH = 96


@dataclass(frozen=True)
class EscnnCohort:
    """Folders of synthetic slides (train / val / test) and their shared tile-store root."""

    root: Path
    train_dir: Path
    val_dir: Path
    test_dir: Path
    stores: Path

    def truths(self, folder: Path) -> list[LymphNodeSlideTruth]:
        """The truth files of the slides in `folder`, by slide folder name."""
        return [LymphNodeSlideTruth.load(path) for path in sorted(folder.glob(f"*/{TRUTH_FILE}"))]


def make_cohort(root: Path, counts: dict[str, int], first_seed: int = 1000) -> EscnnCohort:
    """Write `counts[split]` slides into `root/<split>/s<seed>/`, seeds counted up from `first_seed`
    (a seed whose three nodes do not fit the slide is passed over)."""
    seed = first_seed
    for split in ("train", "val", "test"):
        made = 0
        while made < counts.get(split, 0):
            try:
                write_lymph_node_slide(
                    root / split / f"s{seed}", SIDE, SIDE, NODES, seed, mpp=MPP,
                    positive_fraction=POSITIVE_FRACTION, node_size_um=NODE_SIZE_UM,
                )  # fmt: skip
                made += 1
            except ValueError:
                pass
            seed += 1
    return EscnnCohort(root, root / "train", root / "val", root / "test", root / "stores")


def _points_inside(
    rng: np.random.Generator, polygon: np.ndarray, count: int, outside: list[np.ndarray]
) -> list[tuple[float, float]]:
    """Up to `count` random points inside `polygon` and outside every polygon of `outside`."""
    (x0, y0), (x1, y1) = polygon.min(0), polygon.max(0)
    found: list[tuple[float, float]] = []
    for _ in range(count * 20):
        if len(found) == count:
            break
        x, y = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        point_x, point_y = np.array([x]), np.array([y])
        if inside_grid(polygon, point_x, point_y)[0, 0] and not any(
            inside_grid(other, point_x, point_y)[0, 0] for other in outside
        ):
            found.append((x, y))
    return found


def _patches(cohort: EscnnCohort, per_node: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised N x 3 x PATCH x PATCH patches at 20x from the training slides, labels N (1 = tumour)."""
    rng = np.random.default_rng(seed)
    images: list[torch.Tensor] = []
    labels: list[float] = []
    for slide in find_annotated_slides([cohort.train_dir]):
        truth = LymphNodeSlideTruth.load(slide.slide.parent / TRUTH_FILE)
        array = ingest_annotated(slide, str(cohort.stores)).array(ESCNN_20X.name)
        for node in truth.lymph_nodes:
            node_ring = np.array(node.polygon, np.float64)
            lesions = [np.array(lesion.polygon, np.float64) for lesion in node.lesions]
            picks = [(p, 0.0) for p in _points_inside(rng, node_ring, per_node, lesions)]
            for lesion in lesions:
                picks += [(p, 1.0) for p in _points_inside(rng, lesion, per_node, [])]
            for (x, y), label in picks:
                ax, ay = array.from_level0(x, y)
                pixels = array.read(int(ax) - PATCH // 2, int(ay) - PATCH // 2, PATCH, PATCH)
                images.append(preprocess(np.ascontiguousarray(pixels)))
                labels.append(label)
    return torch.cat(images), torch.tensor(labels)


def pretrain_features(cohort: EscnnCohort, out: Path, iterations: int = 300, seed: int = 0) -> Path:
    """Write `out`: a compact16 ESCNN checkpoint whose backbone was trained on tumour / node patches
    of the training slides and whose head is zero (see the module docstring). Returns `out`."""
    torch.manual_seed(seed)
    images, labels = _patches(cohort, per_node=24, seed=seed)
    positives = labels == 1
    model = build_escnn(BACKBONE)
    calibrate_batchnorm(model, [images[i : i + 64] for i in range(0, len(images), 64)][:4])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    tumour, normal = np.flatnonzero(positives.numpy()), np.flatnonzero(~positives.numpy())
    for _ in range(iterations):
        # Balanced batches: deposits are a minority of node tissue.
        batch = np.concatenate([rng.choice(tumour, 16), rng.choice(normal, 16)])
        x = images[batch]
        if rng.random() < 0.5:
            x = x.flip(3)
        x = torch.rot90(x, int(rng.integers(4)), (2, 3))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    save_checkpoint(model, out)
    return out
