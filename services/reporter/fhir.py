"""A study report as a FHIR R4 DiagnosticReport, built and validated with `fhir.resources`.

The report carries its Observations and the algorithm (Device) as contained resources, so one JSON
document is complete on its own:

- Observation "ln-examined" / "ln-positive": regional LNs examined / positive (LOINC 21894-1 /
  21893-3), valueInteger;
- Observation "pn": the AJCC 8th-edition pN category (LOINC 21900-6), valueCodeableConcept;
- one Observation per LN: its score (valueQuantity, 0-1), interpretation POS / NEG (HL7 v3
  ObservationInterpretation), the slide and LN ids, and whether a pathologist reviewed it;
- one Observation per bone-marrow smear ("marrow-<n>"): the case call MDS / AML / healthy donor
  (valueCodeableConcept), one component per class with its case probability, and the slide id;
- Device "algorithm": PathStream with every model version that contributed.

`fhir.resources` ships R4B (4.3.0), whose DiagnosticReport, Observation and Device keep R4's
(4.0.1) structure for every element used here; the document validates against it, and against
the same model again after a JSON round trip.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from pathstream.services.reporter.store.report_inputs import MarrowFinding
from pathstream.services.reporter.summary import StudySummary
from pathstream.shared.events import LnLabel

LOINC = "http://loinc.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
STUDY_SYSTEM = "urn:pathstream:study"
SLIDE_SYSTEM = "urn:pathstream:slide"
LN_SYSTEM = "urn:pathstream:lymph-node"
AJCC_SYSTEM = "urn:pathstream:ajcc8-gastric-pn"
MARROW_SYSTEM = "urn:pathstream:marrow-class"
MARROW_DISPLAY = {
    "mds": "Myelodysplastic syndrome (MDS)",
    "aml": "Acute myeloid leukaemia (AML)",
    "donor": "Healthy bone-marrow donor",
}
DEVICE_ID = "algorithm"


def _loinc(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display}


def _count(obs_id: str, code: str, display: str, value: int, issued: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "preliminary",
        "code": _loinc(code, display),
        "issued": issued,
        "valueInteger": value,
        "device": {"reference": f"#{DEVICE_ID}"},
    }


def _ln_observation(index: int, finding: Any, issued: str) -> dict[str, Any]:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"ln-{index}",
        "status": "amended" if finding.reviewed else "preliminary",
        "code": {"text": "Lymph node metastasis (ESCNN score)"},
        "identifier": [
            {"system": LN_SYSTEM, "value": finding.ln_id},
            {"system": SLIDE_SYSTEM, "value": finding.slide_id},
        ],
        "issued": issued,
        "device": {"reference": f"#{DEVICE_ID}"},
    }
    if finding.score is not None:
        observation["valueQuantity"] = {"value": round(float(finding.score), 6), "unit": "probability"}
    if finding.label is not None:
        positive = finding.label == LnLabel.POSITIVE
        observation["interpretation"] = [
            {
                "coding": [
                    {
                        "system": INTERPRETATION,
                        "code": "POS" if positive else "NEG",
                        "display": "Positive" if positive else "Negative",
                    }
                ]
            }
        ]
    if finding.reviewed:
        observation["note"] = [{"text": "Label set by pathologist review."}]
    return observation


def _marrow_observation(index: int, finding: MarrowFinding, issued: str) -> dict[str, Any]:
    call = finding.case_call.value
    return {
        "resourceType": "Observation",
        "id": f"marrow-{index}",
        "status": "preliminary",
        "code": {"text": "Bone-marrow smear classification (MDS / AML / donor)"},
        "identifier": [{"system": SLIDE_SYSTEM, "value": finding.slide_id}],
        "issued": issued,
        "valueCodeableConcept": {
            "coding": [{"system": MARROW_SYSTEM, "code": call, "display": MARROW_DISPLAY[call]}],
            "text": MARROW_DISPLAY[call],
        },
        "component": [
            {
                "code": {"coding": [{"system": MARROW_SYSTEM, "code": name}], "text": f"P({name})"},
                "valueQuantity": {"value": round(probability, 6), "unit": "probability"},
            }
            for name, probability in finding.probabilities
        ],
        "note": [
            {"text": f"Mean of {finding.roi_count} automatically proposed ROIs; {finding.model_version}."}
        ],
        "device": {"reference": f"#{DEVICE_ID}"},
    }


def _conclusion(summary: StudySummary) -> str:
    parts = []
    marrow_slides = {m.slide_id for m in summary.marrow}
    # A bone-marrow-only study has no LN statement; any other slide keeps it, even with 0 examined.
    if any(s.specimen != "bone_marrow" and s.slide_id not in marrow_slides for s in summary.slides):
        parts.append(
            f"{summary.positive} of {summary.examined} regional lymph nodes positive"
            + (f"; p{summary.pn_category.value}" if summary.pn_category else "")
            + ("; fewer than 15 lymph nodes examined" if summary.below_ajcc_minimum else "")
        )
    for finding in summary.marrow:
        probability = dict(finding.probabilities)[finding.case_call.value]
        parts.append(
            f"bone marrow {finding.slide_id}: {MARROW_DISPLAY[finding.case_call.value]} "
            f"(p = {probability:.2f})"
        )
    failed = [s.slide_id for s in summary.slides if s.status == "failed"]
    if failed:
        parts.append(f"failed slides: {', '.join(failed)}")
    parts.append(f"{summary.slides_complete} of {summary.slide_count} slides complete.")
    return "; ".join(parts)


def diagnostic_report(summary: StudySummary, version: int, issued: datetime) -> dict[str, Any]:
    """Report version `version` of `summary`, issued at `issued` (UTC) -> validated FHIR JSON dict.

    Raises `pydantic.ValidationError` if the document is not a valid DiagnosticReport (a bug).
    """
    stamp = issued.isoformat()
    contained: list[dict[str, Any]] = [
        {
            "resourceType": "Device",
            "id": DEVICE_ID,
            "deviceName": [{"name": "PathStream", "type": "manufacturer-name"}],
            "version": [{"type": {"text": "model"}, "value": v} for v in summary.model_versions],
        },
        _count("ln-examined", "21894-1", "Regional lymph nodes examined", summary.examined, stamp),
        _count("ln-positive", "21893-3", "Regional lymph nodes positive", summary.positive, stamp),
    ]
    if summary.pn_category is not None:
        contained.append(
            {
                "resourceType": "Observation",
                "id": "pn",
                "status": "preliminary",
                "code": _loinc("21900-6", "Regional lymph nodes pathology [Class] Cancer"),
                "issued": stamp,
                "valueCodeableConcept": {
                    "coding": [{"system": AJCC_SYSTEM, "code": summary.pn_category.value}],
                    "text": f"p{summary.pn_category.value}",
                },
                "device": {"reference": f"#{DEVICE_ID}"},
            }
        )
    contained += [_ln_observation(i, ln, stamp) for i, ln in enumerate(summary.lymph_nodes)]
    contained += [_marrow_observation(i, m, stamp) for i, m in enumerate(summary.marrow)]
    conclusion = _conclusion(summary)
    document = {
        "resourceType": "DiagnosticReport",
        "id": f"{summary.study_id}-v{version}",
        "meta": {"versionId": str(version)},
        "identifier": [{"system": STUDY_SYSTEM, "value": summary.study_id}],
        "status": summary.status,
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "SP",
                        "display": "Surgical Pathology",
                    }
                ]
            }
        ],
        "code": _loinc("60567-5", "Comprehensive pathology report panel"),
        "issued": stamp,
        "contained": contained,
        "result": [{"reference": f"#{r['id']}"} for r in contained if r["resourceType"] == "Observation"],
        "conclusion": conclusion,
    }
    validated = DiagnosticReport.model_validate(document)
    return validated.model_dump(mode="json", exclude_none=True)
