"""Render any rectangle of a planned lymph-node slide at level 0, as H&E-like RGB.

What the detector sees at 7.36 um/px: white glass, pale fat with pink septa, pink stroma and
muscle, and lymph nodes as dense purple ovals with a pink capsule. What ESCNN sees at 0.46 um/px:
small dark lymphocyte nuclei packed in the node, pale sinuses and follicles, and metastases as
clusters of larger, paler, pleomorphic nuclei (glandular in larger deposits). Every structure is
placed by position-hashed randomness, so any tiling of the slide gives the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pathstream.synthetic.hashing import NoiseTexture, canvas_points, jittered_points
from pathstream.synthetic.lymph_node_scene import NodePlan, ScenePlan
from pathstream.synthetic.shapes import bbox

Colour = tuple[int, int, int]

GLASS: Colour = (242, 241, 244)
FAT_CELL: Colour = (248, 243, 246)
FAT_SEPTUM: Colour = (224, 162, 194)
STROMA: Colour = (236, 170, 203)
MUSCLE: Colour = (221, 126, 165)
PARENCHYMA: Colour = (205, 158, 200)
FOLLICLE: Colour = (216, 176, 212)
SINUS: Colour = (238, 210, 229)
CAPSULE: Colour = (226, 138, 180)
TUMOUR: Colour = (233, 184, 214)
LUMEN: Colour = (247, 241, 245)

_LAYER_SALTS = {
    "fat": 11,
    "lymphocyte": 12,
    "follicle": 13,
    "histiocyte": 14,
    "spindle": 15,
    "muscle": 16,
    "tumour": 17,
    "lumen": 18,
    "itc": 19,
}


@dataclass(frozen=True)
class Population:
    """A kind of nucleus: spacing and size in micrometres, shape, colour, and how often present."""

    name: str
    spacing_um: float
    radius_um: tuple[float, float]
    aspect: tuple[float, float]
    colour: Colour
    colour_jitter: float
    presence: float
    rim: Colour | None = None
    """Vesicular nuclei (tumour) have a pale interior, a dark membrane and a nucleolus."""


LYMPHOCYTES = Population("lymphocyte", 8.0, (2.8, 3.8), (0.85, 1.0), (70, 42, 120), 18, 0.93)
FOLLICLE_CELLS = Population("follicle", 10.0, (3.6, 5.0), (0.75, 1.0), (112, 80, 160), 20, 0.8)
HISTIOCYTES = Population("histiocyte", 18.0, (3.5, 5.5), (0.6, 0.9), (150, 116, 176), 16, 0.35)
SPINDLES = Population("spindle", 22.0, (5.5, 8.5), (0.18, 0.3), (98, 62, 140), 16, 0.5)
MUSCLE_NUCLEI = Population("muscle", 15.0, (6.0, 9.0), (0.16, 0.24), (110, 58, 132), 14, 0.75)
TUMOUR_NUCLEI = Population("tumour", 15.0, (4.5, 8.5), (0.55, 0.95), (168, 132, 200), 26, 0.9, (92, 58, 142))
ITC_NUCLEI = Population("itc", 15.0, (5.0, 8.0), (0.55, 0.9), (166, 130, 198), 24, 0.75, (92, 58, 142))
LUMENS = Population("lumen", 55.0, (9.0, 22.0), (0.6, 1.0), LUMEN, 0, 0.45)


class LymphNodeRenderer:
    """Callable (x, y, width, height) -> uint8 RGB tile of a `ScenePlan` at level 0."""

    def __init__(self, plan: ScenePlan) -> None:
        self.plan = plan
        self.px_per_um = 1.0 / plan.mpp
        largest_radius = max(p.radius_um[1] for p in (TUMOUR_NUCLEI, LUMENS, MUSCLE_NUCLEI))
        self.blur_sigma = max(0.5, 0.3 * self.px_per_um)
        self.margin = int(np.ceil(largest_radius * self.px_per_um + 3 * self.blur_sigma)) + 2
        self.noise = NoiseTexture(plan.seed, 1)
        self.fat = [(p, bbox(p)) for p in plan.fat]
        self.stroma = [(p, bbox(p)) for p in plan.stroma]
        self.muscle = [(p, a, bbox(p)) for p, a in plan.muscle]
        self.nodes = [(n, bbox(n.polygon)) for n in plan.nodes]

    # -- masks -----------------------------------------------------------------------------

    @staticmethod
    def _hits(box: tuple[int, int, int, int], rect: tuple[int, int, int, int]) -> bool:
        return box[0] < rect[2] and box[2] > rect[0] and box[1] < rect[3] and box[3] > rect[1]

    @staticmethod
    def _fill(shape: tuple[int, int], polygons: list[np.ndarray], origin: tuple[int, int]) -> np.ndarray:
        mask = np.zeros(shape, np.uint8)
        if polygons:
            cv2.fillPoly(mask, [(p - np.array(origin, np.int32)).astype(np.int32) for p in polygons], 1)
        return mask

    # -- painting ----------------------------------------------------------------------------

    def _paint(self, canvas: np.ndarray, mask: np.ndarray, colour: Colour) -> None:
        canvas[mask.astype(bool)] = colour

    def _nuclei(
        self,
        canvas: np.ndarray,
        mask: np.ndarray,
        origin: tuple[int, int],
        population: Population,
        direction: float | None = None,
    ) -> None:
        """Draw one nucleus population where its centre falls on `mask`."""
        if not mask.any():
            return
        x0, y0 = origin
        found = canvas_points(
            origin,
            mask.shape,
            population.spacing_um * self.px_per_um,
            self.plan.seed,
            _LAYER_SALTS[population.name],
        )
        points, keep = found.points, found.inside
        keep = keep[mask[found.row[keep], found.col[keep]] > 0]
        keep = keep[points.u[keep, 0] < population.presence]
        r_lo, r_hi = population.radius_um
        a_lo, a_hi = population.aspect
        for i in keep:
            u = points.u[i]
            radius = (r_lo + (r_hi - r_lo) * u[1]) * self.px_per_um
            minor = radius * (a_lo + (a_hi - a_lo) * u[2])
            angle = np.degrees(direction) + (u[3] - 0.5) * 20 if direction is not None else u[3] * 180.0
            shade = (u[4] - 0.5) * 2 * population.colour_jitter
            colour = tuple(int(np.clip(c + shade, 0, 255)) for c in population.colour)
            centre = (round((points.x[i] - x0) * 16), round((points.y[i] - y0) * 16))
            axes = (max(1, round(radius * 16)), max(1, round(minor * 16)))
            cv2.ellipse(canvas, centre, axes, float(angle), 0, 360, colour, -1, cv2.LINE_AA, 4)
            if population.rim is not None:
                membrane = max(1, round(0.7 * self.px_per_um))
                cv2.ellipse(
                    canvas, centre, axes, float(angle), 0, 360, population.rim, membrane, cv2.LINE_AA, 4
                )
                nucleolus = max(1, round((0.6 + 0.6 * u[5]) * self.px_per_um * 16))
                cv2.circle(canvas, centre, nucleolus, population.rim, -1, cv2.LINE_AA, 4)

    def _fat(self, canvas: np.ndarray, mask: np.ndarray, origin: tuple[int, int]) -> None:
        """Adipocytes: pale cells separated by thin pink septa."""
        if not mask.any():
            return
        fat = mask.astype(bool)
        layer = np.empty_like(canvas)
        layer[:] = FAT_SEPTUM
        height, width = mask.shape
        x0, y0 = origin
        spacing = 72.0 * self.px_per_um
        points = jittered_points(
            x0 - spacing,
            y0 - spacing,
            x0 + width + spacing,
            y0 + height + spacing,
            spacing,
            self.plan.seed,
            _LAYER_SALTS["fat"],
        )
        septum = max(1.0, 2.2 * self.px_per_um)
        for i in range(points.x.size):
            radius = spacing * (0.5 + 0.12 * points.u[i, 0]) - septum / 2
            cv2.circle(
                layer,
                (round((points.x[i] - x0) * 16), round((points.y[i] - y0) * 16)),
                max(1, round(radius * 16)),
                FAT_CELL,
                -1,
                cv2.LINE_AA,
                4,
            )
        canvas[fat] = layer[fat]

    # -- the tile ----------------------------------------------------------------------------

    def __call__(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        m = self.margin
        origin = (x - m, y - m)
        shape = (height + 2 * m, width + 2 * m)
        rect = (origin[0], origin[1], origin[0] + shape[1], origin[1] + shape[0])
        canvas = np.empty((*shape, 3), np.uint8)
        canvas[:] = GLASS

        fat = [p for p, b in self.fat if self._hits(b, rect)]
        stroma = [p for p, b in self.stroma if self._hits(b, rect)]
        muscle = [(p, a) for p, a, b in self.muscle if self._hits(b, rect)]
        nodes = [n for n, b in self.nodes if self._hits(b, rect)]

        if fat:
            self._fat(canvas, self._fill(shape, fat, origin), origin)
        if stroma:
            stroma_mask = self._fill(shape, stroma, origin)
            self._paint(canvas, stroma_mask, STROMA)
            self._nuclei(canvas, stroma_mask, origin, SPINDLES)
        for polygon, angle in muscle:
            muscle_mask = self._fill(shape, [polygon], origin)
            self._paint(canvas, muscle_mask, MUSCLE)
            self._nuclei(canvas, muscle_mask, origin, MUSCLE_NUCLEI, direction=angle)
        for node in nodes:
            self._node(canvas, node, origin, shape)

        noise = self.noise.patch(origin[0], origin[1], shape[1], shape[0])
        tinted = canvas.astype(np.int16) + (noise * 6).astype(np.int16)[..., None]
        canvas = np.clip(tinted, 0, 255).astype(np.uint8)
        canvas = cv2.GaussianBlur(canvas, (0, 0), self.blur_sigma)
        return canvas[m : m + height, m : m + width].copy()

    def _node(
        self, canvas: np.ndarray, node: NodePlan, origin: tuple[int, int], shape: tuple[int, int]
    ) -> None:
        offset = np.array(origin, np.int32)
        outline = node.polygon - offset
        inside = self._fill(shape, [node.polygon], origin)
        capsule = np.zeros(shape, np.uint8)
        cv2.polylines(capsule, [outline], True, 1, thickness=max(1, round(2 * node.capsule_px)))
        capsule &= inside
        sinus = np.zeros(shape, np.uint8)
        cv2.polylines(
            sinus, [outline], True, 1, thickness=max(1, round(2 * (node.capsule_px + node.sinus_px)))
        )
        for channel in node.sinuses:
            cv2.polylines(sinus, [channel - offset], False, 1, thickness=max(1, round(1.6 * node.sinus_px)))
        sinus &= inside & (1 - capsule)
        follicle = np.zeros(shape, np.uint8)
        for fx, fy, radius in node.follicles:
            cv2.circle(follicle, (int(fx - origin[0]), int(fy - origin[1])), int(radius), 1, -1)
        follicle &= inside & (1 - capsule) & (1 - sinus)
        lesions = node.lesions
        tumour = self._fill(shape, [lesion.polygon for lesion in lesions if lesion.glandular], origin)
        itc = self._fill(shape, [lesion.polygon for lesion in lesions if not lesion.glandular], origin)

        parenchyma = inside & (1 - capsule) & (1 - sinus) & (1 - follicle) & (1 - tumour)
        self._paint(canvas, inside, PARENCHYMA)
        self._paint(canvas, follicle, FOLLICLE)
        self._paint(canvas, sinus, SINUS)
        self._paint(canvas, capsule, CAPSULE)
        self._nuclei(canvas, parenchyma, origin, LYMPHOCYTES)
        self._nuclei(canvas, follicle, origin, FOLLICLE_CELLS)
        self._nuclei(canvas, sinus, origin, HISTIOCYTES)
        self._nuclei(canvas, capsule, origin, SPINDLES)
        if tumour.any():
            self._paint(canvas, tumour, TUMOUR)
            self._nuclei(canvas, tumour, origin, TUMOUR_NUCLEI)
            self._nuclei(canvas, tumour, origin, LUMENS)
        if itc.any():
            self._nuclei(canvas, itc, origin, ITC_NUCLEI)
