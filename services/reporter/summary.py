"""A study's report content, computed from its report inputs (pure; no database, no transport).

Counts are of LNs with a label (the pathologist's when reviewed, else the model's); LNs a
pathologist removed are already left out of the inputs. The pN category is staged from the study's
positive count as soon as any LN has been examined; until every slide is complete the report says
so (`status` "partial"), and failed slides are listed as failed, never dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from pathstream.services.reporter.staging import below_ajcc_minimum, pn_category
from pathstream.services.reporter.store.report_inputs import (
    LymphNodeFinding,
    MarrowFinding,
    SlideInputs,
    StudyInputs,
)
from pathstream.shared.db.models import SlideStatus
from pathstream.shared.events import PnCategory

ReportStatus = Literal["partial", "preliminary", "amended"]
"""FHIR DiagnosticReport.status: a slide is outstanding or failed / every slide complete, awaiting
sign-out / every slide complete and a pathologist changed something."""


@dataclass(frozen=True)
class SlideSummary:
    """One slide's line in the report."""

    slide_id: str
    specimen: str | None
    status: str
    ln_count: int | None
    ln_scored: int
    positive: int
    negative: int


@dataclass(frozen=True)
class StudySummary:
    """Everything a report version states about a study."""

    study_id: str
    status: ReportStatus
    slides: tuple[SlideSummary, ...]
    slide_count: int
    slides_complete: int
    slides_failed: int
    positive: int
    negative: int
    examined: int
    pn_category: PnCategory | None
    below_ajcc_minimum: bool
    lymph_nodes: tuple[LymphNodeFinding, ...]
    model_versions: tuple[str, ...]
    amendments: int = 0
    marrow: tuple[MarrowFinding, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (what is stored with a report version and compared between versions)."""
        values = asdict(self)
        values["pn_category"] = None if self.pn_category is None else self.pn_category.value
        values["lymph_nodes"] = [
            {**asdict(ln), "label": None if ln.label is None else ln.label.value} for ln in self.lymph_nodes
        ]
        values["slides"] = [asdict(slide) for slide in self.slides]
        values["model_versions"] = list(self.model_versions)
        values["marrow"] = [
            {**asdict(m), "case_call": m.case_call.value, "probabilities": dict(m.probabilities)}
            for m in self.marrow
        ]
        return values


def slide_status(slide: SlideInputs) -> SlideStatus:
    """A slide's effective status: an LN slide is complete once all `ln_count` LNs have a label
    (in whatever order the detection and the scores arrived); a failure stays a failure."""
    if slide.status in (SlideStatus.FAILED, SlideStatus.COMPLETE):
        return slide.status
    if slide.ln_count is not None and slide.ln_scored >= slide.ln_count:
        return SlideStatus.COMPLETE
    return slide.status


def _slide_summary(slide: SlideInputs) -> SlideSummary:
    return SlideSummary(
        slide_id=slide.slide_id,
        specimen=None if slide.specimen is None else slide.specimen.value,
        status=slide_status(slide).value,
        ln_count=slide.ln_count,
        ln_scored=slide.ln_scored,
        positive=slide.ln_positive,
        negative=slide.ln_negative,
    )


def summarise(inputs: StudyInputs) -> StudySummary:
    """Report inputs of one study -> its report content."""
    statuses = [slide_status(s) for s in inputs.slides]
    complete = statuses.count(SlideStatus.COMPLETE)
    failed = statuses.count(SlideStatus.FAILED)
    examined = inputs.ln_positive + inputs.ln_negative
    status: ReportStatus
    if not inputs.slides or complete < len(inputs.slides):
        status = "partial"
    elif inputs.amendments or any(ln.reviewed for ln in inputs.lymph_nodes):
        status = "amended"
    else:
        status = "preliminary"
    category = PnCategory(pn_category(inputs.ln_positive)) if examined else None
    return StudySummary(
        study_id=inputs.study_id,
        status=status,
        slides=tuple(_slide_summary(s) for s in inputs.slides),
        slide_count=len(inputs.slides),
        slides_complete=complete,
        slides_failed=failed,
        positive=inputs.ln_positive,
        negative=inputs.ln_negative,
        examined=examined,
        pn_category=category,
        below_ajcc_minimum=category is not None and below_ajcc_minimum(examined),
        lymph_nodes=inputs.lymph_nodes,
        model_versions=tuple(
            sorted(
                {ln.model_version for ln in inputs.lymph_nodes if ln.model_version}
                | {m.model_version for m in inputs.marrow}
            )
        ),
        amendments=inputs.amendments,
        marrow=inputs.marrow,
    )
