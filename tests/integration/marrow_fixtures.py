"""Synthetic smears and a small marrow classifier checkpoint for the marrow service tests."""

from __future__ import annotations

from pathlib import Path

import torch

from pathstream.services.marrow.architectures import build_network
from pathstream.services.marrow.model import MarrowModelSpec, MarrowTask, save_marrow_checkpoint
from pathstream.synthetic.marrow import write_marrow_cohort
from pathstream.synthetic.truth import MarrowCohortTruth

SMEAR_PX = 3072
"""Side of the test smears at 0.2 um/px (0.6 mm): big enough for 4 disjoint 512-px ROIs."""


def write_smears(folder: Path, cases: int, seed: int = 11) -> MarrowCohortTruth:
    """`cases` synthetic smear slides (pyramidal TIFF, 0.2 um/px) with their truth."""
    return write_marrow_cohort(
        folder, cases=cases, seed=seed, rois=0, field_size=256, slides=True, slide_size=SMEAR_PX
    )


def small_checkpoint(path: Path, task: MarrowTask = MarrowTask.MDS_AML_DONOR, seed: int = 0) -> str:
    """An untrained SqueezeNet 1.1 marrow checkpoint at 96 px input (plumbing, not accuracy);
    returns its model version."""
    torch.manual_seed(seed)
    spec = MarrowModelSpec("squeezenet1_1", task, input_size=96, mpp=0.2)
    return save_marrow_checkpoint(build_network(spec.architecture, len(task.classes)), spec, path)
