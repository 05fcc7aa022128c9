"""The slide-quality gate: is this overview a brightfield H&E (lymph node) or MGG (marrow) scan at all?

Run on the store's 7.36 um/px overview before detection or ROI proposal. A fluorescence scan, a
slide decoded in false colour, a blank slide or a wrong stain would otherwise go through the models
and come out as a clinical-looking report. Each check measures one thing and names it when it fails
(`QC_FAILED`, message with the measured value and the threshold):

1. **Glass brightness.** In brightfield the glass is the brightest part of the slide and transmits
   nearly all light. The brightest 5 % of pixels must have a median luminance of at least
   `min_glass_luminance` (120/255; real H&E glass measures 245-255). Fluorescence and dark-field
   scans have a black background (the DAPI NDPI in `../shared/data/real`: 56).
2. **Neutral glass.** Glass is grey or white: the channels of the brightest 5 % may differ by at
   most `max_glass_spread` (45/255; real H&E slides measure 0-2). A false-colour decode fails here
   (the DICOM in `../shared/data/real`: salmon glass, spread 108).
3. **Tissue present.** Optical density relative to the slide's own glass colour; a pixel is tissue
   when its OD summed over RGB exceeds `tissue_od` (0.3). At least `min_tissue_mm2` (0.01 mm^2,
   ~185 px at 7.36 um/px) must be tissue, else the slide is blank. The bar is low on purpose: a
   slide of perinodal fat without any node is a real result (0 LNs), and fat absorbs little (a
   synthetic fat-and-stroma slide measures 0.04 mm^2, blank glass 0).
4. **Stain.** Haematoxylin, eosin, May-Gruenwald-Giemsa and red cells all absorb green most
   (Ruifrok-Johnston H (0.65, 0.70, 0.29), E (0.07, 0.99, 0.11)); DAB and blue or black inks do not
   (DAB (0.27, 0.57, 0.78)). The tissue's mean optical density must have green as its largest
   channel, carrying at least `min_green_share` (0.38) of the total. Real H&E slides measure
   0.46-0.54, real MGG cell images 0.50-0.62, the synthetic slides and smears 0.41-0.48, DAB 0.35.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.tilestore.layout import DETECTOR_1_25X
from pathstream.shared.tilestore.reader import TileStore

GLASS_QUANTILE = 0.95


@dataclass(frozen=True)
class QualityThresholds:
    """Where each check of the gate draws its line (see the module docstring for why)."""

    min_glass_luminance: float = 120.0
    max_glass_spread: float = 45.0
    tissue_od: float = 0.3
    min_tissue_mm2: float = 0.01
    min_green_share: float = 0.38


@dataclass(frozen=True)
class SlideQuality:
    """What the gate measured on one overview."""

    glass_luminance: float
    """Median luminance (0-255) of the brightest 5 % of pixels."""
    glass_rgb: tuple[float, float, float]
    """Mean RGB of those pixels."""
    tissue_mm2: float
    tissue_fraction: float
    tissue_od: tuple[float, float, float]
    """Mean optical density (R, G, B) of the tissue pixels, relative to the glass."""

    @property
    def green_share(self) -> float:
        """Green's part of the tissue's summed optical density (0 without tissue)."""
        total = sum(self.tissue_od)
        return self.tissue_od[1] / total if total > 0 else 0.0

    @property
    def glass_spread(self) -> float:
        """Largest difference between the glass colour's channels (0 for grey)."""
        return max(self.glass_rgb) - min(self.glass_rgb)

    def as_dict(self) -> dict[str, float | list[float]]:
        """JSON-ready measurements (rounded) for logs and failure messages."""
        values = asdict(self)
        values["glass_rgb"] = [round(c, 1) for c in self.glass_rgb]
        values["tissue_od"] = [round(c, 3) for c in self.tissue_od]
        values["green_share"] = self.green_share
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in values.items()}


def measure_quality(rgb: np.ndarray, mpp: float, thresholds: QualityThresholds) -> SlideQuality:
    """Measure an overview: `rgb` uint8 H x W x 3 RGB at `mpp` um/px (the 7.36 um/px array)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected a non-empty uint8 HxWx3 RGB image, got {rgb.dtype} {rgb.shape}")
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    luminance = pixels.mean(axis=1)
    glass = pixels[luminance >= np.quantile(luminance, GLASS_QUANTILE)]
    glass_rgb = glass.mean(axis=0)
    reference = np.maximum(glass_rgb, 1.0)
    density = np.clip(-np.log10(np.maximum(pixels, 1.0) / reference), 0.0, None)
    tissue = density[density.sum(axis=1) > thresholds.tissue_od]
    mean_od = tissue.mean(axis=0) if len(tissue) else np.zeros(3, np.float32)
    return SlideQuality(
        glass_luminance=float(np.median(glass.mean(axis=1))),
        glass_rgb=(float(glass_rgb[0]), float(glass_rgb[1]), float(glass_rgb[2])),
        tissue_mm2=len(tissue) * mpp * mpp / 1e6,
        tissue_fraction=len(tissue) / len(pixels),
        tissue_od=(float(mean_od[0]), float(mean_od[1]), float(mean_od[2])),
    )


def quality_problems(quality: SlideQuality, thresholds: QualityThresholds) -> list[str]:
    """The checks `quality` fails, each as a sentence with the measured value; empty when it passes.
    The first failed check decides the ones after it (a dark background has no glass colour)."""
    if quality.glass_luminance < thresholds.min_glass_luminance:
        return [
            f"the background is dark (brightest 5 % of pixels at luminance {quality.glass_luminance:.0f}"
            f"/255, brightfield glass is at least {thresholds.min_glass_luminance:.0f}): a fluorescence "
            "or dark-field scan, not brightfield"
        ]
    if quality.glass_spread > thresholds.max_glass_spread:
        r, g, b = quality.glass_rgb
        return [
            f"the glass is coloured (RGB {r:.0f}, {g:.0f}, {b:.0f}; channels differ by "
            f"{quality.glass_spread:.0f}, at most {thresholds.max_glass_spread:.0f} for real glass): the "
            "slide is decoded in false colour or a wrong colour space"
        ]
    if quality.tissue_mm2 < thresholds.min_tissue_mm2:
        return [
            f"no tissue was found ({quality.tissue_mm2:.3f} mm^2, at least {thresholds.min_tissue_mm2:g} "
            "mm^2 expected): a blank slide or a scan of the wrong area"
        ]
    r, g, b = quality.tissue_od
    if g < max(r, b) or quality.green_share < thresholds.min_green_share:
        return [
            f"the tissue does not absorb like H&E or MGG (mean optical density R {r:.2f}, G {g:.2f}, "
            f"B {b:.2f}: green {quality.green_share:.2f} of it, these stains absorb green most and at "
            f"least {thresholds.min_green_share:.2f}): another stain (e.g. DAB immunohistochemistry), "
            "ink or a colour fault"
        ]
    return []


def check_slide_quality(
    rgb: np.ndarray, mpp: float, slide: str, thresholds: QualityThresholds | None = None
) -> SlideQuality:
    """Measure the overview `rgb` (uint8 H x W x 3 at `mpp` um/px) of `slide` and return what was
    measured. Raises `PathStreamError(QC_FAILED)` naming the failed check and its measurements."""
    thresholds = thresholds or QualityThresholds()
    quality = measure_quality(rgb, mpp, thresholds)
    problems = quality_problems(quality, thresholds)
    if problems:
        raise PathStreamError(
            ErrorCode.QC_FAILED,
            f"Slide {slide} failed the quality gate: {'; '.join(problems)}. Nothing was analysed.",
            hint="Check that this is the brightfield H&E (lymph node) or MGG (marrow) scan of the case; "
            "rescan or re-export it. PATHSTREAM_SLIDE_QC=false turns the gate off (research use only).",
        )
    return quality


def check_store_quality(
    store: TileStore, slide: str, thresholds: QualityThresholds | None = None
) -> SlideQuality:
    """`check_slide_quality` on the 7.36 um/px overview array of `store` (the slide `slide`)."""
    overview = store.array(DETECTOR_1_25X.name)
    return check_slide_quality(overview.read_all(), overview.mpp, slide, thresholds)
