"""Patch pretraining: starting weights for weak-label ESCNN training where ImageNet weights are absent.

The paper starts ESCNN from ImageNet weights. Where none may be downloaded (air-gapped sites, CI,
the demo), a backbone trained from random weights with one weak label per LN does not learn in a
short run (measured: validation loss stayed at ln 2 for 8 epochs). `pretrain_on_lesion_patches`
stands in: it trains the backbone as a patch classifier (tumour vs. node tissue, 20x patches) on
the lesion outlines of annotated *training* slides (synthetic `truth.json`), then sets the
classification head to zero, so that weak-label training starts at score 0.5 for every LN and has
to learn the whole-LN call itself. Held-out slides must never be given here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pathstream.services.escnn.lymph_node_source import inside_grid
from pathstream.services.escnn.model import build_escnn, calibrate_batchnorm, preprocess, save_checkpoint
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.tilestore.layout import ESCNN_20X
from pathstream.synthetic.lymph_node import TRUTH_FILE
from pathstream.synthetic.truth import LymphNodeSlideTruth
from pathstream.training.annotated_slides import find_annotated_slides, ingest_annotated


def _points_inside(
    rng: np.random.Generator, polygon: np.ndarray, count: int, outside: list[np.ndarray]
) -> list[tuple[float, float]]:
    """Up to `count` random level-0 points inside `polygon` and outside every polygon of `outside`."""
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


def lesion_patches(
    folders: list[Path], stores: Path, patch: int, per_node: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet-normalised float N x 3 x patch x patch patches at 0.46 um/px from the annotated slides
    in `folders` (tile stores under `stores`), and labels N (1.0 = inside a lesion outline)."""
    rng = np.random.default_rng(seed)
    images: list[torch.Tensor] = []
    labels: list[float] = []
    for slide in find_annotated_slides(folders):
        truth_path = slide.slide.parent / TRUTH_FILE
        if not truth_path.is_file():
            continue
        truth = LymphNodeSlideTruth.load(truth_path)
        array = ingest_annotated(slide, str(stores)).array(ESCNN_20X.name)
        for node in truth.lymph_nodes:
            node_ring = np.array(node.polygon, np.float64)
            lesions = [np.array(lesion.polygon, np.float64) for lesion in node.lesions]
            picks = [(p, 0.0) for p in _points_inside(rng, node_ring, per_node, lesions)]
            for lesion in lesions:
                picks += [(p, 1.0) for p in _points_inside(rng, lesion, per_node, [])]
            for (x, y), label in picks:
                ax, ay = array.from_level0(x, y)
                pixels = array.read(int(ax) - patch // 2, int(ay) - patch // 2, patch, patch)
                images.append(preprocess(np.ascontiguousarray(pixels)))
                labels.append(label)
    if not labels or min(labels) == max(labels):
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"The slides in {', '.join(map(str, folders))} give no tumour and node patches to learn from.",
            hint="Give folders of synthetic slides (truth.json) with both metastatic and clean nodes.",
        )
    return torch.cat(images), torch.tensor(labels)


def pretrain_on_lesion_patches(
    folders: list[Path],
    stores: Path,
    out: Path,
    backbone: str = "compact16",
    iterations: int = 300,
    patch: int = 96,
    seed: int = 0,
) -> Path:
    """Write `out`: an ESCNN checkpoint whose backbone learnt tumour vs. node patches of the slides in
    `folders` (balanced batches of 32, Adam 1e-3, flips and right-angle rotations) and whose head is
    zero. Returns `out`."""
    torch.manual_seed(seed)
    images, labels = lesion_patches(folders, stores, patch, per_node=24, seed=seed)
    positives = labels == 1
    model = build_escnn(backbone)
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
