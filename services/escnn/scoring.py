"""Score one lymph node: streaming ESCNN on its 0.46 um/px image, CAM heatmap, lesion polygons.

`LymphNodeScorer.score(LymphNodeDetected) -> LymphNodeScored` is the transport-free core that the
FastStream worker and the embedded run share. The LN's bounding box is read from the slide's 20x
array tile by tile, pixels outside the contour are set to white, and the streaming engine returns
the logit and the CAM (sigmoid of the head applied to the pre-pool features, one value per 32 x 32
input pixels). Labels are taken at the general (paper: 0.4) and screening (0.15) thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pathstream.services.escnn.geometry import NetworkGeometry
from pathstream.services.escnn.lymph_node_source import ContourMaskedSource, inside_grid, inside_polygon
from pathstream.services.escnn.streaming import StreamingESCNN
from pathstream.shared.atomic_files import write_bytes_atomically
from pathstream.shared.events import LnLabel, LymphNodeDetected, LymphNodeScored
from pathstream.shared.polygons import polygon_area
from pathstream.shared.tilestore.layout import DETECTOR_1_25X, ESCNN_20X
from pathstream.shared.tilestore.reader import StoreArray, TileStore

LESION_THRESHOLD = 0.5
"""CAM value above which a region is drawn as the highlighted lesion (paper: CAM > 0.5)."""


@dataclass(frozen=True)
class Thresholds:
    """Operating points on sigmoid(logit): general (balanced) and screening (high sensitivity)."""

    general: float = 0.4
    screening: float = 0.15

    def __post_init__(self) -> None:
        for name, value in (("general", self.general), ("screening", self.screening)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"the {name} threshold must lie in (0, 1), got {value}")

    @staticmethod
    def label(score: float, threshold: float) -> LnLabel:
        """Positive when `score >= threshold`."""
        return LnLabel.POSITIVE if score >= threshold else LnLabel.NEGATIVE


def cam_cell_centre(index: np.ndarray, geometry: NetworkGeometry) -> np.ndarray:
    """Input coordinates (pixel j spans [j, j + 1)) of the centres of CAM cells' receptive fields."""
    return index * geometry.stride - geometry.padding + geometry.receptive_field / 2


def lesion_polygons(
    cam: np.ndarray, geometry: NetworkGeometry, threshold: float = LESION_THRESHOLD
) -> list[np.ndarray]:
    """Regions with CAM > `threshold` as float [K, 2] (x, y) polygons in input-image coordinates.

    `cam`: float H x W map at the network's stride. Cells are upsampled 2x before tracing, so a
    single hot cell becomes a square around its centre rather than a point.
    """
    hot = (np.asarray(cam) > threshold).astype(np.uint8)
    if not hot.any():
        return []
    doubled = cv2.resize(hot, (hot.shape[1] * 2, hot.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    found, _ = cv2.findContours(doubled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in found:
        points = contour.reshape(-1, 2).astype(np.float64)
        cells = (points + 0.5) / 2.0 - 0.5  # sub-cell position of each traced half-cell
        polygons.append(cam_cell_centre(cells, geometry))
    return polygons


@dataclass(frozen=True)
class LymphNodeImage:
    """Where an LN lies in the 20x array: its box (x, y, width, height) and contour in array pixels."""

    array: StoreArray
    box: tuple[int, int, int, int]
    polygon: np.ndarray

    @classmethod
    def locate(cls, store: TileStore, event: LymphNodeDetected) -> LymphNodeImage:
        """The LN of `event` in the store's 20x array, its box clipped to the array."""
        array = store.array(ESCNN_20X.name)
        x, y, width, height = array.bbox_from_level0(
            event.bbox.x, event.bbox.y, event.bbox.width, event.bbox.height
        )
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, array.width), min(y + height, array.height)
        polygon = np.array([array.from_level0(px, py) for px, py in event.contour], np.float64)
        return cls(array=array, box=(x0, y0, max(1, x1 - x0), max(1, y1 - y0)), polygon=polygon)

    def inside_only(self, cam: np.ndarray, geometry: NetworkGeometry) -> np.ndarray:
        """`cam` with cells whose centre lies outside the LN contour set to 0 (lesions are in the LN)."""
        xs = self.box[0] + cam_cell_centre(np.arange(cam.shape[1], dtype=np.float64), geometry)
        ys = self.box[1] + cam_cell_centre(np.arange(cam.shape[0], dtype=np.float64), geometry)
        return np.where(inside_grid(self.polygon, xs, ys), cam, 0.0).astype(np.float32)

    def source(self) -> ContourMaskedSource:
        """The streaming engine's view: the box, white outside the contour."""
        return ContourMaskedSource(self.array.read, self.box, self.polygon)

    def to_level0(self, points: np.ndarray) -> list[tuple[int, int]]:
        """Box-relative (x, y) array coordinates -> level-0 integer pixels (clipped at 0)."""
        out: list[tuple[int, int]] = []
        for px, py in points:
            lx, ly = self.array.to_level0(self.box[0] + float(px), self.box[1] + float(py))
            point = (max(0, round(lx)), max(0, round(ly)))
            if not out or out[-1] != point:
                out.append(point)
        return out


@dataclass(frozen=True)
class Scoring:
    """Everything computed for one LN (the event plus what the heatmap needs)."""

    event: LymphNodeScored
    logit: float
    cam: np.ndarray


class LymphNodeScorer:
    """Scores LNs with one loaded model: `score(event)`; writes heatmaps under `artifact_root`."""

    def __init__(
        self,
        engine: StreamingESCNN,
        model_version: str,
        artifact_root: Path,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.engine = engine
        self.model_version = model_version
        self.artifact_root = artifact_root
        self.thresholds = thresholds or Thresholds()

    def score(self, event: LymphNodeDetected, store: TileStore) -> Scoring:
        """Run the LN through the network and describe the result as `LymphNodeScored`."""
        located = LymphNodeImage.locate(store, event)
        logit_tensor, cam_tensor = self.engine.infer(located.source())
        logit = float(logit_tensor[0])
        score = 0.5 * (1.0 + math.tanh(logit / 2.0))  # sigmoid without overflow
        cam = cam_tensor.numpy().astype(np.float32)
        lesions = [
            contour
            for polygon in lesion_polygons(
                located.inside_only(cam, self.engine.geometry), self.engine.geometry
            )
            if len(contour := located.to_level0(polygon)) >= 3 and polygon_area(contour) > 0
        ]
        heatmap = self._write_heatmap(event, store, located, cam, lesions)
        thresholds = self.thresholds
        scored = LymphNodeScored(
            ln_id=event.ln_id,
            slide_id=event.slide_id,
            study_id=event.study_id,
            index=event.index,
            contour=event.contour,
            bbox=event.bbox,
            area_um2=event.area_um2,
            score=score,
            label=thresholds.label(score, thresholds.general),
            threshold=thresholds.general,
            screening_label=thresholds.label(score, thresholds.screening),
            screening_threshold=thresholds.screening,
            heatmap_uri=str(heatmap),
            lesion_polygons=lesions,
            model_version=self.model_version,
        )
        return Scoring(event=scored, logit=logit, cam=cam)

    def _write_heatmap(
        self,
        event: LymphNodeDetected,
        store: TileStore,
        located: LymphNodeImage,
        cam: np.ndarray,
        lesions: list[list[tuple[int, int]]],
    ) -> Path:
        """CAM overlay PNG on the LN's 7.36 um/px image (about 2 pixels per CAM cell)."""
        overview = store.array(DETECTOR_1_25X.name)
        b = event.bbox
        x, y, width, height = overview.bbox_from_level0(b.x, b.y, b.width, b.height)
        rgb = overview.read(x, y, width, height)
        # The CAM cell q is centred at cam_cell_centre(q) in the box's 20x pixels; resample it onto
        # the overview's pixel centres through level-0 coordinates.
        geometry = self.engine.geometry
        cols = np.arange(width) + x + 0.5
        rows = np.arange(height) + y + 0.5
        level0_x = cols * overview.info.level0_per_px_x
        level0_y = rows * overview.info.level0_per_px_y
        box_x = level0_x / located.array.info.level0_per_px_x - located.box[0]
        box_y = level0_y / located.array.info.level0_per_px_y - located.box[1]
        cell_x = (box_x + geometry.padding - geometry.receptive_field / 2) / geometry.stride
        cell_y = (box_y + geometry.padding - geometry.receptive_field / 2) / geometry.stride
        map_x, map_y = np.meshgrid(cell_x.astype(np.float32), cell_y.astype(np.float32))
        heat = cv2.remap(cam, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        colours = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        overlay = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        inside = _polygon_mask(event.contour, overview, x, y, width, height)
        blended = cv2.addWeighted(overlay, 0.55, colours, 0.45, 0)
        overlay[inside] = blended[inside]
        for polygon, colour in [(event.contour, (255, 255, 255))] + [(p, (0, 255, 0)) for p in lesions]:
            pts = np.array([overview.from_level0(px, py) for px, py in polygon], np.float64) - [x, y]
            cv2.polylines(overlay, [np.rint(pts).astype(np.int32).reshape(-1, 1, 2)], True, colour, 1)
        path = self.artifact_root / event.slide_id / f"{event.ln_id}_cam.png"
        _write_png(path, overlay)
        return path


def _polygon_mask(
    contour: list[tuple[int, int]], array: StoreArray, x: int, y: int, width: int, height: int
) -> np.ndarray:
    polygon = np.array([array.from_level0(px, py) for px, py in contour], np.float64)
    return inside_polygon(polygon, x, y, width, height)


def _write_png(path: Path, bgr: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError(f"could not encode the heatmap for {path}")
    write_bytes_atomically(path, encoded.tobytes())
