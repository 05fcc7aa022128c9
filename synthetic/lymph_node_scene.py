"""Plan a synthetic gastric lymph-node dissection: where every node, deposit and distractor lies.

Sizes are drawn in micrometres and converted through the mpp, so the same seed gives the same
tissue at any scan resolution. All randomness comes from one seeded generator, in a fixed order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pathstream.shared.events import LnLabel
from pathstream.shared.polygons import polygon_area
from pathstream.synthetic.shapes import Blob, max_diameter, points_inside
from pathstream.synthetic.truth import (
    ITC_MAX_UM,
    MACRO_MIN_UM,
    DistractorTruth,
    LesionTruth,
    LymphNodeSlideTruth,
    LymphNodeTruth,
    size_class,
)

NODE_GAP_UM = 300.0
MIN_NODE_UM = 700.0
PAD_MAX = 1.4
MAX_NODE_UM = 5000.0
CAPSULE_UM = (18.0, 35.0)
SINUS_UM = (10.0, 18.0)


@dataclass
class LesionPlan:
    """A metastatic deposit: its outline and whether it is glandular (has lumens)."""

    polygon: np.ndarray
    glandular: bool


@dataclass
class NodePlan:
    """One lymph node and its internal structure."""

    index: int
    blob: Blob
    polygon: np.ndarray
    capsule_px: float
    sinus_px: float
    sinuses: list[np.ndarray]
    follicles: list[tuple[float, float, float]]
    lesions: list[LesionPlan] = field(default_factory=list)

    @property
    def label(self) -> LnLabel:
        return LnLabel.POSITIVE if self.lesions else LnLabel.NEGATIVE


@dataclass
class ScenePlan:
    """Everything the renderer draws, in level-0 pixels."""

    width: int
    height: int
    mpp: float
    seed: int
    nodes: list[NodePlan]
    fat: list[np.ndarray]
    stroma: list[np.ndarray]
    muscle: list[tuple[np.ndarray, float]]
    """Muscle fragments with their fibre direction (radians)."""

    def truth(self, slide_name: str) -> LymphNodeSlideTruth:
        """The ground truth of this plan (`truth.json`)."""
        um2 = self.mpp * self.mpp
        nodes = []
        for node in self.nodes:
            lesions = []
            for lesion in node.lesions:
                diameter_um = max_diameter(lesion.polygon) * self.mpp
                lesions.append(
                    LesionTruth(
                        polygon=[(int(x), int(y)) for x, y in lesion.polygon],
                        size_class=size_class(diameter_um),
                        max_diameter_um=round(diameter_um, 1),
                        area_um2=round(polygon_area(lesion.polygon) * um2, 1),
                    )
                )
            nodes.append(
                LymphNodeTruth(
                    index=node.index,
                    polygon=[(int(x), int(y)) for x, y in node.polygon],
                    label=node.label,
                    area_um2=round(polygon_area(node.polygon) * um2, 1),
                    lesions=lesions,
                )
            )
        distractors = [DistractorTruth(kind="fat", polygon=_as_list(p)) for p in self.fat]
        distractors += [DistractorTruth(kind="stroma", polygon=_as_list(p)) for p in self.stroma]
        distractors += [DistractorTruth(kind="muscle", polygon=_as_list(p)) for p, _ in self.muscle]
        return LymphNodeSlideTruth(
            slide=slide_name,
            width=self.width,
            height=self.height,
            mpp=self.mpp,
            seed=self.seed,
            lymph_nodes=nodes,
            distractors=distractors,
        )


def _as_list(polygon: np.ndarray) -> list[tuple[int, int]]:
    return [(int(x), int(y)) for x, y in polygon]


class _Placer:
    """Rejection sampling of non-overlapping discs inside the slide."""

    def __init__(self, rng: np.random.Generator, width: int, height: int) -> None:
        self.rng = rng
        self.width = width
        self.height = height
        self.discs: list[tuple[float, float, float]] = []

    def place(self, radius: float, gap: float, tries: int = 4000) -> tuple[float, float] | None:
        margin = radius + gap / 2
        if 2 * margin > min(self.width, self.height):
            return None
        for _ in range(tries):
            x = float(self.rng.uniform(margin, self.width - margin))
            y = float(self.rng.uniform(margin, self.height - margin))
            if all(math.hypot(x - cx, y - cy) >= radius + r + gap for cx, cy, r in self.discs):
                self.discs.append((x, y, radius))
                return x, y
        return None


def _node_structure(
    rng: np.random.Generator, blob: Blob, mpp: float
) -> tuple[list[np.ndarray], list[tuple[float, float, float]]]:
    """Medullary sinuses (curved channels through the centre) and cortical follicles."""
    sinuses: list[np.ndarray] = []
    for _ in range(int(rng.integers(2, 5))):
        angle = rng.uniform(0, 2 * math.pi)
        length = rng.uniform(0.5, 0.9) * min(blob.rx, blob.ry)
        bend = rng.uniform(-0.4, 0.4)
        t = np.linspace(-1, 1, 24)
        along = t * length
        across = bend * length * (1 - t**2)
        xs = blob.cx + along * math.cos(angle) - across * math.sin(angle)
        ys = blob.cy + along * math.sin(angle) + across * math.cos(angle)
        sinuses.append(np.rint(np.stack([xs, ys], 1)).astype(np.int32))
    follicles: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(1, 5))):
        theta = float(rng.uniform(0, 2 * math.pi))
        rim = float(rng.uniform(0.6, 0.8))
        radius = float(rng.uniform(120, 300)) / mpp * min(1.0, min(blob.rx, blob.ry) * mpp / 900)
        x = (
            blob.cx
            + rim * blob.rx * math.cos(theta) * math.cos(blob.angle)
            - rim * blob.ry * math.sin(theta) * math.sin(blob.angle)
        )
        y = (
            blob.cy
            + rim * blob.rx * math.cos(theta) * math.sin(blob.angle)
            + rim * blob.ry * math.sin(theta) * math.cos(blob.angle)
        )
        follicles.append((x, y, radius))
    return sinuses, follicles


def _lesion_size_um(rng: np.random.Generator, node_minor_um: float, force_small: bool) -> float:
    """A deposit diameter: macro when the node is big enough, else micro or ITC."""
    room = node_minor_um * 0.75
    choices = ["itc", "micro"] + (["macro"] if room >= MACRO_MIN_UM * 1.1 and not force_small else [])
    kind = choices[int(rng.integers(len(choices)))]
    if kind == "macro":
        return float(rng.uniform(MACRO_MIN_UM * 1.08, room))
    if kind == "micro":
        return float(rng.uniform(ITC_MAX_UM * 1.6, min(MACRO_MIN_UM * 0.85, room)))
    return float(rng.uniform(50.0, ITC_MAX_UM * 0.75))


def _place_lesion(rng: np.random.Generator, node: NodePlan, diameter_px: float) -> LesionPlan | None:
    inner = node.blob.scaled(0.9)
    for _ in range(200):
        radius = float(rng.uniform(0, 1)) ** 0.5 * max(0.0, min(inner.rx, inner.ry) - diameter_px / 2)
        theta = float(rng.uniform(0, 2 * math.pi))
        cx = node.blob.cx + radius * math.cos(theta)
        cy = node.blob.cy + radius * math.sin(theta)
        blob = Blob.random(rng, cx, cy, diameter_px, float(rng.uniform(0.6, 0.95)), 0.08)
        outline = blob.polygon(64)
        if points_inside(inner.polygon(128), outline[:, 0], outline[:, 1]).all():
            return LesionPlan(polygon=outline, glandular=False)
    return None


def plan_scene(
    width: int,
    height: int,
    mpp: float,
    nodes: int,
    seed: int,
    positive_fraction: float = 0.4,
    node_size_um: tuple[float, float] = (MIN_NODE_UM, MAX_NODE_UM),
) -> ScenePlan:
    """Lay out `nodes` lymph nodes with deposits, fat pads and distractor fragments.

    Node diameters lie in `node_size_um` (default 0.7-5 mm, capped by the room on the slide; small
    perigastric nodes of 0.2-0.7 mm exist too). Raises ValueError when the slide is too small (in
    micrometres) for that many nodes.
    """
    smallest_um, biggest_um = node_size_um
    if not 0 < smallest_um <= biggest_um:
        raise ValueError(f"node sizes {node_size_um} are not a range of positive diameters")
    rng = np.random.default_rng(seed)
    width_um, height_um = width * mpp, height * mpp
    # Each node needs its fat pad (up to 1.4x, wobbling) plus the gap to its neighbours.
    footprint = PAD_MAX * 1.12
    share_um = math.sqrt(width_um * height_um / (nodes + 0.5)) if nodes else 0.0
    largest_um = min(
        biggest_um,
        (share_um - NODE_GAP_UM) / footprint,
        (min(width_um, height_um) - NODE_GAP_UM) / footprint,
    )
    if nodes and largest_um < smallest_um:
        raise ValueError(
            f"A {width_um / 1000:.1f} x {height_um / 1000:.1f} mm slide has no room for {nodes} lymph "
            f"nodes of at least {smallest_um / 1000:.1f} mm; make it larger (--width/--height) or "
            "coarser (--mpp), or ask for fewer nodes."
        )
    placer = _Placer(rng, width, height)
    gap = NODE_GAP_UM / mpp
    positives = (
        set(rng.choice(nodes, size=round(nodes * positive_fraction), replace=False).tolist())
        if nodes
        else set()
    )

    plans: list[NodePlan] = []
    fat: list[np.ndarray] = []
    for index in range(nodes):
        diameter_um = float(rng.uniform(max(smallest_um, largest_um * 0.45), largest_um))
        aspect = float(rng.uniform(0.6, 0.92))
        pad_scale = float(rng.uniform(1.15, PAD_MAX))
        centre = placer.place(diameter_um / mpp / 2 * pad_scale * 1.12, gap)
        while centre is None and diameter_um > smallest_um:
            # Crowded: try a smaller node before giving up.
            diameter_um = max(smallest_um, diameter_um * 0.85)
            centre = placer.place(diameter_um / mpp / 2 * pad_scale * 1.12, gap)
        if centre is None:
            raise ValueError(
                f"Could not place lymph node {index + 1} of {nodes} without overlap; make the slide "
                "larger (--width/--height) or coarser (--mpp), or ask for fewer nodes."
            )
        blob = Blob.random(rng, centre[0], centre[1], diameter_um / mpp, aspect, 0.05)
        sinuses, follicles = _node_structure(rng, blob, mpp)
        node = NodePlan(
            index=index,
            blob=blob,
            polygon=blob.polygon(160),
            capsule_px=float(rng.uniform(*CAPSULE_UM)) / mpp,
            sinus_px=float(rng.uniform(*SINUS_UM)) / mpp,
            sinuses=sinuses,
            follicles=follicles,
        )
        pad = Blob.random(
            rng, blob.cx, blob.cy, diameter_um / mpp * pad_scale, aspect * float(rng.uniform(0.9, 1.1)), 0.08
        )
        fat.append(pad.polygon(96))
        if index in positives:
            minor_um = diameter_um * aspect
            for lesion_number in range(int(rng.integers(1, 4))):
                size_um = _lesion_size_um(rng, minor_um, force_small=lesion_number > 0)
                lesion = _place_lesion(rng, node, size_um / mpp)
                if lesion is not None:
                    lesion.glandular = size_um >= ITC_MAX_UM
                    node.lesions.append(lesion)
            if not node.lesions:  # a node chosen positive always carries a deposit
                lesion = _place_lesion(rng, node, 120.0 / mpp)
                if lesion is not None:
                    lesion.glandular = False
                    node.lesions.append(lesion)
        plans.append(node)

    stroma: list[np.ndarray] = []
    muscle: list[tuple[np.ndarray, float]] = []
    for number in range(max(2, nodes // 2 + 1)):
        kind = ("fat", "stroma", "muscle")[number % 3]
        size_um = float(rng.uniform(0.4, 1.0)) * max(largest_um, MIN_NODE_UM)
        aspect = float(rng.uniform(0.25, 0.6)) if kind != "fat" else float(rng.uniform(0.6, 0.9))
        centre = placer.place(size_um / mpp / 2 * 1.1, gap)
        if centre is None:
            continue
        blob = Blob.random(rng, centre[0], centre[1], size_um / mpp, aspect, 0.1)
        if kind == "fat":
            fat.append(blob.polygon(96))
        elif kind == "stroma":
            stroma.append(blob.polygon(96))
        else:
            muscle.append((blob.polygon(96), blob.angle))
    return ScenePlan(width, height, mpp, seed, plans, fat, stroma, muscle)
