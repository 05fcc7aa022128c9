"""Report content from report inputs, and its FHIR R4 DiagnosticReport (checked by fhir.resources
and by HL7's R4 JSON schema, a validator that did not build it)."""

from __future__ import annotations

import base64

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydantic import ValidationError

from pathstream.services.reporter.fhir import diagnostic_report, report_resource_id
from pathstream.services.reporter.store.report_inputs import (
    MarrowFinding,
    SlideInputs,
    StudyInputs,
)
from pathstream.services.reporter.summary import summarise
from pathstream.shared.db.models import SlideStatus
from pathstream.shared.events import LnLabel, MarrowClass, PnCategory, Specimen
from tests.fhir_schema import assert_fhir_r4_valid
from tests.report_fixtures import ORDER, ln_finding, report_context, study_inputs


def test_counts_stage_and_flag_a_complete_study() -> None:
    a = [
        ln_finding("A", i, LnLabel.POSITIVE if i < 3 else LnLabel.NEGATIVE, 1.0 if i < 3 else None)
        for i in range(8)
    ]
    b = [ln_finding("B", i, LnLabel.NEGATIVE) for i in range(4)]
    summary = summarise(study_inputs(("A", SlideStatus.COMPLETE, a), ("B", SlideStatus.COMPLETE, b)))
    assert (summary.positive, summary.negative, summary.examined) == (3, 9, 12)
    assert summary.pn_category == PnCategory.N2 and summary.below_ajcc_minimum
    assert summary.ready and summary.slides_complete == 2


def test_itc_nodes_are_examined_not_positive() -> None:
    lns = [ln_finding("A", 0, LnLabel.POSITIVE, 0.1), ln_finding("A", 1, LnLabel.POSITIVE, 0.15)]
    lns += [ln_finding("A", i, LnLabel.NEGATIVE) for i in range(2, 15)]
    summary = summarise(study_inputs(("A", SlideStatus.COMPLETE, lns)))
    assert (summary.positive, summary.counts.itc, summary.examined) == (0, 2, 15)
    assert summary.pn_category == PnCategory.N0_ITC and not summary.below_ajcc_minimum
    mixed = [ln_finding("A", 0, LnLabel.POSITIVE, 0.5), ln_finding("A", 1, LnLabel.POSITIVE, 1.5)]
    mixed += [ln_finding("A", i, LnLabel.POSITIVE, 0.05) for i in range(2, 5)]
    staged = summarise(study_inputs(("A", SlideStatus.COMPLETE, mixed)))
    assert (staged.counts.micro, staged.counts.itc, staged.pn_category) == (2, 3, PnCategory.N1)


def test_a_study_waits_for_its_slide_set_and_outstanding_slides() -> None:
    a = [ln_finding("A", 0, LnLabel.NEGATIVE), ln_finding("A", 1, None)]
    summary = summarise(
        study_inputs(("A", SlideStatus.DETECTED, a), ("B", SlideStatus.FAILED, []), closed=False)
    )
    assert not summary.ready
    assert any("slide set" in w for w in summary.waiting_for) and "slide A to finish" in summary.waiting_for
    assert [s.status for s in summary.slides] == ["detected", "failed"]
    assert summary.pn_category == PnCategory.N0 and summary.examined == 1


def test_an_order_names_the_slides_the_study_waits_for() -> None:
    done = [ln_finding("A", 0, LnLabel.NEGATIVE)]
    waiting = summarise(study_inputs(("A", SlideStatus.COMPLETE, done), order=ORDER))
    assert not waiting.ready and waiting.waiting_for == ("slide B (expected by the order)",)
    ready = summarise(
        study_inputs(("A", SlideStatus.COMPLETE, done), ("B", SlideStatus.FAILED, []), order=ORDER)
    )
    assert ready.ready and ready.slides_failed == 1


def test_no_examined_lymph_node_means_no_pn() -> None:
    summary = summarise(study_inputs(("A", SlideStatus.COMPLETE, [])))
    assert summary.pn_category is None and not summary.below_ajcc_minimum


def test_fhir_document_is_coded_and_valid_for_both_validators() -> None:
    a = [
        ln_finding("A", i, LnLabel.POSITIVE if i < 2 else LnLabel.NEGATIVE, 2.5 if i < 2 else None)
        for i in range(16)
    ]
    a.append(ln_finding("A", 16, LnLabel.POSITIVE, 0.1))
    b = [ln_finding("B", 0, LnLabel.NEGATIVE)]
    summary = summarise(
        study_inputs(("A", SlideStatus.COMPLETE, a), ("B", SlideStatus.COMPLETE, b), order=ORDER)
    )
    document = diagnostic_report(summary, report_context(3, "final", signer_id="drx", signer_name="Dr X"))
    assert_fhir_r4_valid(document)
    parsed = DiagnosticReport.model_validate(document)  # round trip through JSON types
    assert parsed.status == "final" and document["meta"]["versionId"] == "3"
    assert document["id"] == report_resource_id("ST-1")
    assert document["subject"] == {
        "type": "Patient",
        "identifier": {"system": "urn:oid:1.2.3.4", "value": "MRN-0042"},
    }
    assert document["basedOn"][0]["identifier"]["value"] == "PO-77"
    assert document["effectiveDateTime"].startswith("2026-11-20T07:30")
    assert document["resultsInterpreter"][0]["display"] == "Dr X"
    contained = {r["id"]: r for r in document["contained"]}
    assert contained["ln-examined"]["code"]["coding"][0]["code"] == "21894-1"
    assert contained["ln-examined"]["valueInteger"] == 18
    assert contained["ln-positive"]["code"]["coding"][0]["code"] == "21893-3"
    assert contained["ln-positive"]["valueInteger"] == 2
    assert (contained["ln-itc"]["valueInteger"], contained["ln-macro"]["valueInteger"]) == (1, 2)
    pn = contained["pn"]
    assert pn["code"]["coding"][0]["code"] == "21900-6"
    assert pn["valueCodeableConcept"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "1229951001",
        "display": "American Joint Committee on Cancer pN1 (qualifier value)",
    }
    assert document["conclusionCode"][0]["coding"][0]["code"] == "1229951001"
    assert contained["specimen"]["type"]["coding"][0]["code"] == "258589002"
    versions = {
        r["deviceName"][0]["name"]: r["version"][0]["value"]
        for r in document["contained"]
        if r["resourceType"] == "Device"
    }
    assert versions == {
        "PathStream detector model": "detector@sha256:cd",
        "PathStream escnn model": "escnn@sha256:ab",
    }
    first = contained["ln-0"]
    probability = first["component"][0]["valueQuantity"]
    assert probability["system"] == "http://unitsofmeasure.org" and probability["code"] == "1"
    assert first["component"][1]["valueQuantity"]["code"] == "mm"
    assert first["valueCodeableConcept"]["coding"][0]["code"] == "399374009"
    text = base64.b64decode(document["presentedForm"][0]["data"]).decode()
    assert "2 of 18 regional lymph nodes positive" in text and "Signed out by Dr X" in text
    assert {r["reference"] for r in document["result"]} == {
        f"#{r['id']}" for r in document["contained"] if r["resourceType"] == "Observation"
    }


def test_a_marrow_only_report_has_no_lymph_node_statement() -> None:
    smear = SlideInputs("M1", Specimen.BONE_MARROW, SlideStatus.COMPLETE, None, 0, 0, 0)
    finding = MarrowFinding(
        "M1", MarrowClass.MDS, (("mds", 0.7), ("aml", 0.1), ("donor", 0.2)), 12, "marrow@sha256:ef"
    )
    inputs = StudyInputs("ST-M", (smear,), (), marrow=(finding,), slides_closed_by="run")
    document = diagnostic_report(summarise(inputs), report_context())
    assert_fhir_r4_valid(document)
    ids = {r["id"] for r in document["contained"]}
    assert "ln-examined" not in ids and "pn" not in ids and "marrow-0" in ids
    assert "lymph node" not in document["conclusion"]
    assert document["conclusionCode"][0]["coding"][0]["code"] == "109995007"


def test_an_invalid_document_is_refused_by_the_fhir_model() -> None:
    with pytest.raises(ValidationError):
        DiagnosticReport.model_validate({"resourceType": "DiagnosticReport", "status": "preliminary"})


def test_a_detected_slide_with_every_lymph_node_scored_is_complete() -> None:
    lns = [ln_finding("A", 0, LnLabel.NEGATIVE), ln_finding("A", 1, LnLabel.POSITIVE)]
    summary = summarise(study_inputs(("A", SlideStatus.DETECTED, lns)))
    assert summary.slides[0].status == "complete" and summary.ready
