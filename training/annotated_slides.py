"""Slides with lymph-node annotations, for training and evaluation (detector and ESCNN).

An input is either a folder with a synthetic `truth.json` (written by `pathstream synth
lymph-node`), or a slide file with a QuPath GeoJSON export of its LN annotations beside it
(`<slide stem>.geojson`). Folders are searched recursively for both. LN labels come from the
truth file, or from the QuPath classes "Positive" / "Negative".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import LnLabel, Specimen
from pathstream.shared.qupath import Annotation, read_annotations
from pathstream.shared.tilestore.fingerprint import slide_sha256
from pathstream.shared.tilestore.ingest import ingest_slide
from pathstream.shared.tilestore.reader import TileStore
from pathstream.synthetic.lymph_node import TRUTH_FILE
from pathstream.synthetic.truth import LymphNodeSlideTruth

POSITIVE, NEGATIVE = "Positive", "Negative"
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide")
DEFAULT_LN_CLASSES = ("Lymph node", "lymph node", "LN", "Positive", "Negative")
"""QuPath classes counted as lymph nodes; unclassified annotations count too."""


@dataclass(frozen=True)
class AnnotatedSlide:
    """A slide file and its LN polygons in level-0 pixels (outer ring and holes per LN)."""

    name: str
    slide: Path
    lymph_nodes: list[Annotation]
    mpp: float | None = None


def ln_label(annotation: Annotation) -> int | None:
    """1 for a metastatic LN, 0 for a negative one, None when the annotation carries no label."""
    if annotation.classification == POSITIVE:
        return 1
    if annotation.classification == NEGATIVE:
        return 0
    return None


def _from_truth(truth_path: Path) -> AnnotatedSlide:
    truth = LymphNodeSlideTruth.load(truth_path)
    return AnnotatedSlide(
        name=truth_path.parent.name,
        slide=truth_path.parent / truth.slide,
        lymph_nodes=[
            Annotation(
                outer=[(float(x), float(y)) for x, y in ln.polygon],
                classification=POSITIVE if ln.label == LnLabel.POSITIVE else NEGATIVE,
            )
            for ln in truth.lymph_nodes
        ],
        mpp=truth.mpp,
    )


def _from_geojson(slide: Path, geojson: Path, classes: Sequence[str]) -> AnnotatedSlide:
    wanted = set(classes)
    nodes = [a for a in read_annotations(geojson) if a.classification is None or a.classification in wanted]
    return AnnotatedSlide(name=slide.stem, slide=slide, lymph_nodes=nodes)


def find_annotated_slides(
    inputs: Sequence[Path], classes: Sequence[str] = DEFAULT_LN_CLASSES
) -> list[AnnotatedSlide]:
    """Every annotated slide in `inputs` (folders searched recursively, or slide files), sorted by
    path. Raises `PathStreamError(INVALID_CONFIGURATION)` when an input holds none."""
    found: dict[Path, AnnotatedSlide] = {}
    for item in inputs:
        if item.is_file():
            candidates = [item]
        elif item.is_dir():
            candidates = sorted(item.rglob(TRUTH_FILE)) + sorted(
                p for p in item.rglob("*") if p.suffix.lower() in SLIDE_SUFFIXES
            )
        else:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"Training input {item} does not exist.",
                hint="Give folders of synthetic slides (truth.json) or of slides with QuPath GeoJSON.",
            )
        before = len(found)
        for path in candidates:
            if path.name == TRUTH_FILE:
                annotated = _from_truth(path)
            else:
                geojson = path.with_suffix(".geojson")
                if not geojson.is_file():
                    continue
                annotated = _from_geojson(path, geojson, classes)
            found.setdefault(annotated.slide.resolve(), annotated)
        if len(found) == before:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"{item} holds no annotated slide (no truth.json, no slide with a .geojson beside it).",
                hint="Export LN annotations from QuPath as <slide name>.geojson next to each slide.",
            )
    return [found[key] for key in sorted(found)]


def ingest_annotated(slide: AnnotatedSlide, store_root: str) -> TileStore:
    """The slide's tile store under `store_root`, ingested on first use (lymph-node arrays).

    Store ids are content-addressed (`annotated-<sha256 prefix>`): synthetic slides all share the
    file name slide.tif, and the same content is ingested once whatever its path.
    """
    digest = slide_sha256(slide.slide)
    result = ingest_slide(
        slide.slide, store_root, f"annotated-{digest[:20]}", Specimen.LYMPH_NODE, mpp=slide.mpp, sha256=digest
    )
    return TileStore.open(result.store_uri)
