"""A synthetic LN cohort for ESCNN training tests, and the starting weights weak training begins from.

Slides come from PathStream's own generator (deterministic by seed): 3000 x 3000 px at 0.92 um/px
with three small nodes (0.45-0.7 mm) each, about half of them metastatic. Nodes that small only hold
micrometastases and isolated tumour cells, the hard cases for a max-pooling classifier, and keep an
LN image at 20x near 1-1.5 Mpx, so that a CPU trains an epoch in well under a minute.

Starting weights. The paper starts ESCNN from ImageNet weights; nothing may be downloaded here, and
a network trained from random weights with one weak label per image did not learn in the epochs a
test can afford (measured: validation loss stayed at ln 2 for 8 epochs). So `pretrain_features`
(`pathstream.services.escnn.training.patch_pretraining`) stands in for ImageNet: it trains the same compact
backbone for ~15 s as a 96 x 96 px patch classifier (tumour vs. node tissue) on the *training* slides'
deposit outlines, then sets the classification head to zero. The weak-label training under test
must then learn, from one label per LN, a head (and a fine-tuned backbone) that finds a deposit
anywhere in a whole LN; it starts at AUC 0.5 (every LN scores exactly 0.5). Held-out test slides
are never seen by either step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pathstream.services.escnn.training.patch_pretraining import pretrain_on_lesion_patches
from pathstream.synthetic.lymph_node import TRUTH_FILE, write_lymph_node_slide
from pathstream.synthetic.truth import LymphNodeSlideTruth

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


def pretrain_features(cohort: EscnnCohort, out: Path, iterations: int = 300, seed: int = 0) -> Path:
    """Write `out`: a compact16 checkpoint pretrained on the training slides' lesion patches with a
    zero head (see `pathstream.services.escnn.training.patch_pretraining`). Returns `out`."""
    return pretrain_on_lesion_patches(
        [cohort.train_dir], cohort.stores, out, BACKBONE, iterations=iterations, patch=PATCH, seed=seed
    )
