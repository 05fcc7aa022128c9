"""May-Grünwald-Giemsa-like blood and marrow cells, drawn with OpenCV at any resolution.

Sizes are micrometres; `scale` is pixels per micrometre. Each drawing function takes a uint8 RGB
canvas, a centre in pixels and a vector of uniforms that decides the cell's individual variation,
so the same cell looks the same wherever it is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum

import cv2
import numpy as np

Colour = tuple[int, int, int]
SHIFT = 4
ONE = 1 << SHIFT


class CellType(StrEnum):
    """The nucleated cell types a synthetic smear mixes, plus red cells."""

    RBC = "rbc"
    BLAST = "blast"
    MYELOCYTE = "myelocyte"
    NEUTROPHIL = "neutrophil"
    NEUTROPHIL_DYSPLASTIC = "neutrophil_dysplastic"
    ERYTHROBLAST = "erythroblast"
    ERYTHROBLAST_DYSPLASTIC = "erythroblast_dysplastic"
    LYMPHOCYTE = "lymphocyte"
    MONOCYTE = "monocyte"


def _pt(x: float, y: float) -> tuple[int, int]:
    return round(x * ONE), round(y * ONE)


def _circle(canvas: np.ndarray, x: float, y: float, radius: float, colour: Colour) -> None:
    cv2.circle(canvas, _pt(x, y), max(1, round(radius * ONE)), colour, -1, cv2.LINE_AA, SHIFT)


def _ellipse(
    canvas: np.ndarray, x: float, y: float, a: float, b: float, angle: float, colour: Colour
) -> None:
    axes = (max(1, round(a * ONE)), max(1, round(b * ONE)))
    cv2.ellipse(canvas, _pt(x, y), axes, angle, 0, 360, colour, -1, cv2.LINE_AA, SHIFT)


def _shade(colour: Colour, amount: float) -> Colour:
    return tuple(int(np.clip(c + amount, 0, 255)) for c in colour)  # type: ignore[return-value]


def rbc(canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray) -> None:
    """Red cell: salmon disc with central pallor, ~7.5 um."""
    radius = (3.5 + 0.6 * u[0]) * s
    _circle(canvas, x, y, radius, _shade((224, 148, 144), (u[1] - 0.5) * 14))
    _circle(canvas, x, y, radius * 0.42, (238, 192, 188))


def _lobed_nucleus(
    canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray, lobes: int, colour: Colour
) -> None:
    start = u[2] * 2 * math.pi
    spread = 1.9 * s
    for k in range(lobes):
        angle = start + (k - (lobes - 1) / 2) * 1.1
        _circle(canvas, x + spread * math.cos(angle), y + spread * math.sin(angle), 1.75 * s, colour)
    if lobes > 1:
        points = [
            _pt(
                x + spread * math.cos(start + (k - (lobes - 1) / 2) * 1.1),
                y + spread * math.sin(start + (k - (lobes - 1) / 2) * 1.1),
            )
            for k in range(lobes)
        ]
        cv2.polylines(
            canvas,
            [np.array(points, np.int32)],
            False,
            colour,
            max(1, round(0.8 * s)),
            cv2.LINE_AA,
            SHIFT,
        )


def neutrophil(canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray) -> None:
    """Segmented neutrophil: pale pink granular cytoplasm, 3-4 nuclear lobes, ~12 um."""
    _circle(canvas, x, y, (5.6 + 0.8 * u[0]) * s, _shade((224, 198, 212), (u[1] - 0.5) * 10))
    _lobed_nucleus(canvas, x, y, s, u, 3 + int(u[3] > 0.6), (96, 52, 128))


def neutrophil_dysplastic(canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray) -> None:
    """Dysplastic neutrophil: hypogranular (paler) cytoplasm, hypolobated (pseudo-Pelger) nucleus."""
    _circle(canvas, x, y, (5.6 + 0.9 * u[0]) * s, (236, 220, 228))
    if u[3] < 0.5:
        _lobed_nucleus(canvas, x, y, s * 1.15, u, 2, (88, 46, 120))
    else:
        _ellipse(canvas, x, y, 2.6 * s, 2.1 * s, u[2] * 180, (88, 46, 120))


def blast(canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray) -> None:
    """Blast: large cell, thin basophilic rim, big round nucleus with fine chromatin and nucleoli."""
    radius = (7.2 + 1.8 * u[0]) * s
    _circle(canvas, x, y, radius, _shade((146, 156, 206), (u[1] - 0.5) * 12))
    nucleus = radius * (0.78 + 0.08 * u[3])
    _circle(canvas, x + (u[2] - 0.5) * s, y, nucleus, (134, 92, 170))
    for k in range(1 + int(u[4] > 0.5)):
        angle = u[5] * 6.28 + k * 2.4
        _circle(
            canvas,
            x + 0.4 * nucleus * math.cos(angle),
            y + 0.4 * nucleus * math.sin(angle),
            1.1 * s,
            (176, 150, 206),
        )


def myelocyte(canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray) -> None:
    """Myelocyte/promyelocyte: granular pink cytoplasm, eccentric oval nucleus, ~15 um."""
    radius = (6.8 + 1.2 * u[0]) * s
    _circle(canvas, x, y, radius, (214, 172, 194))
    angle = u[2] * 2 * math.pi
    _ellipse(
        canvas,
        x + 0.3 * radius * math.cos(angle),
        y + 0.3 * radius * math.sin(angle),
        4.3 * s,
        3.4 * s,
        u[3] * 180,
        (110, 64, 142),
    )
    rng = np.random.default_rng(int(u[4] * 1e9))
    for _ in range(int(6 + 6 * u[5])):
        r, a = radius * 0.85 * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
        _circle(canvas, x + r * math.cos(a), y + r * math.sin(a), 0.45 * s, (126, 62, 124))


def erythroblast(canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray) -> None:
    """Erythroblast: blue-grey cytoplasm, small round very dark nucleus, ~10 um."""
    radius = (4.6 + 0.9 * u[0]) * s
    _circle(canvas, x, y, radius, (142, 142, 190))
    _circle(canvas, x, y, radius * 0.66, (60, 32, 92))


def erythroblast_dysplastic(canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray) -> None:
    """Dysplastic erythroblast: megaloblastic, with two or three nuclei or a budding nucleus."""
    radius = (6.0 + 1.2 * u[0]) * s
    _circle(canvas, x, y, radius, (150, 146, 196))
    nuclei = 2 + int(u[3] > 0.6)
    for k in range(nuclei):
        angle = u[2] * 6.28 + k * 2 * math.pi / nuclei
        _circle(
            canvas,
            x + 0.38 * radius * math.cos(angle),
            y + 0.38 * radius * math.sin(angle),
            radius * 0.36,
            (66, 36, 98),
        )


def lymphocyte(canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray) -> None:
    """Lymphocyte: dense round nucleus with a scant sky-blue rim, ~8 um."""
    radius = (3.9 + 0.7 * u[0]) * s
    _circle(canvas, x, y, radius, (160, 176, 216))
    _circle(canvas, x + 0.15 * radius, y, radius * 0.82, (72, 42, 110))


def monocyte(canvas: np.ndarray, x: float, y: float, s: float, u: np.ndarray) -> None:
    """Monocyte: grey-blue cytoplasm with vacuoles and a folded (kidney) nucleus, ~16 um."""
    radius = (7.0 + 1.2 * u[0]) * s
    _circle(canvas, x, y, radius, (186, 180, 206))
    angle = u[2] * 180
    _ellipse(canvas, x - 1.2 * s, y, 4.0 * s, 2.8 * s, angle, (120, 86, 150))
    _ellipse(canvas, x + 1.6 * s, y + 0.8 * s, 3.2 * s, 2.4 * s, angle + 40, (120, 86, 150))
    _circle(canvas, x + 0.55 * radius, y - 0.45 * radius, 0.9 * s, (214, 210, 224))


DRAW: dict[CellType, Callable[[np.ndarray, float, float, float, np.ndarray], None]] = {
    CellType.RBC: rbc,
    CellType.BLAST: blast,
    CellType.MYELOCYTE: myelocyte,
    CellType.NEUTROPHIL: neutrophil,
    CellType.NEUTROPHIL_DYSPLASTIC: neutrophil_dysplastic,
    CellType.ERYTHROBLAST: erythroblast,
    CellType.ERYTHROBLAST_DYSPLASTIC: erythroblast_dysplastic,
    CellType.LYMPHOCYTE: lymphocyte,
    CellType.MONOCYTE: monocyte,
}
"""How each cell type is drawn: f(canvas, x_px, y_px, px_per_um, uniforms)."""

LARGEST_CELL_UM = 9.5
