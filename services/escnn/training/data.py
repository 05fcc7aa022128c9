"""Weakly labelled ESCNN training images: one per LN, or one per slide, and a split by study.

Labels come from LN annotations (`pathstream.training.annotated_slides`: synthetic truth.json, or QuPath
GeoJSON classes Positive / Negative), or from a manifest CSV with one row per slide:

    slide,study_id,label
    S21-0001,ST-17,positive

`slide` is the annotated slide's name (the folder of a synthetic slide, or the slide file's stem);
`study_id` groups slides of one patient or examination (default: the slide itself) so that no
study is split between training and validation; `label` (positive/negative, 1/0) is the slide's
label for slide-level training, and overrides what the LN labels say.

Per-LN images are made exactly as the scoring worker makes them (`LymphNodeImage`): the LN's box
at 0.46 um/px, white outside its contour. A slide-level image is the box around all of the slide's
LNs, white outside every LN contour, so that its global max pool is (up to windows that straddle
two nodes) the max over its LNs, which is how the slide is scored.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pathstream.services.escnn.lymph_node_source import ContourMaskedSource
from pathstream.services.escnn.scoring import LymphNodeImage
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import BBox, LymphNodeDetected
from pathstream.shared.qupath import Annotation
from pathstream.shared.tilestore.reader import TileStore
from pathstream.training.annotated_slides import AnnotatedSlide, ln_label

LabelLevel = Literal["ln", "slide"]
_POSITIVE_WORDS = {"positive", "pos", "1", "true", "metastatic"}
_NEGATIVE_WORDS = {"negative", "neg", "0", "false", "benign"}


@dataclass(frozen=True)
class SlideInfo:
    """What a manifest row says about one slide."""

    study_id: str | None = None
    label: int | None = None


def _parse_label(text: str, where: str) -> int | None:
    word = text.strip().lower()
    if not word:
        return None
    if word in _POSITIVE_WORDS:
        return 1
    if word in _NEGATIVE_WORDS:
        return 0
    raise PathStreamError(
        ErrorCode.INVALID_CONFIGURATION,
        f"{where}: label {text!r} is neither positive nor negative.",
        hint="Write positive or negative (or 1 / 0), or leave the label empty.",
    )


def read_manifest(path: Path) -> dict[str, SlideInfo]:
    """Manifest CSV (columns slide, and study_id and/or label) -> slide name -> `SlideInfo`.

    Raises `PathStreamError(INVALID_CONFIGURATION)` naming the file and row when it is malformed.
    """
    if not path.is_file():
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"Manifest {path} does not exist.",
            hint="Give a CSV with columns slide,study_id,label.",
        )
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if "slide" not in columns or not columns & {"study_id", "label"}:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"Manifest {path} has columns {sorted(columns)}; "
                "it needs 'slide' and 'study_id' and/or 'label'.",
                hint="Write a header line such as: slide,study_id,label",
            )
        found: dict[str, SlideInfo] = {}
        for number, row in enumerate(reader, start=2):
            name = (row.get("slide") or "").strip()
            where = f"{path}, line {number}"
            if not name:
                raise PathStreamError(
                    ErrorCode.INVALID_CONFIGURATION, f"{where}: the slide name is empty.", hint="Fill it in."
                )
            if name in found:
                raise PathStreamError(
                    ErrorCode.INVALID_CONFIGURATION,
                    f"{where}: slide {name!r} is listed twice.",
                    hint="Keep one row per slide.",
                )
            study = (row.get("study_id") or "").strip() or None
            found[name] = SlideInfo(study, _parse_label(row.get("label") or "", where))
    return found


@dataclass(frozen=True)
class TrainingExample:
    """One weakly labelled image: an LN (or all LNs of a slide) in a tile store, label 1 or 0."""

    example_id: str
    slide: str
    study_id: str
    label: int
    store_uri: str
    lymph_nodes: tuple[LymphNodeDetected, ...]


def lymph_node_event(store: TileStore, annotation: Annotation, index: int) -> LymphNodeDetected:
    """An annotated LN described as the detector would describe it (its outer ring, level-0 px)."""
    contour = [(max(0, round(x)), max(0, round(y))) for x, y in annotation.outer]
    xs, ys = [p[0] for p in contour], [p[1] for p in contour]
    return LymphNodeDetected(
        ln_id=f"{store.slide_id}_ln{index:03d}",
        slide_id=store.slide_id,
        study_id=store.slide_id,
        index=index,
        contour=contour,
        bbox=BBox(x=min(xs), y=min(ys), width=max(1, max(xs) - min(xs)), height=max(1, max(ys) - min(ys))),
        area_um2=1.0,
        store_uri=store.uri,
        model_version="annotation",
    )


def examples_for_slide(
    slide: AnnotatedSlide, store: TileStore, level: LabelLevel, info: SlideInfo | None = None
) -> list[TrainingExample]:
    """The slide's training images: one per labelled LN (`level="ln"`; unlabelled LNs are left
    out), or one for the slide (`"slide"`, labelled by the manifest, else positive when any LN is).
    A slide without a usable label gives none."""
    info = info or SlideInfo()
    study = info.study_id or slide.name
    events = [lymph_node_event(store, a, i) for i, a in enumerate(slide.lymph_nodes) if len(a.outer) >= 3]
    labels = [ln_label(a) for a in slide.lymph_nodes if len(a.outer) >= 3]
    if level == "ln":
        return [
            TrainingExample(f"{slide.name}/ln{e.index:03d}", slide.name, study, label, store.uri, (e,))
            for e, label in zip(events, labels, strict=True)
            if label is not None
        ]
    known = [label for label in labels if label is not None]
    label = info.label if info.label is not None else (max(known) if known else None)
    if label is None or not events:
        return []
    return [TrainingExample(slide.name, slide.name, study, label, store.uri, tuple(events))]


def example_source(example: TrainingExample, store: TileStore) -> ContourMaskedSource:
    """The example's image at 0.46 um/px: the box around its LN(s), white outside their contours.

    A one-LN example is exactly the image the scoring worker streams for that LN.
    """
    located = [LymphNodeImage.locate(store, event) for event in example.lymph_nodes]
    if len(located) == 1:
        return located[0].source()
    x0 = min(image.box[0] for image in located)
    y0 = min(image.box[1] for image in located)
    x1 = max(image.box[0] + image.box[2] for image in located)
    y1 = max(image.box[1] + image.box[3] for image in located)
    return ContourMaskedSource(
        located[0].array.read, (x0, y0, x1 - x0, y1 - y0), [image.polygon for image in located]
    )


def split_by_study(
    examples: Sequence[TrainingExample], val_fraction: float, seed: int
) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """(train, validation): about `val_fraction` of the studies held out, whole studies only.

    Among seeded shuffles of the studies, the first whose validation part holds both labels is
    taken (when one exists), so that validation AUC is defined. Raises
    `PathStreamError(INVALID_CONFIGURATION)` when there are too few studies to hold any out.
    """
    studies = sorted({e.study_id for e in examples})
    held = max(1, round(len(studies) * val_fraction))
    if held >= len(studies):
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"{len(studies)} study(ies) are too few to hold {held} out for validation.",
            hint="Give more studies, or a separate --val folder.",
        )
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for attempt in range(100):
        order = rng.permutation(len(studies))
        candidate = {studies[i] for i in order[:held]}
        if attempt == 0:
            chosen = candidate
        if len({e.label for e in examples if e.study_id in candidate}) == 2:
            chosen = candidate
            break
    train = [e for e in examples if e.study_id not in chosen]
    val = [e for e in examples if e.study_id in chosen]
    return train, val
