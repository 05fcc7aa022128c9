"""What `pathstream demo` adds to the embedded run: the bundled models and the study's known truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from pathstream.services.demo.cohort import MARROW_FIELD_PX, DemoSlide, write_demo_smears, write_demo_study
from pathstream.services.embedded.batch import run_slides
from pathstream.services.embedded.pipeline import Progress
from pathstream.services.escnn.lymph_node_source import inside_grid
from pathstream.services.reporter.staging import NodeCounts, deposit_class, stage
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import LymphNode
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import LnLabel, Specimen
from pathstream.shared.naming import slide_id_for
from pathstream.shared.settings import PathStreamSettings

CHECKPOINTS = Path(__file__).with_name("checkpoints")
DETECTOR_CHECKPOINT = CHECKPOINTS / "detector.pt"
ESCNN_CHECKPOINT = CHECKPOINTS / "escnn.pt"
ESCNN_BACKBONE = "compact16"
ESCNN_TILE_SIZE = 1024
MARROW_CHECKPOINT = CHECKPOINTS / "marrow.pt"
MARROW_OCCLUDER_PX = 32
"""The demo marrow model sees 256 px inputs of 102 um fields: a 32 px occluder is about 13 um, one cell."""
MARROW_OCCLUSION_STRIDE_PX = 32


def demo_settings(settings: PathStreamSettings, out: Path) -> PathStreamSettings:
    """`settings` with everything the demo writes under `out` (its own SQLite database, stores and
    artifacts) and the bundled demo checkpoints. Raises `PathStreamError(MODEL_UNAVAILABLE)` when a
    checkpoint is missing from the installation."""
    for checkpoint in (DETECTOR_CHECKPOINT, ESCNN_CHECKPOINT, MARROW_CHECKPOINT):
        if not checkpoint.is_file():
            raise PathStreamError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"The demo checkpoint {checkpoint} is missing from this installation.",
                hint="Reinstall PathStream from its repository, or rebuild the checkpoints with "
                "`python -m pathstream.services.demo.train_models --work DIR`.",
            )
    data = out / "data"
    return settings.model_copy(
        update={
            "data_dir": data,
            "database_url": f"sqlite:///{data / 'pathstream.db'}",
            "store_root": str(data / "stores"),
            "artifact_root": str(data / "artifacts"),
            "allowed_roots": [str(out)],
            "detector_checkpoint": DETECTOR_CHECKPOINT,
            "escnn_checkpoint": ESCNN_CHECKPOINT,
            "escnn_backbone": ESCNN_BACKBONE,
            "escnn_tile_size": ESCNN_TILE_SIZE,
            "marrow_checkpoint": MARROW_CHECKPOINT,
            "marrow_roi_px": MARROW_FIELD_PX,
            "marrow_occluder_px": MARROW_OCCLUDER_PX,
            "marrow_occlusion_stride_px": MARROW_OCCLUSION_STRIDE_PX,
        }
    )


def _describe(positive: bool, lesions: list[str]) -> str:
    return f"metastatic ({', '.join(lesions)})" if positive else "no metastasis"


def truth_by_ln(settings: PathStreamSettings, slides: list[DemoSlide]) -> dict[str, Any]:
    """Match every detected LN to the true LN containing its contour's centre and summarise the
    truth: {"lymph_nodes": {ln_id: {"positive", "describe", "true_index"}}, "missed": [...],
    "positive" (micro / macro), "itc", "lymph_nodes_total", "pn_category" (AJCC 8th, ITC-aware)}."""
    engine = create_db_engine(settings.database_url)
    matched: dict[str, dict[str, Any]] = {}
    missed: list[str] = []
    try:
        with session_factory(engine)() as session:
            for slide in slides:
                slide_id = slide_id_for(slide.path)
                found = set()
                for node in session.scalars(select(LymphNode).where(LymphNode.slide_id == slide_id)):
                    contour = np.array(node.effective_contour, np.float64)
                    cx, cy = contour.mean(0)
                    for truth in slide.truth.lymph_nodes:
                        ring = np.array(truth.polygon, np.float64)
                        if inside_grid(ring, np.array([cx]), np.array([cy]))[0, 0]:
                            positive = truth.label == LnLabel.POSITIVE
                            matched[node.ln_id] = {
                                "true_index": truth.index,
                                "positive": positive,
                                "describe": _describe(positive, [str(x.size_class) for x in truth.lesions]),
                            }
                            found.add(truth.index)
                            break
                missed += [
                    f"{slide_id} true LN {t.index}" for t in slide.truth.lymph_nodes if t.index not in found
                ]
    finally:
        engine.dispose()
    # The truth is staged by the same rule as the report, from the true deposits' sizes.
    counts = NodeCounts.of(
        deposit_class(t.label, max((x.max_diameter_um / 1000.0 for x in t.lesions), default=None))
        for s in slides
        for t in s.truth.lymph_nodes
    )
    return {
        "lymph_nodes": matched,
        "missed": missed,
        "positive": counts.positive,
        "itc": counts.itc,
        "lymph_nodes_total": sum(len(s.truth.lymph_nodes) for s in slides),
        "pn_category": stage(counts),
    }


@dataclass(frozen=True)
class DemoRun:
    """What `run_demo` produced: the LN study's and the smear study's results, and the known truth."""

    lymph_node_results: list[dict[str, Any]]
    marrow_results: list[dict[str, Any]]
    truth: dict[str, Any]
    """`truth_by_ln`'s summary, with "marrow": {slide_id: true label} when smears were run."""


def run_demo(
    settings: PathStreamSettings, out: Path, slides: int, smears: int, progress: Progress | None = None
) -> DemoRun:
    """Write a synthetic LN study of `slides` slides and a smear study of `smears` smears (0: none)
    under `out`, run both through the embedded pipeline with the bundled demo models and return
    their results and truth. Raises `PathStreamError(MODEL_UNAVAILABLE)` when a demo checkpoint is
    missing."""
    out = out.resolve()
    written = write_demo_study(out / "slides", slides)
    settings = demo_settings(settings, out)
    results = run_slides(
        settings, [s.path for s in written], None, Specimen.LYMPH_NODE, out / "results", progress
    ).studies
    truth = truth_by_ln(settings, written)
    marrow_results: list[dict[str, Any]] = []
    if smears:
        smear_files = write_demo_smears(out / "smears", smears)
        truth["marrow"] = {slide_id_for(s.path): s.label.value for s in smear_files}
        marrow_results = run_slides(
            settings, [s.path for s in smear_files], None, Specimen.BONE_MARROW, out / "results", progress
        ).studies
    return DemoRun(results, marrow_results, truth)
