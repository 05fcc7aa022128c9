"""The synthetic slides the demo models are trained on and the demo study they are shown on.

One recipe for both, so that the demo study looks like the training slides: 3600 x 3600 px at
0.92 um/px (the coarsest scan ingestion accepts for 20x), four nodes each, about half of them
metastatic (micrometastases and isolated tumour cells at these node sizes). Training nodes are
0.45-0.7 mm across, which keeps an LN image at 20x near 1-2 Mpx so a CPU trains in minutes. Demo
nodes are 0.6-0.75 mm: the paper's post-processing discards detections under 4096 px at 7.36 um/px
(about 0.53 mm across), so smaller demo nodes would be dropped by design, not missed. Seeds of the
demo study never overlap the training seeds.

The demo's bone-marrow study (`DEMO-BM01`) is three synthetic smear slides, one MDS, one AML and
one donor case, at 0.2 um/px. The marrow demo model is trained on ROI fields of other synthetic
smears (`MARROW_TRAINING_SEED`) chosen by the service's own ROI proposer, so it learns from the
kind of field it will be shown (fields of uniform marrow, without particles, thin or thick areas,
gave a model that called every demo smear "donor").
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pathstream.services.marrow.roi_proposal import RoiProposalConfig, propose_rois
from pathstream.shared.events import MarrowClass
from pathstream.synthetic.lymph_node import write_lymph_node_slide
from pathstream.synthetic.marrow import (
    FIELDS_CSV,
    MarrowRenderer,
    case_mixture,
    plan_smear,
    write_marrow_cohort,
)
from pathstream.synthetic.truth import LymphNodeSlideTruth

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
MARROW_MPP = 0.2
MARROW_FIELD_PX = 512
MARROW_TRAINING_SEED = 2026
MARROW_TRAINING_CASES = 60
DEMO_MARROW_SEED = 77_000
DEMO_MARROW_STUDY_ID = "DEMO-BM01"
DEMO_SMEARS = 3
DEMO_SMEAR_PX = 4096


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


@dataclass(frozen=True)
class DemoSmear:
    """One synthetic bone-marrow smear slide and its true diagnosis."""

    path: Path
    label: MarrowClass


def write_demo_smears(folder: Path, smears: int = DEMO_SMEARS) -> list[DemoSmear]:
    """The demo marrow study: `smears` held-out smear slides (classes round-robin, so 3 gives one
    MDS, one AML and one donor case) named `DEMO-BM01_S<n>.tif`, 4096 px at 0.2 um/px."""
    cases = folder / "cases"
    truth = write_marrow_cohort(
        cases, smears, DEMO_MARROW_SEED, rois=0, mpp=MARROW_MPP, slides=True, slide_size=DEMO_SMEAR_PX
    )
    written = []
    for number, case in enumerate(truth.cases, start=1):
        target = folder / f"{DEMO_MARROW_STUDY_ID}_S{number}.tif"
        (cases / (case.slide or "")).replace(target)
        written.append(DemoSmear(target, case.label))
    return written


def write_marrow_roi_cohort(out: Path, cases: int, seed: int, rois: int = 4) -> Path:
    """Training fields as the marrow service sees them: per synthetic case (classes round-robin) a
    `DEMO_SMEAR_PX` smear at 0.2 um/px is laid out and rendered on demand, the service's proposer
    picks `rois` fields of `MARROW_FIELD_PX`, and those are written as PNG. Returns the
    `fields.csv` (path, patient_id, label) that `pathstream train marrow --csv` reads."""
    rng = np.random.default_rng(seed)
    labels = [MarrowClass.MDS, MarrowClass.AML, MarrowClass.DONOR]
    order = [labels[i % 3] for i in range(cases)]
    rng.shuffle(order)
    config = RoiProposalConfig(k=rois, field_um=MARROW_FIELD_PX * MARROW_MPP)
    rows = []
    for number, label in enumerate(order, start=1):
        mixture = case_mixture(label, rng)
        case_seed = int(rng.integers(0, 2**31 - 1))
        layout = plan_smear(DEMO_SMEAR_PX, DEMO_SMEAR_PX, MARROW_MPP, np.random.default_rng(case_seed))
        renderer = MarrowRenderer(mixture, case_seed, MARROW_MPP, layout)
        proposal = propose_rois(renderer, DEMO_SMEAR_PX, DEMO_SMEAR_PX, MARROW_MPP, None, config)
        for roi in proposal:
            name = f"C{number:04d}/roi{roi.rank:02d}.png"
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / name), cv2.cvtColor(renderer(*roi.bbox), cv2.COLOR_RGB2BGR))
            rows.append((name, f"P{number:04d}", label.value))
    with (out / FIELDS_CSV).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "patient_id", "label"])
        writer.writerows(rows)
    return out / FIELDS_CSV
