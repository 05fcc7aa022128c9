"""AJCC 8th-edition pN boundaries for gastric cancer."""

from __future__ import annotations

import pytest

from pathstream.services.reporter.staging import below_ajcc_minimum, pn_category


@pytest.mark.parametrize(
    ("positive", "category"),
    [
        (0, "N0"),
        (1, "N1"),
        (2, "N1"),
        (3, "N2"),
        (6, "N2"),
        (7, "N3a"),
        (15, "N3a"),
        (16, "N3b"),
        (60, "N3b"),
    ],
)
def test_every_boundary(positive: int, category: str) -> None:
    assert pn_category(positive) == category
    assert isinstance(pn_category(positive), str)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_refuses_what_is_not_a_count(bad: object) -> None:
    with pytest.raises(ValueError, match="count"):
        pn_category(bad)  # type: ignore[arg-type]


def test_fewer_than_15_examined_is_flagged() -> None:
    assert below_ajcc_minimum(14) and not below_ajcc_minimum(15)
