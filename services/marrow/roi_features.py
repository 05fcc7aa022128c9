"""How good a bone-marrow smear field is for classification, criterion by criterion, from pixels.

Eckardt et al.'s haematologists picked ROIs by stain quality, cellularity, even cell distribution, no
overlapping or clumping cells, bone-marrow particles (spicules) rather than peripheral blood, no
artefacts, and digital image quality. Each criterion here is a score in [0, 1] (1 = good) computed
from measurable features of one field, so the choice can be automated and explained.

Colour. Pixels are classified by May-Grünwald-Giemsa colour in optical density, OD = -ln((I + 1) /
256) per channel (0 for white glass). OD is absolute, not relative to the field's brightest pixel,
so that a uniformly darker (thick or over-stained) field stays measurably darker.

* nucleus: OD_green >= 0.85 and OD_green - OD_blue >= 0.3. Azure-stained chromatin absorbs green
  strongly and lets blue through, so it looks violet. Components smaller than `MIN_NUCLEUS_UM2` are
  granules or specks, not nuclei; the precipitate count below still uses them.
* red cell: 0.3 <= OD_green < 0.85 and OD_green - OD_red >= 0.15, and not violet. Eosin-stained
  haemoglobin absorbs green far more than red, so it looks pink.
* free space: mean OD < 0.2, the near-white plasma or glass between cells.

Scale. Fields finer than `ANALYSIS_MPP` are shrunk to it (area interpolation); coarser fields are
measured as they are. Every size is in micrometres and converted with the field's mpp, so a
criterion means the same at 0.2 um/px, at a native 0.25 um/px scan or at a coarse test resolution.

Criteria (`CRITERIA`). `ramp(v, bad, good)` is 0 at `bad`, 1 at `good`, linear between, clipped:

* `stain`: the stain took, without washing out or over-staining.
  Formula: ramp(chromatin contrast, 0.5 -> 1.0) x ramp(background OD, 0.45 -> 0.25).
  Chromatin contrast is the 90th percentile OD_green of violet-hued pixels (OD_green - OD_blue >=
  0.2, OD_green >= 0.3; pale nuclei count too) minus the field's 10th-percentile OD_green. A
  washed-out field has pale chromatin. Background OD is the 10th-percentile mean OD: the brightest
  tenth of a field is plasma, which an over-stained field colours.
* `cellularity`: ramp(nucleated area fraction, 0.005 -> 0.05). The fraction is the nuclear mask
  after the size filter; peripheral blood has about 0.01, a marrow monolayer 0.05-0.1.
* `distribution`: ramp(CV, 1.2 -> 0.4), where CV is the coefficient of variation (std / mean) of
  the nuclear area fraction over a grid of about `GRID_CELL_UM` squares (2-8 per side). CV is
  capped at `MAX_CV`, which is also its value without nuclei. Random placement at marrow density
  gives about 0.3-0.5; patchy or sparse fields give > 1.
* `no_clumping`: a readable monolayer, cells neither overlapping nor piled up. Formula: the lower
  of three parts.
  (a) ramp(clumped, 0.5 -> 0.1). Clumped is the share of nuclear area in components of at least
  `CLUMP_UM2`, far larger than any one normal nucleus, so several nuclei have merged.
  (b) ramp(crowded, 0.6 -> 0.2). Crowded is the share of the field where a `CROWD_WINDOW_UM`
  window holds less than `CROWD_FREE` free space. Piled-up cells leave no plasma between them, and
  a thick area's plasma stains too dark to count as free.
  (c) ramp(particle fraction, 0.7 -> 0.3). The inside of a particle is too packed to read.
* `spicule`: marrow beside particles rather than peripheral blood.
  Formula: 0.5 x ramp(nucleus / (nucleus + red) area ratio, 0.03 -> 0.15) + 0.5 x particle
  evidence. Blood has a low nucleated-to-red ratio, about 0.02. Particle evidence is the larger of
  ramp(particle fraction, 0 -> 0.05), for a particle's edge inside the field, and, given an
  overview, ramp(particle_near, 0 -> 0.5), for a particle within `NEAR_PARTICLE_UM`.
  A particle pixel has, over a `PARTICLE_WINDOW_UM` window, nuclear density >= `PARTICLE_DENSITY`
  and a nuclear share nucleus / (nucleus + red) >= `PARTICLE_MIN_SHARE`. A blast-rich monolayer can
  be as dense, but it lies on a carpet of red cells; a particle does not.
* `no_artefacts`: ramp(precipitate dots per 1000 um^2, 2 -> 0.2). A precipitate dot is a violet
  component smaller than `DOT_MAX_UM2` whose darkest pixel has mean OD >= 1.5: a tiny, near-black
  dot that no granule or nucleus looks like.
* `focus`: digital image quality, ramp(sharpness, 0.2 -> 0.5). Sharpness is std(3x3 Laplacian) /
  std(grey) at `ANALYSIS_MPP`, so contrast is factored out. Measured values: about 1.0 for sharp
  synthetic fields, 0.47 with 0.5 um Gaussian blur, 0.24 with 1 um, and 0.95-1.8 for the real MGG
  crops.

Combined score: the weighted geometric mean prod(s_i ^ (w_i / sum w)). One failed criterion (0)
sinks the field however good the rest are, and the result stays in [0, 1]. Some fields are
rejected whatever their scores: almost nothing stained (free space >= `MAX_GLASS_FRACTION`:
empty glass or a washed-out stain), and no nucleated cell at all.

Calibration. The thresholds were set on the synthetic smears of `pathstream.synthetic.marrow` (blood,
thick, particle and precipitate areas) and checked for plausibility on the real single-cell MGG
crops. No real whole smear with annotated good and bad areas was available; recalibrate on one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from pathstream.services.marrow.rgb import require_rgb
from pathstream.shared.errors import ErrorCode, PathStreamError

CRITERIA: tuple[str, ...] = (
    "stain",
    "cellularity",
    "distribution",
    "no_clumping",
    "spicule",
    "no_artefacts",
    "focus",
)
"""The criteria every field is scored on, in the order of Eckardt et al.'s list."""

ANALYSIS_MPP = 0.4
"""um/px fields are measured at: nuclei (>= 3 um) stay several pixels wide, and it is 4x cheaper."""
MIN_NUCLEUS_UM2 = 5.0
"""Smaller violet components are granules or specks, not nuclei (a neutrophil lobe is ~10 um^2)."""
CLUMP_UM2 = 450.0
"""A nuclear component this large (a 24 um disc) is several merged nuclei; a blast's is <= 200 um^2."""
GRID_CELL_UM = 50.0
"""Side of the squares the distribution criterion compares (a few cells' worth of smear)."""
MAX_CV = 10.0
"""Density CV reported for a field without nuclei (and the cap for any field)."""
PARTICLE_WINDOW_UM = 50.0
"""Window over which nuclear and red-cell densities decide "particle" (here and on the overview)."""
PARTICLE_DENSITY = 0.2
"""Nuclear area fraction of packed particle cells (a monolayer beside a particle: about 0.1)."""
PARTICLE_MIN_SHARE = 0.45
"""Least nuclear share nucleus / (nucleus + red) of a particle: its cells cover the red cells, while
a monolayer, however cellular, lies on a carpet of them (share about 0.1-0.3)."""
NEAR_PARTICLE_UM = 250.0
"""How close to a particle counts as "near": the cellular trail a haematologist reads beside it."""
DOT_MAX_UM2 = 6.0
"""Largest precipitate dot (stain precipitate granules are 1-2 um; the smallest nucleus lobe ~10 um^2)."""
CROWD_WINDOW_UM = 25.0
"""About two cell diameters: a window with no free space in it is piled-up cells."""
CROWD_FREE = 0.03
MAX_GLASS_FRACTION = 0.85
"""Free (blank) share of a field above which it is rejected outright."""

_OD = (-np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0)).astype(np.float32)


def optical_density(image: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 RGB -> float32 H x W x 3 optical density (0 for white, ~5.5 for black)."""
    return _OD[image]


@dataclass(frozen=True)
class PixelClasses:
    """Boolean H x W masks of one field (see the module docstring for the colour rules)."""

    nucleus: np.ndarray
    """Violet chromatin in components of at least `MIN_NUCLEUS_UM2`."""
    violet: np.ndarray
    """Every violet pixel, before the size filter (nuclei, granules, precipitate)."""
    red: np.ndarray
    free: np.ndarray
    mean_od: np.ndarray
    """float32 H x W mean OD over the channels."""


def classify_pixels(image: np.ndarray, mpp: float) -> PixelClasses:
    """uint8 H x W x 3 RGB at `mpp` um/px -> the field's nucleus / red-cell / free-space masks."""
    od = optical_density(image)
    od_r, od_g, od_b = od[..., 0], od[..., 1], od[..., 2]
    mean_od = od.mean(axis=2)
    violet = (od_g >= 0.85) & (od_g - od_b >= 0.3)
    nucleus = _remove_small(violet, MIN_NUCLEUS_UM2 / (mpp * mpp))
    red = (od_g >= 0.3) & (od_g < 0.85) & (od_g - od_r >= 0.15) & ~violet
    return PixelClasses(nucleus=nucleus, violet=violet, red=red, free=mean_od < 0.2, mean_od=mean_od)


def _remove_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    return keep[labels] if count > 1 else np.zeros_like(mask)


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at `bad`, 1 at `good`, linear between, clipped (works for bad > good too)."""
    if not math.isfinite(value):
        return 0.0
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


@dataclass(frozen=True)
class FieldAssessment:
    """One field's criteria scores (each in [0, 1], 1 = good), the raw measurements behind them,
    the combined score and, when the field must not be used whatever its scores, why."""

    scores: dict[str, float]
    measurements: dict[str, float]
    combined: float
    rejection: str | None = None
    weights: dict[str, float] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        """False when a hard rejection applies."""
        return self.rejection is None

    def explain(self) -> str:
        """One line per criterion: its score and the measurements it came from."""
        m = self.measurements
        basis = {
            "stain": f"chromatin contrast {m['stain_contrast']:.2f}, background OD {m['background_od']:.2f}",
            "cellularity": f"nucleated area {100 * m['nuclear_fraction']:.1f}%",
            "distribution": f"density CV {m['density_cv']:.2f} over {int(m['grid_cells'])} cells",
            "no_clumping": f"{100 * m['clumped_fraction']:.0f}% of nuclear area in clumps, "
            f"free space {100 * m['free_fraction']:.0f}%",
            "spicule": f"nucleated:red {m['nucleated_red_ratio']:.2f}, "
            f"particle area {100 * m['particle_fraction']:.1f}%"
            + (f", {100 * m['particle_near']:.0f}% near a particle" if "particle_near" in m else ""),
            "no_artefacts": f"{m['dots_per_1000um2']:.2f} precipitate dots per 1000 um^2",
            "focus": f"sharpness {m['sharpness']:.2f}",
        }
        lines = [
            f"combined {self.combined:.3f}" + (f" (rejected: {self.rejection})" if self.rejection else "")
        ]
        lines += [f"{name} {self.scores[name]:.2f} ({basis[name]})" for name in self.scores]
        return "; ".join(lines)


def combine(scores: dict[str, float], weights: dict[str, float] | None = None) -> float:
    """Weighted geometric mean of criteria scores in [0, 1]; any weighted 0 gives 0.

    `weights` (criterion -> weight >= 0, missing = 1) lets an operator stress or ignore criteria.
    """
    total, log_sum = 0.0, 0.0
    for name, score in scores.items():
        weight = 1.0 if weights is None else float(weights.get(name, 1.0))
        if weight <= 0:
            continue
        if score <= 0:
            return 0.0
        total += weight
        log_sum += weight * math.log(score)
    return math.exp(log_sum / total) if total > 0 else 0.0


def assess_field(
    image: np.ndarray,
    mpp: float,
    weights: dict[str, float] | None = None,
    particle_near: float | None = None,
) -> FieldAssessment:
    """Score one smear field.

    image: uint8 H x W x 3 RGB at `mpp` um/px (any size; >= ~20 um a side to be meaningful).
    weights: criterion -> weight for the combined score (missing = 1, 0 = ignored).
    particle_near: context from a whole-smear overview, the fraction of the field within
    `NEAR_PARTICLE_UM` of a particle (None: judge the field on its own pixels only).
    Returns the per-criterion scores, measurements, combined score and any hard rejection.
    Raises `PathStreamError(INVALID_EVENT)` for a non-RGB image and `MPP_ABSURD` for mpp <= 0.
    """
    _check(image, mpp)
    work, work_mpp = _at_resolution(image, mpp, ANALYSIS_MPP)
    classes = classify_pixels(work, work_mpp)
    m: dict[str, float] = {}
    m.update(_stain(work, classes))
    m["nuclear_fraction"] = float(classes.nucleus.mean())
    m.update(_distribution(classes.nucleus, work_mpp))
    m.update(_clumping(classes, work_mpp))
    m.update(_spicule(classes, work_mpp))
    m.update(_precipitate(classes, work_mpp))
    m["sharpness"] = sharpness(work, work_mpp)
    if particle_near is not None:
        m["particle_near"] = float(particle_near)
    scores = {
        "stain": _ramp(m["stain_contrast"], 0.5, 1.0) * _ramp(m["background_od"], 0.45, 0.25),
        "cellularity": _ramp(m["nuclear_fraction"], 0.005, 0.05),
        "distribution": _ramp(m["density_cv"], 1.2, 0.4),
        "no_clumping": min(
            _ramp(m["clumped_fraction"], 0.5, 0.1),
            _ramp(m["crowded_fraction"], 0.6, 0.2),
            _ramp(m["particle_fraction"], 0.7, 0.3),
        ),
        # Half marrow-versus-blood, half particle evidence (in the field or, given an overview,
        # beside it): a cellular field far from any particle is marrow, but not the best marrow.
        "spicule": 0.5 * _ramp(m["nucleated_red_ratio"], 0.03, 0.15)
        + 0.5 * max(_ramp(m["particle_fraction"], 0.0, 0.05), _ramp(m.get("particle_near", 0.0), 0.0, 0.5)),
        "no_artefacts": _ramp(m["dots_per_1000um2"], 2.0, 0.2),
        "focus": _ramp(m["sharpness"], 0.2, 0.5),
    }
    rejection = None
    if m["free_fraction"] >= MAX_GLASS_FRACTION:
        rejection = (
            f"almost nothing stained: {100 * m['free_fraction']:.0f}% of the field is blank "
            "(empty glass or a washed-out stain)"
        )
    elif m["nuclear_fraction"] == 0:
        rejection = "no nucleated cells"
    return FieldAssessment(
        scores=scores,
        measurements=m,
        combined=combine(scores, weights),
        rejection=rejection,
        weights=dict(weights or {}),
    )


def _check(image: np.ndarray, mpp: float) -> None:
    require_rgb(image, "A smear field")
    if not (math.isfinite(mpp) and mpp > 0):
        raise PathStreamError(
            ErrorCode.MPP_ABSURD,
            f"A smear field needs a positive resolution, got {mpp} um/px.",
            hint="Give the scan's um/px (about 0.2 for a 50x digital field).",
        )


def _at_resolution(image: np.ndarray, mpp: float, target_mpp: float) -> tuple[np.ndarray, float]:
    """Shrink `image` to `target_mpp` when it is finer; never enlarge (that adds no information)."""
    if mpp >= target_mpp:
        return image, mpp
    factor = mpp / target_mpp
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    shrunk = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return shrunk, mpp * image.shape[1] / size[0]


def _stain(image: np.ndarray, classes: PixelClasses) -> dict[str, float]:
    od = optical_density(image)
    od_green = od[..., 1]
    # The brightest tenth of the field is plasma or glass wherever there is any.
    background = float(np.percentile(classes.mean_od, 10))
    background_green = float(np.percentile(od_green, 10))
    # Chromatin: the darkest violet-hued pixels, pale or not (the nucleus mask would miss pale ones).
    violet_hue = (od_green - od[..., 2] >= 0.2) & (od_green >= 0.3)
    if violet_hue.mean() >= 0.002:
        chromatin = float(np.percentile(od_green[violet_hue], 90))
    else:
        chromatin = float(np.percentile(od_green, 99.5))
    return {"stain_contrast": chromatin - background_green, "background_od": background}


def _distribution(nucleus: np.ndarray, mpp: float) -> dict[str, float]:
    h, w = nucleus.shape
    rows = int(np.clip(round(h * mpp / GRID_CELL_UM), 2, 8))
    cols = int(np.clip(round(w * mpp / GRID_CELL_UM), 2, 8))
    ys = np.linspace(0, h, rows + 1).astype(int)
    xs = np.linspace(0, w, cols + 1).astype(int)
    fractions = np.array(
        [
            nucleus[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].mean()
            if ys[i + 1] > ys[i] and xs[j + 1] > xs[j]
            else 0.0
            for i in range(rows)
            for j in range(cols)
        ]
    )
    mean = float(fractions.mean())
    cv = min(MAX_CV, float(fractions.std() / mean)) if mean > 0 else MAX_CV
    return {"density_cv": cv, "grid_cells": float(rows * cols)}


def _clumping(classes: PixelClasses, mpp: float) -> dict[str, float]:
    nuclear_area = int(classes.nucleus.sum())
    clumped = 0.0
    if nuclear_area:
        _, _, stats, _ = cv2.connectedComponentsWithStats(classes.nucleus.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        clumped = float(areas[areas >= CLUMP_UM2 / (mpp * mpp)].sum() / nuclear_area)
    window = _odd(CROWD_WINDOW_UM / mpp)
    local_free = cv2.blur(classes.free.astype(np.float32), (window, window), borderType=cv2.BORDER_REFLECT)
    return {
        "clumped_fraction": clumped,
        "crowded_fraction": float((local_free < CROWD_FREE).mean()),
        "free_fraction": float(classes.free.mean()),
    }


def _odd(pixels: float) -> int:
    return max(3, round(pixels) | 1)


def _spicule(classes: PixelClasses, mpp: float) -> dict[str, float]:
    nucleus_area = float(classes.nucleus.sum())
    red_area = float(classes.red.sum())
    ratio = nucleus_area / (nucleus_area + red_area) if nucleus_area + red_area > 0 else 0.0
    window = _odd(PARTICLE_WINDOW_UM / mpp)
    density = cv2.blur(classes.nucleus.astype(np.float32), (window, window), borderType=cv2.BORDER_REFLECT)
    red = cv2.blur(classes.red.astype(np.float32), (window, window), borderType=cv2.BORDER_REFLECT)
    # Packed nuclei with few red cells among them: a blast-rich monolayer can be as dense, but it
    # lies on a carpet of red cells, a particle does not.
    particle = (density >= PARTICLE_DENSITY) & (density >= PARTICLE_MIN_SHARE * (density + red))
    return {"nucleated_red_ratio": ratio, "particle_fraction": float(particle.mean())}


def _precipitate(classes: PixelClasses, mpp: float) -> dict[str, float]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        classes.violet.astype(np.uint8), connectivity=8
    )
    dots = 0
    if count > 1:
        small = stats[:, cv2.CC_STAT_AREA] < DOT_MAX_UM2 / (mpp * mpp)
        small[0] = False
        dark = np.bincount(labels[classes.mean_od >= 1.5], minlength=count) > 0
        dots = int((small & dark).sum())
    area_um2 = classes.violet.size * mpp * mpp
    return {"dots_per_1000um2": 1000.0 * dots / area_um2}


def sharpness(image: np.ndarray, mpp: float) -> float:
    """Std of the Laplacian over std of the grey image, at `ANALYSIS_MPP` (or coarser, as given).

    image: uint8 H x W x 3 RGB at `mpp` um/px. Higher is sharper; 0 for a flat image.
    """
    work, _ = _at_resolution(image, mpp, ANALYSIS_MPP)
    grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32)
    spread = float(grey.std())
    if spread < 1e-3:
        return 0.0
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=3).std() / spread)
