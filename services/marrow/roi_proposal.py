"""Automatic ROI proposal on a bone-marrow smear: the fields a haematologist would have picked.

Eckardt et al. hand-picked 4 ROIs per MDS case (10 in the external cohort) at 50x digital
magnification, and its authors name that manual step as the main limitation. Here:

1. Candidates: square fields of `field_um` (204.8 um: 1024 px at 0.2 um/px) on a grid with
   `stride_um` steps (half a field by default) over the working-resolution array. A field larger
   than the image is clamped to it, so a small image yields one candidate, the whole image.
2. Coarse pre-screen on a low-resolution overview, so a 75k x 75k px smear is never read in full.
   The overview is the tile store's 7.36 um/px array, or one built by shrinking the working array
   tile by tile. Per overview pixel:
   violet = max(OD_green - OD_blue, 0), nucleated material; a uniformly darker, thick area does
   not raise it.
   red = max(OD_blue - OD_red, 0), red cells.
   base = min-channel OD, which rises with thickness: every channel darkens where cells pile up.
   tissue = mean OD >= 0.1, that is, not bare glass.
   Particles are blobs of at least `PARTICLE_MIN_UM2` where, averaged over `PARTICLE_WINDOW_UM`,
   violet >= `COARSE_PARTICLE_VIOLET` and red <= `COARSE_PARTICLE_RED`: packed marrow cells with
   no carpet of red cells under them.
   A candidate's coarse score = ramp(mean violet, 0.03 -> 0.09) x ramp(mean base, 0.25 -> 0.15)
   x ramp(tissue, 0.3 -> 0.7) x ramp(particle cover, 0.7 -> 0.3) x (0.25 + 0.75 x the fraction of
   the field within `NEAR_PARTICLE_UM` of a particle). It only orders candidates and never decides.
3. Full-resolution scoring (`roi_features.assess_field`) of the `candidates_to_score` best, with the
   overview's near-particle fraction as context for the spicule criterion.
4. Greedy top-K: best combined score first. Ties go to the better coarse score. Fields are skipped
   when they overlap one already chosen, are rejected, or score below `min_score`. When fewer than
   K are found, the next candidates (none overlapping a chosen field, none the screen calls empty)
   are scored, up to `max_fields_scored` in all. Then whatever was found is returned with a
   `shortfall` note. No usable field at all raises `PathStreamError(SLIDE_EMPTY)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import cv2
import numpy as np

from pathstream.services.marrow.rgb import require_rgb
from pathstream.services.marrow.roi_features import (
    CRITERIA,
    NEAR_PARTICLE_UM,
    PARTICLE_WINDOW_UM,
    FieldAssessment,
    assess_field,
    optical_density,
)
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger

log = get_logger(__name__)

ReadRegion = Callable[[int, int, int, int], np.ndarray]
"""read(x, y, width, height) -> uint8 height x width x 3 RGB of the working-resolution array."""

COARSE_PARTICLE_VIOLET = 0.12
"""Overview violet (averaged over `PARTICLE_WINDOW_UM`) of packed particle cells; a cellular
monolayer averages about 0.05-0.1, peripheral blood about 0.02 (a blast-rich one up to 0.25)."""
COARSE_PARTICLE_RED = 0.04
"""Overview red-cell signal max(OD_blue - OD_red, 0) (haemoglobin absorbs blue and green, not red)
below which an area is particle: marrow cells cover it, whereas a monolayer however cellular lies
on a carpet of red cells (>= 0.05)."""
PARTICLE_MIN_UM2 = 5000.0
"""Smallest particle (an 80 um disc); smaller dense specks are clusters or debris."""
_OVERVIEW_TILE = 4096


@dataclass(frozen=True)
class RoiProposalConfig:
    """What to look for and how hard (sizes in micrometres, so any working resolution works)."""

    k: int = 4
    """ROIs wanted (Eckardt et al.: 4 per MDS case internally, 10 in the external cohort)."""
    field_um: float = 204.8
    """Side of a square field: 1024 px at 0.2 um/px."""
    stride_um: float | None = None
    """Grid step between candidate fields; None = half a field."""
    candidates_to_score: int = 24
    """Candidates (best coarse scores first) read and scored at full resolution per round."""
    max_fields_scored: int = 96
    """Upper bound on fields read at full resolution when rounds must go on to find K."""
    min_score: float = 0.05
    """A field whose combined score is below this is not used."""
    overview_mpp: float = 4.0
    """Resolution of the overview built when none is given."""
    weights: dict[str, float] = field(default_factory=dict)
    """Criterion -> weight in the combined score (missing = 1, 0 = ignore the criterion)."""

    def __post_init__(self) -> None:
        problems = []
        if self.k < 1:
            problems.append(f"k must be >= 1 (got {self.k})")
        if not self.field_um > 0:
            problems.append(f"field_um must be > 0 (got {self.field_um})")
        if self.stride_um is not None and not self.stride_um > 0:
            problems.append(f"stride_um must be > 0 (got {self.stride_um})")
        if self.candidates_to_score < 1 or self.max_fields_scored < 1:
            problems.append("candidates_to_score and max_fields_scored must be >= 1")
        if not self.overview_mpp > 0:
            problems.append(f"overview_mpp must be > 0 (got {self.overview_mpp})")
        unknown = sorted(set(self.weights) - set(CRITERIA))
        if unknown:
            problems.append(f"unknown criteria in weights: {', '.join(unknown)}")
        if any(not (w >= 0 and math.isfinite(w)) for w in self.weights.values()):
            problems.append("weights must be finite and >= 0")
        if problems:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                "Invalid ROI proposal settings: " + "; ".join(problems) + ".",
                hint="Criteria are: " + ", ".join(CRITERIA) + ".",
            )


@dataclass(frozen=True)
class ProposedRoi:
    """One chosen field: its box in the working array's pixels, rank (1 = best) and why."""

    x: int
    y: int
    width: int
    height: int
    rank: int
    assessment: FieldAssessment
    """Per-criterion scores, the measurements behind them and the combined score."""
    coarse_score: float
    """The overview pre-screen's score, which only ordered the candidates."""

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) in working-resolution pixels."""
        return (self.x, self.y, self.width, self.height)

    @property
    def scores(self) -> dict[str, float]:
        """Criterion -> score in [0, 1]."""
        return self.assessment.scores

    @property
    def combined(self) -> float:
        """The weighted geometric mean of the criteria scores."""
        return self.assessment.combined

    @property
    def quality(self) -> dict[str, float]:
        """Scores plus `combined`, for `MarrowRoi.quality` in the classified event."""
        return {**self.scores, "combined": self.combined}

    def explanation(self) -> str:
        """A sentence a person can read: where the ROI is, its rank and each criterion's reason."""
        return f"ROI {self.rank} at x={self.x}, y={self.y} ({self.width}x{self.height} px): " + (
            self.assessment.explain()
        )


@dataclass(frozen=True)
class RoiProposal(Sequence[ProposedRoi]):
    """The chosen ROIs, best first (a sequence of `ProposedRoi`), and how the search went."""

    rois: tuple[ProposedRoi, ...]
    requested: int
    """K asked for."""
    candidates: int
    """Fields on the candidate grid."""
    scored: int
    """Fields read and scored at full resolution."""
    shortfall: str | None = None
    """Why fewer than `requested` ROIs came back (None when all were found)."""

    @overload
    def __getitem__(self, index: int) -> ProposedRoi: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ProposedRoi]: ...

    def __getitem__(self, index: int | slice) -> ProposedRoi | Sequence[ProposedRoi]:
        return self.rois[index]

    def __len__(self) -> int:
        return len(self.rois)

    def __iter__(self) -> Iterator[ProposedRoi]:
        return iter(self.rois)


@dataclass(frozen=True)
class _Grid:
    boxes: np.ndarray
    """int64 N x 4: x, y, width, height in working pixels."""
    coarse: np.ndarray
    near: np.ndarray


def propose_rois(
    read: ReadRegion,
    width: int,
    height: int,
    mpp: float,
    overview: np.ndarray | None = None,
    config: RoiProposalConfig | None = None,
) -> RoiProposal:
    """Choose up to `config.k` non-overlapping ROIs on a smear.

    read(x, y, w, h) -> uint8 h x w x 3 RGB reads the working-resolution array (`width` x `height`
    px at `mpp` um/px, e.g. the tile store's `marrow_roi` array at about 0.2 um/px).
    overview: uint8 RGB of the whole smear at any coarser resolution (e.g. the 7.36 um/px array);
    its mpp follows from its width relative to `width`. None: built by reading the working array
    tile by tile (reads everything once: pass the overview for a real whole slide).
    Returns a `RoiProposal` (best first; boxes in working pixels). Raises
    `PathStreamError(SLIDE_EMPTY)` when no field is usable.
    """
    config = config or RoiProposalConfig()
    _check_geometry(width, height, mpp)
    if overview is None:
        if width * height > 400_000_000:
            log.warning("marrow_overview_built_from_full_read", width=width, height=height)
        overview = _build_overview(read, width, height, mpp, config.overview_mpp)
    elif overview.dtype != np.uint8 or overview.ndim != 3 or overview.shape[2] != 3 or overview.size == 0:
        raise PathStreamError(
            ErrorCode.INVALID_EVENT,
            f"A smear overview must be uint8 h x w x 3 RGB, got {overview.dtype} {overview.shape}.",
            hint="Pass the tile store's 1.25x array (read_all()) or None.",
        )
    grid = _candidate_grid(width, height, mpp, overview, config)
    assessed, chosen = _score_until_k(read, mpp, grid, config)
    rois = tuple(_proposed(grid, index, rank, assessed[index]) for rank, index in enumerate(chosen, start=1))
    if not rois:
        raise PathStreamError(
            ErrorCode.SLIDE_EMPTY,
            f"No usable field on this smear ({len(assessed)} of {len(grid.boxes)} candidate fields "
            f"scored): {_best_failure(assessed)}.",
            hint="Check that the slide is a stained bone-marrow smear with particles, scanned in "
            "focus at about 0.2 um/px; RoiProposalConfig.min_score and weights relax the criteria.",
        )
    shortfall = None
    if len(rois) < config.k:
        shortfall = (
            f"only {len(rois)} of {config.k} requested non-overlapping fields are usable "
            f"({len(assessed)} of {len(grid.boxes)} candidates scored)"
        )
        log.warning("marrow_roi_shortfall", found=len(rois), requested=config.k, scored=len(assessed))
    return RoiProposal(rois, config.k, len(grid.boxes), len(assessed), shortfall)


def _score_until_k(
    read: ReadRegion, mpp: float, grid: _Grid, config: RoiProposalConfig
) -> tuple[dict[int, FieldAssessment], list[int]]:
    """Read and score candidates in coarse order, a round at a time, until K non-overlapping usable
    fields are chosen, the screen runs out of non-empty candidates, or the read budget is spent.
    Returns (candidate index -> assessment, chosen indices best first)."""
    order = np.argsort(-grid.coarse, kind="stable")
    assessed: dict[int, FieldAssessment] = {}
    chosen: list[int] = []
    position = 0
    while len(chosen) < config.k and position < len(order) and len(assessed) < config.max_fields_scored:
        batch: list[int] = []
        budget = min(config.candidates_to_score, config.max_fields_scored - len(assessed))
        while position < len(order) and len(batch) < budget:
            index = int(order[position])
            if assessed and grid.coarse[index] <= 0:
                position = len(order)  # after the first round, fields the screen calls empty are not read
                break
            position += 1
            if not any(_overlap(grid.boxes[index], grid.boxes[c]) for c in chosen):
                batch.append(index)
        for index in batch:
            x, y, w, h = (int(v) for v in grid.boxes[index])
            near = float(grid.near[index])
            assessed[index] = assess_field(read(x, y, w, h), mpp, config.weights, particle_near=near)
        chosen = _greedy(assessed, grid.boxes, grid.coarse, config)
    return assessed, chosen


def propose_rois_in_image(
    image: np.ndarray, mpp: float, config: RoiProposalConfig | None = None
) -> RoiProposal:
    """`propose_rois` on a smear image in memory: uint8 H x W x 3 RGB at `mpp` um/px (native).

    A field larger than the image is clamped to it: a 250 x 250 single-cell image yields one ROI,
    the whole image.
    """
    require_rgb(image, "A smear image")

    def read(x: int, y: int, w: int, h: int) -> np.ndarray:
        return image[y : y + h, x : x + w]

    return propose_rois(read, image.shape[1], image.shape[0], mpp, None, config)


def _check_geometry(width: int, height: int, mpp: float) -> None:
    if width < 1 or height < 1:
        raise PathStreamError(
            ErrorCode.SLIDE_EMPTY,
            f"The smear image is empty ({width} x {height} px).",
            hint="Ingest the slide again; its marrow_roi array has no pixels.",
        )
    if not (math.isfinite(mpp) and mpp > 0):
        raise PathStreamError(
            ErrorCode.MPP_ABSURD,
            f"A smear needs a positive resolution, got {mpp} um/px.",
            hint="Give the scan's um/px (about 0.2 for the marrow_roi array).",
        )


def _positions(extent: int, size: int, stride: int) -> list[int]:
    """Field origins along one axis: every `stride`, plus one flush with the far edge."""
    last = extent - size
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def _build_overview(read: ReadRegion, width: int, height: int, mpp: float, overview_mpp: float) -> np.ndarray:
    """The whole working array shrunk to about `overview_mpp` (never enlarged), read tile by tile."""
    factor = min(1.0, mpp / overview_mpp)
    out_w, out_h = max(1, round(width * factor)), max(1, round(height * factor))
    overview = np.empty((out_h, out_w, 3), np.uint8)
    for y in range(0, height, _OVERVIEW_TILE):
        for x in range(0, width, _OVERVIEW_TILE):
            w, h = min(_OVERVIEW_TILE, width - x), min(_OVERVIEW_TILE, height - y)
            x0, y0 = round(x * factor), round(y * factor)
            x1, y1 = max(x0 + 1, round((x + w) * factor)), max(y0 + 1, round((y + h) * factor))
            x1, y1 = min(x1, out_w), min(y1, out_h)
            if x1 > x0 and y1 > y0:
                tile = read(x, y, w, h)
                overview[y0:y1, x0:x1] = cv2.resize(tile, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return overview


def _ramp(values: np.ndarray, bad: float, good: float) -> np.ndarray:
    return np.clip((values - bad) / (good - bad), 0.0, 1.0)


def _candidate_grid(
    width: int, height: int, mpp: float, overview: np.ndarray, config: RoiProposalConfig
) -> _Grid:
    """Every candidate box and its coarse score and near-particle fraction (module docstring)."""
    side = max(1, round(config.field_um / mpp))
    stride = max(1, round((config.stride_um if config.stride_um else config.field_um / 2) / mpp))
    fw, fh = min(side, width), min(side, height)
    xs, ys = _positions(width, fw, stride), _positions(height, fh, stride)
    boxes = np.array([(x, y, fw, fh) for y in ys for x in xs], dtype=np.int64)

    ov_h, ov_w = overview.shape[:2]
    sx, sy = ov_w / width, ov_h / height
    ov_mpp = mpp / sx
    od = optical_density(overview)
    violet = np.clip(od[..., 1] - od[..., 2], 0.0, None)
    base = od.min(axis=2)
    tissue = (od.mean(axis=2) >= 0.1).astype(np.float32)
    window = max(1, round(PARTICLE_WINDOW_UM / ov_mpp)) | 1
    particle = _particles(od, window, PARTICLE_MIN_UM2 / (ov_mpp * ov_mpp))
    if particle.any():
        distance = cv2.distanceTransform((~particle).astype(np.uint8), cv2.DIST_L2, 5) * ov_mpp
        near = (distance <= NEAR_PARTICLE_UM).astype(np.float32)
    else:
        near = np.zeros(particle.shape, np.float32)

    # Box means from integral images: one lookup per candidate whatever the field size.
    x0 = np.clip(np.floor(boxes[:, 0] * sx).astype(int), 0, ov_w - 1)
    y0 = np.clip(np.floor(boxes[:, 1] * sy).astype(int), 0, ov_h - 1)
    x1 = np.clip(np.ceil((boxes[:, 0] + boxes[:, 2]) * sx).astype(int), x0 + 1, ov_w)
    y1 = np.clip(np.ceil((boxes[:, 1] + boxes[:, 3]) * sy).astype(int), y0 + 1, ov_h)

    def box_mean(values: np.ndarray) -> np.ndarray:
        total = cv2.integral(values.astype(np.float64))
        sums = total[y1, x1] - total[y0, x1] - total[y1, x0] + total[y0, x0]
        return np.asarray(sums / ((x1 - x0) * (y1 - y0)))

    near_fraction = box_mean(near)
    coarse = (
        _ramp(box_mean(violet), 0.03, 0.09)
        * _ramp(box_mean(base), 0.25, 0.15)
        * _ramp(box_mean(tissue), 0.3, 0.7)
        * _ramp(box_mean(particle.astype(np.float32)), 0.7, 0.3)
        * (0.25 + 0.75 * near_fraction)
    )
    return _Grid(boxes=boxes, coarse=coarse, near=near_fraction)


def _proposed(grid: _Grid, index: int, rank: int, assessment: FieldAssessment) -> ProposedRoi:
    x, y, w, h = (int(v) for v in grid.boxes[index])
    return ProposedRoi(x, y, w, h, rank, assessment, float(grid.coarse[index]))


def _particles(od: np.ndarray, window: int, min_px: float) -> np.ndarray:
    """Boolean overview mask of marrow particles: packed violet cells with hardly any red cells on
    top, in blobs of at least `min_px` (module docstring)."""
    violet = np.clip(od[..., 1] - od[..., 2], 0.0, None)
    red = np.clip(od[..., 2] - od[..., 0], 0.0, None)
    dense = (cv2.blur(violet, (window, window), borderType=cv2.BORDER_REFLECT) >= COARSE_PARTICLE_VIOLET) & (
        cv2.blur(red, (window, window), borderType=cv2.BORDER_REFLECT) <= COARSE_PARTICLE_RED
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(dense.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    return np.asarray(keep[labels]) if count > 1 else np.zeros(dense.shape, bool)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3])


def _greedy(
    assessed: dict[int, FieldAssessment], boxes: np.ndarray, coarse: np.ndarray, config: RoiProposalConfig
) -> list[int]:
    """Best combined score first; skip rejected, too low, and overlapping fields; at most k."""
    usable = [i for i, a in assessed.items() if a.accepted and a.combined >= config.min_score]
    # Ties (several fields at 1.0) go to the coarse screen's favourite, then to grid order.
    usable.sort(key=lambda i: (-assessed[i].combined, -coarse[i], i))
    chosen: list[int] = []
    for index in usable:
        if len(chosen) == config.k:
            break
        if not any(_overlap(boxes[index], boxes[c]) for c in chosen):
            chosen.append(index)
    return chosen


def _best_failure(assessed: dict[int, FieldAssessment]) -> str:
    """Why the most promising scored field was still not usable, in words."""
    if not assessed:
        return "no candidate field"
    best = max(assessed.values(), key=lambda a: (a.accepted, a.combined))
    if best.rejection:
        return f"the best field was rejected as {best.rejection}"
    worst = min(best.scores, key=lambda name: best.scores[name])
    return f"the best field scored {best.combined:.2f} overall, weakest on {worst} ({best.scores[worst]:.2f})"
