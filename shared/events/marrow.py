"""Bone-marrow smear classification event."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pathstream.shared.events.base import BBox, Event, Identifier, ModelVersion, Probability, Uri
from pathstream.shared.topics import Topic

_SUM_TOLERANCE = 1e-3


class MarrowClass(StrEnum):
    """Case-level diagnosis classes of the marrow classifier."""

    MDS = "mds"
    AML = "aml"
    DONOR = "donor"


def _check_distribution(probabilities: dict[MarrowClass, float]) -> dict[MarrowClass, float]:
    if len(probabilities) < 2:
        raise ValueError("class probabilities need at least two classes")
    total = math.fsum(probabilities.values())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise ValueError(f"class probabilities must sum to 1, got {total:.6f}")
    return probabilities


ClassProbabilities = Annotated[dict[MarrowClass, Probability], AfterValidator(_check_distribution)]
"""Probabilities over two or more marrow classes, summing to 1."""


class MarrowRoi(BaseModel):
    """One region of interest of a smear with its classifier output."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    index: int = Field(ge=0)
    bbox: BBox = Field(description="ROI in level-0 pixels.")
    probabilities: ClassProbabilities
    osm_uri: Uri | None = Field(default=None, description="Occlusion sensitivity overlay PNG.")
    quality: dict[str, float] = Field(
        default_factory=dict, description="ROI-proposal criteria scores that made this ROI chosen."
    )


class MarrowClassified(Event):
    """Case-level MDS / AML / donor call for one smear (marrow -> reporter)."""

    TOPIC: ClassVar[Topic] = Topic.MARROW_CLASSIFIED

    slide_id: Identifier
    study_id: Identifier
    rois: list[MarrowRoi] = Field(min_length=1)
    case_call: MarrowClass
    case_probabilities: ClassProbabilities
    model_version: ModelVersion

    @model_validator(mode="after")
    def _call_is_a_scored_class(self) -> MarrowClassified:
        if self.case_call not in self.case_probabilities:
            raise ValueError(f"case_call {self.case_call.value} has no entry in case_probabilities")
        return self
