"""Report content from report inputs, and its FHIR R4 DiagnosticReport."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydantic import ValidationError

from pathstream.services.reporter.fhir import diagnostic_report
from pathstream.services.reporter.store.report_inputs import LymphNodeFinding, SlideInputs, StudyInputs
from pathstream.services.reporter.summary import summarise
from pathstream.shared.db.models import SlideStatus
from pathstream.shared.events import LnLabel, PnCategory, Specimen

ISSUED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _ln(slide: str, index: int, label: LnLabel | None, reviewed: bool = False) -> LymphNodeFinding:
    score = None if label is None else (0.9 if label == LnLabel.POSITIVE else 0.1)
    return LymphNodeFinding(f"{slide}_ln{index:03d}", slide, index, score, label, "escnn@sha256:ab", reviewed)


def _slide(slide: str, status: SlideStatus, lns: list[LymphNodeFinding]) -> SlideInputs:
    return SlideInputs(
        slide_id=slide,
        specimen=Specimen.LYMPH_NODE,
        status=status,
        ln_count=len(lns),
        ln_scored=sum(1 for f in lns if f.label is not None),
        ln_positive=sum(1 for f in lns if f.label == LnLabel.POSITIVE),
        ln_negative=sum(1 for f in lns if f.label == LnLabel.NEGATIVE),
    )


def _study(*slides: tuple[str, SlideStatus, list[LymphNodeFinding]]) -> StudyInputs:
    return StudyInputs(
        "ST-1",
        tuple(_slide(*s) for s in slides),
        tuple(ln for _, _, lns in slides for ln in lns),
    )


def test_counts_stage_and_flag_a_complete_study() -> None:
    a = [_ln("A", i, LnLabel.POSITIVE if i < 3 else LnLabel.NEGATIVE) for i in range(8)]
    b = [_ln("B", i, LnLabel.NEGATIVE) for i in range(4)]
    summary = summarise(_study(("A", SlideStatus.COMPLETE, a), ("B", SlideStatus.COMPLETE, b)))
    assert (summary.positive, summary.negative, summary.examined) == (3, 9, 12)
    assert summary.pn_category == PnCategory.N2 and summary.below_ajcc_minimum
    assert summary.status == "preliminary" and summary.slides_complete == 2


def test_outstanding_and_failed_slides_make_the_report_partial() -> None:
    a = [_ln("A", 0, LnLabel.NEGATIVE), _ln("A", 1, None)]
    summary = summarise(_study(("A", SlideStatus.DETECTED, a), ("B", SlideStatus.FAILED, [])))
    assert summary.status == "partial" and summary.slides_failed == 1
    assert [s.status for s in summary.slides] == ["detected", "failed"]
    assert summary.pn_category == PnCategory.N0 and summary.examined == 1


def test_no_examined_lymph_node_means_no_pn() -> None:
    summary = summarise(_study(("A", SlideStatus.COMPLETE, [])))
    assert summary.pn_category is None and not summary.below_ajcc_minimum


def test_a_review_marks_a_complete_report_amended() -> None:
    lns = [_ln("A", 0, LnLabel.POSITIVE, reviewed=True)]
    assert summarise(_study(("A", SlideStatus.COMPLETE, lns))).status == "amended"


def test_fhir_document_validates_and_carries_counts_pn_findings_and_device() -> None:
    a = [_ln("A", i, LnLabel.POSITIVE if i < 2 else LnLabel.NEGATIVE) for i in range(16)]
    summary = summarise(_study(("A", SlideStatus.COMPLETE, a)))
    document = diagnostic_report(summary, 3, ISSUED)
    parsed = DiagnosticReport.model_validate(document)  # round trip through JSON types
    assert parsed.status == "preliminary" and document["meta"]["versionId"] == "3"
    contained = {r["id"]: r for r in document["contained"]}
    assert contained["ln-examined"]["valueInteger"] == 16
    assert contained["ln-positive"]["valueInteger"] == 2
    assert contained["pn"]["valueCodeableConcept"]["coding"][0]["code"] == "N1"
    assert contained["algorithm"]["version"][0]["value"] == "escnn@sha256:ab"
    findings = [r for r in document["contained"] if r["id"].startswith("ln-") and "valueQuantity" in r]
    assert len(findings) == 16
    assert [f["interpretation"][0]["coding"][0]["code"] for f in findings[:3]] == ["POS", "POS", "NEG"]
    assert {r["reference"] for r in document["result"]} == {
        f"#{r['id']}" for r in document["contained"] if r["resourceType"] == "Observation"
    }


def test_an_invalid_document_is_refused_by_the_fhir_model() -> None:
    with pytest.raises(ValidationError):
        DiagnosticReport.model_validate({"resourceType": "DiagnosticReport", "status": "preliminary"})


def test_a_detected_slide_with_every_lymph_node_scored_is_complete() -> None:
    lns = [_ln("A", 0, LnLabel.NEGATIVE), _ln("A", 1, LnLabel.POSITIVE)]
    summary = summarise(_study(("A", SlideStatus.DETECTED, lns)))
    assert summary.slides[0].status == "complete" and summary.status == "preliminary"
