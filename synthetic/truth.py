"""Ground-truth files written next to synthetic slides (`truth.json`), read by training and tests.

Coordinates are level-0 pixels of the slide; sizes are in micrometres, derived through the mpp.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pathstream.shared.events import LnLabel, MarrowClass

TRUTH_VERSION = 1

Polygon = list[tuple[int, int]]


class LesionSize(StrEnum):
    """AJCC size classes of nodal tumour deposits, by largest dimension."""

    MACRO = "macrometastasis"  # >= 2 mm
    MICRO = "micrometastasis"  # 0.2 mm to < 2 mm
    ITC = "isolated_tumour_cells"  # < 0.2 mm


MACRO_MIN_UM = 2000.0
ITC_MAX_UM = 200.0


def size_class(max_diameter_um: float) -> LesionSize:
    """The size class of a deposit whose largest dimension is `max_diameter_um`."""
    if max_diameter_um >= MACRO_MIN_UM:
        return LesionSize.MACRO
    if max_diameter_um >= ITC_MAX_UM:
        return LesionSize.MICRO
    return LesionSize.ITC


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LesionTruth(_Model):
    """One metastatic deposit inside a lymph node."""

    polygon: Polygon
    size_class: LesionSize
    max_diameter_um: float = Field(gt=0)
    area_um2: float = Field(gt=0)


class LymphNodeTruth(_Model):
    """One lymph node: outline, label, and its deposits (none for a negative node)."""

    index: int
    polygon: Polygon
    label: LnLabel
    area_um2: float = Field(gt=0)
    lesions: list[LesionTruth] = Field(default_factory=list)


class DistractorTruth(_Model):
    """Tissue that is not a lymph node (fat, fibrous stroma, muscle), which a detector must reject."""

    kind: str
    polygon: Polygon


class LymphNodeSlideTruth(_Model):
    """Everything true about one synthetic lymph-node slide."""

    version: int = TRUTH_VERSION
    kind: str = "lymph_node"
    slide: str = Field(description="File name of the slide, relative to this truth file.")
    width: int
    height: int
    mpp: float
    seed: int
    lymph_nodes: list[LymphNodeTruth]
    distractors: list[DistractorTruth] = Field(default_factory=list)

    def save(self, path: Path) -> None:
        """Write as indented JSON."""
        path.write_text(self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: Path) -> LymphNodeSlideTruth:
        """Read a truth file written by `save`."""
        return cls.model_validate_json(path.read_text())


class MarrowCaseTruth(_Model):
    """One synthetic bone-marrow case: its diagnosis and the mixture that made it learnable."""

    case_id: str
    patient_id: str
    label: MarrowClass
    blast_fraction: float
    dysplasia_fraction: float
    cellularity: float
    fields: list[str] = Field(description="ROI field images, relative to the truth file.")
    slide: str | None = Field(default=None, description="Smear slide, relative to the truth file.")


class MarrowCohortTruth(_Model):
    """A synthetic marrow cohort."""

    version: int = TRUTH_VERSION
    kind: str = "bone_marrow"
    mpp: float
    seed: int
    cases: list[MarrowCaseTruth]

    def save(self, path: Path) -> None:
        """Write as indented JSON."""
        path.write_text(self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: Path) -> MarrowCohortTruth:
        """Read a truth file written by `save`."""
        return cls.model_validate_json(path.read_text())
