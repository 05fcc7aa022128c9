"""Detector training data: slides with LN polygons -> 7.36 um/px images and LN masks.

A training input is either a folder with a synthetic `truth.json` (written by `pathstream synth
lymph-node`), or a slide file with a QuPath GeoJSON export of its LN annotations beside it
(`<slide stem>.geojson`). Folders are searched recursively for both. Every slide is ingested into a
tile store first and read back from its 1.25x array, so training sees exactly the pixels the
service segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from shared.errors import ErrorCode, PathStreamError
from shared.events import Specimen
from shared.qupath import Annotation, read_annotations
from shared.synthetic.lymph_node import TRUTH_FILE
from shared.synthetic.truth import LymphNodeSlideTruth
from shared.tilestore.fingerprint import slide_sha256
from shared.tilestore.ingest import ingest_slide
from shared.tilestore.layout import DETECTOR_1_25X
from shared.tilestore.reader import TileStore

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


@dataclass
class TrainingImage:
    """One slide at 7.36 um/px: uint8 H x W x 3 RGB, bool H x W LN mask, and per-LN masks' polygons."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    polygons: list[Annotation]
    """The LN polygons in this image's pixels (for instance-level evaluation)."""

    @property
    def ln_count(self) -> int:
        return len(self.polygons)


def _from_truth(truth_path: Path) -> AnnotatedSlide:
    truth = LymphNodeSlideTruth.load(truth_path)
    return AnnotatedSlide(
        name=truth_path.parent.name,
        slide=truth_path.parent / truth.slide,
        lymph_nodes=[
            Annotation(outer=[(float(x), float(y)) for x, y in ln.polygon]) for ln in truth.lymph_nodes
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
        if (item.is_file() and item.name == TRUTH_FILE) or item.is_file():
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
                if not geojson.is_file() or path.parent / TRUTH_FILE in found:
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


def rasterise(
    annotations: Sequence[Annotation], shape: tuple[int, int], scale: tuple[float, float]
) -> np.ndarray:
    """bool H x W mask of the annotations' interiors (holes excluded) at `scale` level-0 px per pixel."""
    mask = np.zeros(shape, np.uint8)
    for annotation in annotations:
        cv2.fillPoly(mask, [_to_pixels(annotation.outer, scale)], 1)
        for hole in annotation.holes:
            cv2.fillPoly(mask, [_to_pixels(hole, scale)], 0)
    return mask.astype(bool)


def _to_pixels(ring: Sequence[tuple[float, float]], scale: tuple[float, float]) -> np.ndarray:
    # Level-0 coordinate c lies at c / s in this grid, whose pixel i is centred on i + 0.5.
    xy = np.asarray(ring, np.float64) / np.asarray(scale)
    return np.rint(xy - 0.5).astype(np.int32).reshape(-1, 1, 2)


def load_training_image(slide: AnnotatedSlide, store_root: str) -> TrainingImage:
    """Ingest `slide` (or reuse its store) under `store_root` and return its 1.25x image and mask."""
    digest = slide_sha256(slide.slide)
    # Content-addressed ids: synthetic slides all share the file name slide.tif.
    result = ingest_slide(
        slide.slide, store_root, f"train-{digest[:20]}", Specimen.LYMPH_NODE, mpp=slide.mpp, sha256=digest
    )
    array = TileStore.open(result.store_uri).array(DETECTOR_1_25X.name)
    image = array.read_all()
    scale = (array.info.level0_per_px_x, array.info.level0_per_px_y)
    scaled = [
        Annotation(
            outer=[(x / scale[0], y / scale[1]) for x, y in a.outer],
            holes=[[(x / scale[0], y / scale[1]) for x, y in h] for h in a.holes],
            classification=a.classification,
        )
        for a in slide.lymph_nodes
    ]
    return TrainingImage(
        name=slide.name,
        image=image,
        mask=rasterise(slide.lymph_nodes, image.shape[:2], scale),
        polygons=scaled,
    )
