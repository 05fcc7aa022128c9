"""AJCC 8th-edition pN staging of gastric cancer from the number of positive regional LNs."""

from __future__ import annotations

from pathstream.shared.events import AJCC_MINIMUM_LNS, PnCategory

_UPPER_BOUNDS: tuple[tuple[int, PnCategory], ...] = (
    (0, PnCategory.N0),
    (2, PnCategory.N1),
    (6, PnCategory.N2),
    (15, PnCategory.N3A),
)


def pn_category(positive: int) -> str:
    """Positive regional LN count -> "N0" (0), "N1" (1-2), "N2" (3-6), "N3a" (7-15) or "N3b" (>= 16).

    The returned value is a `PnCategory` (a str enum). Raises ValueError for a negative count.
    """
    if isinstance(positive, bool) or not isinstance(positive, int):
        raise ValueError(f"a positive LN count must be an integer, got {positive!r}")
    if positive < 0:
        raise ValueError(f"a positive LN count cannot be negative, got {positive}")
    for upper, category in _UPPER_BOUNDS:
        if positive <= upper:
            return category
    return PnCategory.N3B


def below_ajcc_minimum(examined: int) -> bool:
    """True when fewer than 15 regional LNs were examined (inadequate for pN staging per AJCC)."""
    return examined < AJCC_MINIMUM_LNS
