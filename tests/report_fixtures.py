"""Report inputs, summaries and FHIR documents built from them, shared by the reporter's unit
tests (FHIR, HL7 v2 ORU)."""

from __future__ import annotations

from datetime import UTC, datetime

from pathstream.services.reporter.fhir import ReportContext
from pathstream.services.reporter.staging import NodeCounts
from pathstream.services.reporter.store.report_inputs import (
    LymphNodeFinding,
    OrderInputs,
    SlideInputs,
    StudyInputs,
)
from pathstream.shared.db.models import SlideStatus
from pathstream.shared.events import LnLabel, Specimen

ISSUED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ORDER = OrderInputs(
    patient_id="MRN-0042",
    patient_id_system="urn:oid:1.2.3.4",
    placer_order_number="PO-77",
    placer_system="urn:hospital:orders",
    specimen_id="SP-1",
    specimen="lymph_node",
    expected_slide_ids=("A", "B"),
    expected_slide_count=2,
    ordered_at="2026-11-20T08:00:00+00:00",
    collected_at="2026-11-20T07:30:00+00:00",
    ordering_provider="123^Surgeon^Sam",
)


def ln_finding(
    slide: str, index: int, label: LnLabel | None, deposit_mm: float | None = None
) -> LymphNodeFinding:
    score = None if label is None else (0.9 if label == LnLabel.POSITIVE else 0.1)
    return LymphNodeFinding(
        f"{slide}_ln{index:03d}",
        slide,
        index,
        score,
        label,
        "escnn@sha256:ab",
        False,
        deposit_mm=deposit_mm,
        deposit_measured_by=None if deposit_mm is None else "model",
    )


def slide_inputs(slide: str, status: SlideStatus, lns: list[LymphNodeFinding]) -> SlideInputs:
    """A lymph-node slide holding `lns`, counted as the reporter's store counts them."""
    counts = NodeCounts.of(f.deposit_class for f in lns)
    return SlideInputs(
        slide_id=slide,
        specimen=Specimen.LYMPH_NODE,
        status=status,
        ln_count=len(lns),
        ln_scored=sum(1 for f in lns if f.label is not None),
        ln_positive=counts.positive,
        ln_negative=counts.negative,
        counts=counts,
        detector_model_version="detector@sha256:cd",
    )


def study_inputs(
    *slides: tuple[str, SlideStatus, list[LymphNodeFinding]],
    order: OrderInputs | None = None,
    closed: bool = True,
) -> StudyInputs:
    """Study ST-1 of `slides` (id, status, nodes); its slide set closed by the run unless an order
    says which slides it has or `closed` is False."""
    return StudyInputs(
        "ST-1",
        tuple(slide_inputs(*s) for s in slides),
        tuple(ln for _, _, lns in slides for ln in lns),
        order=order,
        slides_closed_by="run" if closed and order is None else None,
        first_scanned_at="2026-11-21T09:00:00+00:00",
    )


def report_context(version: int = 1, status: str = "preliminary", **kwargs: object) -> ReportContext:
    """Version `version` of the report, issued by City Pathology (LAB-1) at ISSUED."""
    return ReportContext(version, status, ISSUED, "LAB-1", "City Pathology", **kwargs)  # type: ignore[arg-type]
