"""The synthetic slides the demo models are trained on and the demo study they are shown on.

One recipe for both, so that the demo study looks like the training slides: 3600 x 3600 px at
0.92 um/px (the coarsest scan ingestion accepts for 20x), four nodes each, about half of them
metastatic (micrometastases and isolated tumour cells at these node sizes). Training nodes are
0.45-0.7 mm across, which keeps an LN image at 20x near 1-2 Mpx so a CPU trains in minutes. Demo
nodes are 0.6-0.75 mm: the paper's post-processing discards detections under 4096 px at 7.36 um/px
(about 0.53 mm across), so smaller demo nodes would be dropped by design, not missed. Seeds of the
demo study never overlap the training seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.synthetic.lymph_node import write_lymph_node_slide
from shared.synthetic.truth import LymphNodeSlideTruth

MPP = 0.92
SIDE = 3600
NODES = 4
TRAINING_NODE_SIZE_UM = (450.0, 700.0)
DEMO_NODE_SIZE_UM = (600.0, 750.0)
POSITIVE_FRACTION = 0.5
TRAINING_FIRST_SEED = 1000
DEMO_FIRST_SEED = 900_000
DEMO_STUDY_ID = "DEMO-0001"
DEMO_SLIDES = 4


@dataclass(frozen=True)
class DemoSlide:
    """One synthetic slide file and its ground truth."""

    path: Path
    truth: LymphNodeSlideTruth


def write_slides(
    folder: Path,
    count: int,
    first_seed: int,
    name_prefix: str = "",
    node_size_um: tuple[float, float] = TRAINING_NODE_SIZE_UM,
) -> list[DemoSlide]:
    """Write `count` slides as `folder/<name_prefix>s<seed>/...` (training layout, one folder per
    slide with `truth.json`) or, with a study-style `name_prefix` such as `DEMO-0001_`, as
    `folder/<prefix>A<n>/<prefix>A<n>.tif`. Seeds count up from `first_seed`; a seed whose nodes do
    not fit is passed over. Returns the slides in order."""
    slides: list[DemoSlide] = []
    seed = first_seed
    while len(slides) < count:
        stem = f"{name_prefix}A{len(slides) + 1}" if name_prefix else f"s{seed}"
        try:
            path, truth = write_lymph_node_slide(
                folder / stem,
                SIDE,
                SIDE,
                NODES,
                seed,
                mpp=MPP,
                positive_fraction=POSITIVE_FRACTION,
                node_size_um=node_size_um,
                name=f"{stem}.tif",
            )
            slides.append(DemoSlide(path, truth))
        except ValueError:
            pass
        seed += 1
    return slides


def write_demo_study(folder: Path, slides: int = DEMO_SLIDES) -> list[DemoSlide]:
    """The demo study `DEMO-0001`: `slides` held-out synthetic slides named `DEMO-0001_A<n>.tif`."""
    return write_slides(
        folder, slides, DEMO_FIRST_SEED, name_prefix=f"{DEMO_STUDY_ID}_", node_size_um=DEMO_NODE_SIZE_UM
    )
