"""The study report event streamed to hospital systems."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from pathstream.shared.events.base import Event, Identifier
from pathstream.shared.topics import Topic

AJCC_MINIMUM_LNS = 15
"""AJCC 8th edition: fewer regional LNs examined than this is inadequate for gastric pN staging."""

_FHIR_RESOURCE_TYPES = frozenset({"DiagnosticReport", "Bundle"})


class PnCategory(StrEnum):
    """AJCC 8th-edition pathological regional lymph-node category for gastric cancer."""

    N0 = "N0"
    N0_ITC = "N0(i+)"  # isolated tumour cells only (< 0.2 mm); not counted as positive
    N1 = "N1"
    N2 = "N2"
    N3A = "N3a"
    N3B = "N3b"


ReportStatus = Literal["partial", "preliminary", "amended", "final", "corrected"]
"""FHIR DiagnosticReport.status of a report version (services/reporter/versions.py: the lifecycle)."""


class ReportReady(Event):
    """A new version of a study's report (reporter -> hospital systems). Kafka key: study_id."""

    TOPIC: ClassVar[Topic] = Topic.REPORTS_READY

    study_id: Identifier
    report_version: int = Field(ge=1)
    slide_count: int = Field(ge=0)
    slides_complete: int = Field(ge=0)
    slides_failed: int = Field(ge=0)
    ln_positive: int = Field(ge=0)
    ln_negative: int = Field(ge=0)
    ln_examined: int = Field(ge=0)
    ln_itc: int = Field(
        default=0,
        ge=0,
        description="Nodes with isolated tumour cells only (< 0.2 mm): examined, not positive.",
    )
    report_status: ReportStatus | None = Field(
        default=None,
        description="FHIR status of the version: preliminary, partial, amended, final, corrected.",
    )
    pn_category: PnCategory | None = Field(
        default=None, description="None for studies without lymph-node slides."
    )
    below_ajcc_minimum: bool = Field(
        description=f"True when a pN was staged from fewer than {AJCC_MINIMUM_LNS} examined LNs."
    )
    fhir_report: dict[str, Any] = Field(description="FHIR R4 DiagnosticReport (or Bundle) JSON.")

    @field_validator("fhir_report")
    @classmethod
    def _is_fhir_report(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("resourceType") not in _FHIR_RESOURCE_TYPES:
            raise ValueError("fhir_report must be a FHIR DiagnosticReport or Bundle resource")
        return value

    @model_validator(mode="after")
    def _counts_add_up(self) -> ReportReady:
        if self.ln_examined != self.ln_positive + self.ln_negative + self.ln_itc:
            raise ValueError("ln_examined must equal ln_positive + ln_negative + ln_itc")
        if self.slides_complete + self.slides_failed > self.slide_count:
            raise ValueError("slides_complete + slides_failed cannot exceed slide_count")
        if self.pn_category is None:
            if self.ln_examined or self.below_ajcc_minimum:
                raise ValueError("a report without pn_category has no examined LNs to flag")
        elif self.below_ajcc_minimum != (self.ln_examined < AJCC_MINIMUM_LNS):
            raise ValueError(
                f"below_ajcc_minimum must be true exactly when fewer than {AJCC_MINIMUM_LNS} LNs "
                "were examined"
            )
        return self

    def kafka_key(self) -> bytes:
        """Return the study_id: a report covers all slides of a study."""
        return self.study_id.encode()
