"""Lymph-node events: one LN found by the detector, and its metastasis score from ESCNN."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field, model_validator

from pathstream.shared.events.base import (
    BBox,
    Contour,
    Event,
    Identifier,
    ModelVersion,
    Probability,
    Uri,
)
from pathstream.shared.topics import Topic


class LnLabel(StrEnum):
    """Metastasis call for one lymph node."""

    POSITIVE = "positive"
    NEGATIVE = "negative"


class _LymphNodeGeometry(Event):
    """Identity and geometry of one LN, in level-0 pixels of its slide."""

    ln_id: Identifier
    slide_id: Identifier
    study_id: Identifier
    index: int = Field(ge=0, description="0-based position of this LN among its slide's LNs.")
    contour: Contour
    bbox: BBox
    area_um2: float = Field(gt=0, description="Area enclosed by the contour in square micrometres.")

    @model_validator(mode="after")
    def _contour_inside_bbox(self) -> _LymphNodeGeometry:
        if not self.bbox.contains(self.contour):
            raise ValueError("contour points must lie inside bbox (both in level-0 pixels)")
        return self


class LymphNodeDetected(_LymphNodeGeometry):
    """One LN found on a slide (detector -> escnn). Kafka key: ln_id, so LNs spread over workers."""

    TOPIC: ClassVar[Topic] = Topic.LN_DETECTED

    store_uri: Uri = Field(description="The slide's TileDB group.")
    model_version: ModelVersion = Field(description="Detector model version that found this LN.")

    def kafka_key(self) -> bytes:
        """Return the ln_id: LNs of one slide are scored in parallel on different partitions."""
        return self.ln_id.encode()


class LymphNodeScored(_LymphNodeGeometry):
    """Metastasis score of one LN (escnn -> reporter). Kafka key: slide_id."""

    TOPIC: ClassVar[Topic] = Topic.LN_SCORED

    score: Probability = Field(description="sigmoid(logit) of the streaming ESCNN.")
    label: LnLabel = Field(description="Call at the general operating threshold.")
    threshold: Probability = Field(description="General operating threshold (paper: 0.4).")
    screening_label: LnLabel = Field(description="Call at the screening threshold.")
    screening_threshold: Probability = Field(description="Screening threshold (paper: 0.15).")
    heatmap_uri: Uri | None = Field(default=None, description="CAM overlay PNG for this LN.")
    lesion_polygons: list[Contour] = Field(
        default_factory=list, description="CAM > 0.5 regions, level-0 pixel polygons."
    )
    model_version: ModelVersion = Field(description="ESCNN model version (checkpoint hash).")

    @model_validator(mode="after")
    def _labels_follow_thresholds(self) -> LymphNodeScored:
        for label, threshold, name in (
            (self.label, self.threshold, "label"),
            (self.screening_label, self.screening_threshold, "screening_label"),
        ):
            expected = LnLabel.POSITIVE if self.score >= threshold else LnLabel.NEGATIVE
            if label != expected:
                raise ValueError(
                    f"{name} is {label.value} but score {self.score} against threshold {threshold} "
                    f"gives {expected.value}"
                )
        return self
