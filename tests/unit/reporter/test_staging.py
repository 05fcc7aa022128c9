"""AJCC 8th-edition pN staging of gastric cancer, ITC / micro / macro classes included: the table."""

from __future__ import annotations

import pytest

from pathstream.services.reporter.staging import (
    DepositClass,
    NodeCounts,
    below_ajcc_minimum,
    deposit_class,
    largest_deposit_mm,
    pn_category,
    stage,
)
from pathstream.shared.events import LnLabel

P, N = LnLabel.POSITIVE, LnLabel.NEGATIVE


@pytest.mark.parametrize(
    ("positive", "itc", "category"),
    [
        (0, 0, "N0"),
        (0, 1, "N0(i+)"),
        (0, 5, "N0(i+)"),
        (1, 0, "N1"),
        (2, 3, "N1"),  # ITC nodes never add to the positive count
        (3, 0, "N2"),
        (6, 9, "N2"),
        (7, 0, "N3a"),
        (15, 0, "N3a"),
        (16, 0, "N3b"),
        (60, 2, "N3b"),
    ],
)
def test_every_boundary(positive: int, itc: int, category: str) -> None:
    assert pn_category(positive, itc) == category
    assert isinstance(pn_category(positive, itc), str)


@pytest.mark.parametrize(
    ("label", "size_mm", "expected"),
    [
        (None, None, None),
        (N, None, DepositClass.NONE),
        (N, 3.0, DepositClass.NONE),  # a negative call wins over a stray outline
        (P, None, DepositClass.UNMEASURED),
        (P, 0.0, DepositClass.ITC),
        (P, 0.199, DepositClass.ITC),
        (P, 0.2, DepositClass.MICRO),
        (P, 2.0, DepositClass.MICRO),
        (P, 2.001, DepositClass.MACRO),
        (P, 12.0, DepositClass.MACRO),
    ],
)
def test_deposit_classes(label: LnLabel | None, size_mm: float | None, expected: DepositClass | None) -> None:
    assert deposit_class(label, size_mm) == expected


@pytest.mark.parametrize(
    ("classes", "category", "positive", "examined"),
    [
        ([DepositClass.ITC] * 3 + [DepositClass.NONE] * 12, "N0(i+)", 0, 15),
        ([DepositClass.MICRO] * 2 + [DepositClass.ITC] * 3 + [DepositClass.NONE] * 10, "N1", 2, 15),
        ([DepositClass.MACRO, DepositClass.UNMEASURED, DepositClass.MICRO], "N2", 3, 3),
        ([DepositClass.NONE] * 4 + [None], "N0", 0, 4),  # an unscored node is not examined
        ([None, None], None, 0, 0),
    ],
)
def test_staging_from_node_classes(
    classes: list[DepositClass | None], category: str | None, positive: int, examined: int
) -> None:
    counts = NodeCounts.of(classes)
    assert (stage(counts), counts.positive, counts.examined) == (category, positive, examined)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_refuses_what_is_not_a_count(bad: object) -> None:
    with pytest.raises(ValueError, match="count"):
        pn_category(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="count"):
        pn_category(0, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_refuses_impossible_sizes(bad: float) -> None:
    with pytest.raises(ValueError, match="deposit size"):
        deposit_class(P, bad)


def test_largest_deposit_is_the_feret_diameter_of_the_largest_polygon() -> None:
    square = [[0, 0], [300, 0], [300, 400], [0, 400]]  # diagonal 500 px
    small = [[1000, 1000], [1010, 1000], [1010, 1010]]
    assert largest_deposit_mm([small, square], mpp=0.5) == pytest.approx(0.25)
    assert largest_deposit_mm([], mpp=0.5) is None
    assert largest_deposit_mm([[[5, 5]]], mpp=0.5) == pytest.approx(0.0005)  # one pixel at least


def test_fewer_than_15_examined_is_flagged() -> None:
    assert below_ajcc_minimum(14) and not below_ajcc_minimum(15)
