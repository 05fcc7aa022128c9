"""`pathstream synth marrow`: synthetic bone-marrow smear cases (MDS / AML / healthy donor).

The classes differ the way they do in marrow morphology, and learnably: AML has a blast fraction
of 20% or more; MDS has fewer blasts (3-15%) but many dysplastic cells (hypolobated, hypogranular
neutrophils; multinuclear, megaloblastic erythroblasts) and higher cellularity; donors have few
blasts, little dysplasia and normal cellularity. Each case gets ROI fields (PNG) and, on request, a
whole smear slide (pyramidal TIFF) with the regions a ROI proposer must tell apart: cellular areas
beside particles (spicules), thin peripheral-blood areas, thick clumped areas and artefacts.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pathstream.shared.events import MarrowClass
from pathstream.synthetic.hashing import NoiseTexture, canvas_points
from pathstream.synthetic.marrow_cells import DRAW, LARGEST_CELL_UM, CellType
from pathstream.synthetic.pyramid_tiff import write_pyramid
from pathstream.synthetic.shapes import Blob, bbox
from pathstream.synthetic.truth import MarrowCaseTruth, MarrowCohortTruth

PLASMA = (238, 232, 236)
TRUTH_FILE = "truth.json"
FIELDS_CSV = "fields.csv"
FIELD_SPACING_PX = 50_000


@dataclass(frozen=True)
class Mixture:
    """What a case's marrow is made of: fractions of nucleated cells and how densely packed."""

    blast: float
    dysplasia: float
    cellularity: float

    def cell_types(self) -> tuple[list[CellType], np.ndarray]:
        """Nucleated cell types and their cumulative probabilities (for inverse-CDF sampling)."""
        rest = 1.0 - self.blast
        weights = {
            CellType.BLAST: self.blast,
            CellType.MYELOCYTE: rest * 0.2,
            CellType.NEUTROPHIL: rest * 0.33 * (1 - self.dysplasia),
            CellType.NEUTROPHIL_DYSPLASTIC: rest * 0.33 * self.dysplasia,
            CellType.ERYTHROBLAST: rest * 0.27 * (1 - self.dysplasia),
            CellType.ERYTHROBLAST_DYSPLASTIC: rest * 0.27 * self.dysplasia,
            CellType.LYMPHOCYTE: rest * 0.13,
            CellType.MONOCYTE: rest * 0.07,
        }
        types = list(weights)
        cumulative = np.cumsum([weights[t] for t in types])
        return types, cumulative / cumulative[-1]


def case_mixture(label: MarrowClass, rng: np.random.Generator) -> Mixture:
    """Draw a case's mixture from its class's ranges."""
    if label == MarrowClass.AML:
        return Mixture(
            float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.05, 0.2)), float(rng.uniform(0.65, 0.9))
        )
    if label == MarrowClass.MDS:
        return Mixture(
            float(rng.uniform(0.04, 0.15)), float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.55, 0.8))
        )
    return Mixture(
        float(rng.uniform(0.005, 0.02)), float(rng.uniform(0.0, 0.05)), float(rng.uniform(0.35, 0.55))
    )


@dataclass
class SmearLayout:
    """Regions of a whole smear: particles, thick (clumped) and thin (blood) areas, artefacts."""

    spicules: list[np.ndarray]
    thick: list[np.ndarray]
    thin: list[np.ndarray]
    artefacts: list[np.ndarray]


def plan_smear(width: int, height: int, mpp: float, rng: np.random.Generator) -> SmearLayout:
    """Lay out a smear's regions in level-0 pixels."""

    def blobs(count: int, size_um: tuple[float, float], aspect: tuple[float, float]) -> list[np.ndarray]:
        out = []
        for _ in range(count):
            diameter = rng.uniform(*size_um) / mpp
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            out.append(Blob.random(rng, cx, cy, diameter, float(rng.uniform(*aspect)), 0.12).polygon(72))
        return out

    area_mm2 = width * height * mpp * mpp / 1e6
    return SmearLayout(
        spicules=blobs(max(2, round(area_mm2 * 1.2)), (150, 400), (0.5, 0.9)),
        thick=blobs(max(1, round(area_mm2 * 0.6)), (400, 900), (0.4, 0.8)),
        thin=blobs(max(1, round(area_mm2 * 0.6)), (500, 1200), (0.4, 0.8)),
        artefacts=blobs(max(1, round(area_mm2 * 0.4)), (60, 250), (0.5, 1.0)),
    )


class MarrowRenderer:
    """Callable (x, y, width, height) -> uint8 RGB smear at level 0 for one case."""

    def __init__(self, mixture: Mixture, seed: int, mpp: float, layout: SmearLayout | None = None) -> None:
        self.mixture = mixture
        self.seed = seed
        self.scale = 1.0 / mpp
        self.layout = layout
        self.types, self.cumulative = mixture.cell_types()
        self.margin = math.ceil(LARGEST_CELL_UM * 1.4 * self.scale) + 2
        self.noise = NoiseTexture(seed, 2)
        self.near_spicule = 250.0 / mpp
        self._boxes = (
            {
                name: [(p, bbox(p)) for p in getattr(layout, name)]
                for name in ("spicules", "thick", "thin", "artefacts")
            }
            if layout
            else {}
        )

    def _region_masks(self, origin: tuple[int, int], shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """Float maps in [0, 1]: spicule proximity, thick, thin, artefact (all 0 for fields)."""
        x0, y0 = origin
        rect = (x0, y0, x0 + shape[1], y0 + shape[0])
        masks: dict[str, np.ndarray] = {}
        for name, items in self._boxes.items():
            mask = np.zeros(shape, np.uint8)
            grow = self.near_spicule if name == "spicules" else 0
            hits = [
                p - np.array(origin, np.int32)
                for p, b in items
                if b[0] - grow < rect[2]
                and b[2] + grow > rect[0]
                and b[1] - grow < rect[3]
                and b[3] + grow > rect[1]
            ]
            if hits:
                cv2.fillPoly(mask, hits, 1)
            masks[name] = mask
        if "spicules" in masks and self.layout is not None:
            inside = masks["spicules"]
            if inside.any() or self._near_any(origin, shape):
                distance = cv2.distanceTransform((1 - inside).astype(np.uint8), cv2.DIST_L2, 5)
                masks["near"] = np.clip(1.0 - distance / self.near_spicule, 0.0, 1.0)
            else:
                masks["near"] = np.zeros(shape, np.float32)
        return masks

    def _near_any(self, origin: tuple[int, int], shape: tuple[int, int]) -> bool:
        x0, y0 = origin
        grow = self.near_spicule
        return any(
            b[0] - grow < x0 + shape[1]
            and b[2] + grow > x0
            and b[1] - grow < y0 + shape[0]
            and b[3] + grow > y0
            for _, b in self._boxes.get("spicules", [])
        )

    def __call__(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        m = self.margin
        origin = (x - m, y - m)
        shape = (height + 2 * m, width + 2 * m)
        canvas = np.empty((*shape, 3), np.uint8)
        canvas[:] = PLASMA
        masks = self._region_masks(origin, shape) if self.layout else {}

        def at(name: str, px: np.ndarray, py: np.ndarray) -> np.ndarray:
            if name not in masks:
                return np.zeros(px.shape, np.float32)
            return masks[name][py, px].astype(np.float32)

        x0, y0 = origin
        # Red cells: a monolayer everywhere, packed tighter in thick areas.
        self._population(
            canvas,
            origin,
            shape,
            8.5,
            10,
            lambda u, px, py: u[:, 0] < 0.72 + 0.25 * at("thick", px, py),
            True,
            at,
        )
        # Nucleated cells: dense near particles and in good areas, sparse in thin (blood) areas.
        base = self.mixture.cellularity

        def keep(u: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
            if self.layout is None:
                density = np.full(px.shape, base)
            else:
                density = base * (0.35 + 0.65 * at("near", px, py)) * (1 - 0.85 * at("thin", px, py))
                density = density + 0.3 * at("thick", px, py)
            return u[:, 0] < density

        self._population(canvas, origin, shape, 16.0, 20, keep, False, at)
        if self.layout is not None:
            self._spicule(canvas, masks, origin, shape, at)
            self._artefacts(canvas, masks, origin, shape)
        noise = self.noise.patch(x0, y0, shape[1], shape[0])
        canvas = np.clip(canvas.astype(np.int16) + (noise * 5).astype(np.int16)[..., None], 0, 255).astype(
            np.uint8
        )
        canvas = cv2.GaussianBlur(canvas, (0, 0), max(0.5, 0.25 * self.scale))
        if "thick" in masks:
            # Thick areas stain darker: overlapping cells and more dye.
            thick = masks["thick"].astype(bool)
            canvas[thick] = (canvas[thick].astype(np.float32) * 0.86).astype(np.uint8)
        return canvas[m : m + height, m : m + width].copy()

    def _population(
        self,
        canvas: np.ndarray,
        origin: tuple[int, int],
        shape: tuple[int, int],
        spacing_um: float,
        salt: int,
        keep: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
        red: bool,
        at: Callable[[str, np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        x0, y0 = origin
        found = canvas_points(origin, shape, spacing_um * self.scale, self.seed, salt, extra=8)
        points, idx = found.points, found.inside
        chosen = idx[keep(points.u[idx], found.col[idx], found.row[idx])]
        for i in chosen:
            u = points.u[i, 1:]
            kind = CellType.RBC if red else self.types[int(np.searchsorted(self.cumulative, u[6] * 0.999999))]
            DRAW[kind](canvas, points.x[i] - x0, points.y[i] - y0, self.scale, u)

    def _spicule(
        self,
        canvas: np.ndarray,
        masks: dict[str, np.ndarray],
        origin: tuple[int, int],
        shape: tuple[int, int],
        at: Callable[[str, np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        """Particles: packed, overlapping nucleated cells over a purple stroma, with fat vacuoles."""
        inside = masks.get("spicules")
        if inside is None or not inside.any():
            return
        region = inside.astype(bool)
        canvas[region] = (canvas[region].astype(np.float32) * 0.85 + np.array([120, 70, 140]) * 0.15).astype(
            np.uint8
        )
        self._population(
            canvas,
            origin,
            shape,
            9.0,
            21,
            lambda u, px, py: (u[:, 0] < 0.95) & (at("spicules", px, py) > 0),
            False,
            at,
        )
        vacuoles = canvas_points(origin, shape, 45.0 * self.scale, self.seed, 22)
        for i in vacuoles.inside:
            if inside[vacuoles.row[i], vacuoles.col[i]] and vacuoles.points.u[i, 0] < 0.5:
                radius = (8 + 14 * vacuoles.points.u[i, 1]) * self.scale
                centre = (int(vacuoles.col[i]), int(vacuoles.row[i]))
                cv2.circle(canvas, centre, max(1, int(radius)), (246, 242, 245), -1, cv2.LINE_AA)

    def _artefacts(
        self,
        canvas: np.ndarray,
        masks: dict[str, np.ndarray],
        origin: tuple[int, int],
        shape: tuple[int, int],
    ) -> None:
        """Stain precipitate: dense dark dots over the cells."""
        region = masks.get("artefacts")
        if region is None or not region.any():
            return
        dots = canvas_points(origin, shape, 3.0 * self.scale, self.seed, 30)
        for i in dots.inside:
            if region[dots.row[i], dots.col[i]] and dots.points.u[i, 0] < 0.6:
                centre = (int(dots.col[i]), int(dots.row[i]))
                cv2.circle(canvas, centre, max(1, int(0.8 * self.scale)), (40, 20, 60), -1)


def write_marrow_cohort(
    out_dir: Path,
    cases: int,
    seed: int,
    rois: int = 4,
    field_size: int = 1024,
    mpp: float = 0.2,
    slides: bool = False,
    slide_size: int = 8192,
    progress: Callable[[int, int], None] | None = None,
) -> MarrowCohortTruth:
    """Write `cases` synthetic marrow cases to `out_dir`: per case `rois` PNG fields of
    `field_size` px at `mpp` um/px (and a `slide_size` square smear slide with `slides`), plus
    `truth.json` and `fields.csv` (path, patient_id, label). Classes are balanced round-robin.
    """
    if cases < 1:
        raise ValueError("a cohort needs at least one case")
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [MarrowClass.MDS, MarrowClass.AML, MarrowClass.DONOR]
    order = [labels[i % 3] for i in range(cases)]
    rng.shuffle(order)
    truths: list[MarrowCaseTruth] = []
    rows: list[tuple[str, str, str]] = []
    for number, label in enumerate(order):
        case_id, patient_id = f"C{number + 1:04d}", f"P{number + 1:04d}"
        mixture = case_mixture(label, rng)
        case_seed = int(rng.integers(0, 2**31 - 1))
        case_dir = out_dir / case_id
        case_dir.mkdir(exist_ok=True)
        renderer = MarrowRenderer(mixture, case_seed, mpp)
        fields = []
        for roi in range(rois):
            image = renderer(roi * FIELD_SPACING_PX, 0, field_size, field_size)
            name = f"{case_id}/roi{roi:02d}.png"
            cv2.imwrite(str(out_dir / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            fields.append(name)
            rows.append((name, patient_id, label.value))
        slide_name = None
        if slides:
            layout = plan_smear(slide_size, slide_size, mpp, np.random.default_rng(case_seed))
            slide_name = f"{case_id}/smear.tif"
            write_pyramid(
                out_dir / slide_name,
                slide_size,
                slide_size,
                mpp,
                MarrowRenderer(mixture, case_seed, mpp, layout),
                description=f"PathStream synthetic marrow smear {case_id}",
            )
        truths.append(
            MarrowCaseTruth(
                case_id=case_id,
                patient_id=patient_id,
                label=label,
                blast_fraction=round(mixture.blast, 4),
                dysplasia_fraction=round(mixture.dysplasia, 4),
                cellularity=round(mixture.cellularity, 4),
                fields=fields,
                slide=slide_name,
            )
        )
        if progress:
            progress(number + 1, cases)
    cohort = MarrowCohortTruth(mpp=mpp, seed=seed, cases=truths)
    cohort.save(out_dir / TRUTH_FILE)
    with (out_dir / FIELDS_CSV).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "patient_id", "label"])
        writer.writerows(rows)
    return cohort
