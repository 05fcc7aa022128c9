"""Manifest parsing, per-LN / per-slide examples and the split by study (pure logic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathstream.services.escnn.training.data import (
    SlideInfo,
    TrainingExample,
    examples_for_slide,
    read_manifest,
    split_by_study,
)
from pathstream.shared.errors import PathStreamError
from pathstream.shared.qupath import Annotation
from pathstream.training.annotated_slides import AnnotatedSlide


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_manifest_reads_studies_and_labels(tmp_path: Path) -> None:
    manifest = read_manifest(
        _write(tmp_path / "m.csv", "slide,study_id,label\nA,ST1,positive\nB,ST1,0\nC,,\n")
    )
    assert manifest == {
        "A": SlideInfo("ST1", 1),
        "B": SlideInfo("ST1", 0),
        "C": SlideInfo(None, None),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,label\nA,1\n", "needs 'slide'"),
        ("slide,label\nA,maybe\n", "line 2: label 'maybe'"),
        ("slide,label\nA,1\nA,0\n", "listed twice"),
        ("slide,label\n,1\n", "slide name is empty"),
    ],
)
def test_manifest_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PathStreamError, match=message):
        read_manifest(_write(tmp_path / "m.csv", text))


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PathStreamError, match="does not exist"):
        read_manifest(tmp_path / "absent.csv")


class _Store:
    slide_id = "store-1"
    uri = "/stores/store-1"


def _slide(*classes: str | None) -> AnnotatedSlide:
    square = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]
    nodes = [
        Annotation(outer=[(x + 200.0 * i, y) for x, y in square], classification=c)
        for i, c in enumerate(classes)
    ]
    return AnnotatedSlide(name="slide-a", slide=Path("slide-a.svs"), lymph_nodes=nodes)


def test_ln_level_examples_keep_labelled_nodes_only() -> None:
    examples = examples_for_slide(_slide("Positive", None, "Negative"), _Store(), "ln")  # type: ignore[arg-type]
    assert [(e.example_id, e.label, e.study_id) for e in examples] == [
        ("slide-a/ln000", 1, "slide-a"),
        ("slide-a/ln002", 0, "slide-a"),
    ]
    assert examples[1].lymph_nodes[0].bbox.x == 400


def test_slide_level_example_takes_the_manifest_label_over_the_nodes() -> None:
    slide = _slide("Negative", "Positive")
    (derived,) = examples_for_slide(slide, _Store(), "slide")  # type: ignore[arg-type]
    assert derived.label == 1 and len(derived.lymph_nodes) == 2
    (told,) = examples_for_slide(slide, _Store(), "slide", SlideInfo("ST9", 0))  # type: ignore[arg-type]
    assert (told.label, told.study_id) == (0, "ST9")
    assert examples_for_slide(_slide(None, None), _Store(), "slide") == []  # type: ignore[arg-type]


def _example(name: str, study: str, label: int) -> TrainingExample:
    return TrainingExample(name, name, study, label, "uri", ())


def test_split_keeps_studies_whole_and_validation_two_class() -> None:
    examples = [_example(f"s{i}-{k}", f"study{i}", (i + k) % 2) for i in range(10) for k in range(3)]
    train, val = split_by_study(examples, 0.2, seed=3)
    assert {e.study_id for e in train}.isdisjoint({e.study_id for e in val})
    assert len({e.study_id for e in val}) == 2 and len(train) + len(val) == len(examples)
    assert {e.label for e in val} == {0, 1}
    assert split_by_study(examples, 0.2, seed=3) == (train, val)  # deterministic


def test_split_needs_two_studies() -> None:
    with pytest.raises(PathStreamError, match="too few"):
        split_by_study([_example("a", "one", 1), _example("b", "one", 0)], 0.5, seed=0)
