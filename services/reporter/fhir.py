"""A study report as a FHIR R4 DiagnosticReport, built and validated with `fhir.resources`.

One JSON document is complete on its own: the Observations, the performing laboratory
(Organization), the signing pathologist (Practitioner), the specimen and one Device per model are
contained resources. Every version of a study's report is the same resource: `id` is derived from
the study id, `meta.versionId` is the version. Coding follows mCODE's TNM regional nodes profile
where it applies:

- "ln-examined" / "ln-positive": regional LNs examined / positive (LOINC 21894-1 / 21893-3),
  valueInteger; positive counts micro- and macrometastases, not isolated tumour cells (ITC);
- "ln-itc" / "ln-micro" / "ln-macro": nodes per deposit class (PathStream codes), valueInteger;
- "pn": the AJCC 8th pN category (LOINC 21900-6), value coded in SNOMED CT (the AJCC qualifier
  values, e.g. 1229949000 pN0(i+)), method AJCC 8th edition (SNOMED 897275008);
- one Observation per LN: SNOMED finding (metastasis present / absent), ESCNN probability
  (UCUM "1"), largest deposit (UCUM "mm") and its class as components;
- one Observation per bone-marrow smear: the case call (SNOMED MDS / AML; healthy donor "normal"),
  a component per class probability. A marrow-only report carries no LN observations.

`subject`, `basedOn`, `specimen` and `effectiveDateTime` come from the laboratory's order
(services/reporter/orders/); without an order the report names the study (accession) only and its
effective time is when the first slide arrived. `presentedForm` carries the human-readable summary.

`fhir.resources` ships R4B (4.3.0), whose resources used here keep R4's (4.0.1) structure; CI also
checks every document against HL7's R4 JSON schema (tests/fhir_schema.py), a validator that did not
build it.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from pathstream.services.reporter.staging import DepositClass
from pathstream.services.reporter.store.report_inputs import LymphNodeFinding, MarrowFinding
from pathstream.services.reporter.summary import StudySummary
from pathstream.shared.events import LnLabel, PnCategory, ReportStatus

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
STUDY_SYSTEM = "urn:pathstream:study"
ACCESSION_SYSTEM = "urn:pathstream:accession"
PLACER_SYSTEM = "urn:pathstream:placer-order"
SLIDE_SYSTEM = "urn:pathstream:slide"
LN_SYSTEM = "urn:pathstream:lymph-node"
USER_SYSTEM = "urn:pathstream:user"
LAB_SYSTEM = "urn:pathstream:laboratory"
OBSERVATION_SYSTEM = "urn:pathstream:observation"
MARROW_SYSTEM = "urn:pathstream:marrow-class"
_REPORT_NAMESPACE = uuid.UUID("0c3a9d57-51a4-4b55-8f0e-6f1d2b7a9e13")

PN_SNOMED: dict[PnCategory, tuple[str, str]] = {
    PnCategory.N0: ("1229947003", "American Joint Committee on Cancer pN0 (qualifier value)"),
    PnCategory.N0_ITC: ("1229949000", "American Joint Committee on Cancer pN0(i+) (qualifier value)"),
    PnCategory.N1: ("1229951001", "American Joint Committee on Cancer pN1 (qualifier value)"),
    PnCategory.N2: ("1229957002", "American Joint Committee on Cancer pN2 (qualifier value)"),
    PnCategory.N3A: ("1229963006", "American Joint Committee on Cancer pN3a (qualifier value)"),
    PnCategory.N3B: ("1229964000", "American Joint Committee on Cancer pN3b (qualifier value)"),
}
AJCC8_METHOD = ("897275008", "American Joint Commission on Cancer, Cancer Staging Manual, 8th edition")
LN_FINDING = {
    True: ("399374009", "Regional lymph node metastasis present (finding)"),
    False: ("399647000", "No regional lymph node metastasis (finding)"),
}
SPECIMEN_SNOMED = {
    "lymph_node": ("258589002", "Lymph node specimen (specimen)"),
    "bone_marrow": ("119359002", "Bone marrow specimen (specimen)"),
}
MARROW_SNOMED = {
    "mds": ("109995007", "Myelodysplastic syndrome (disorder)"),
    "aml": ("91861009", "Acute myeloid leukemia, disease (disorder)"),
    "donor": ("17621005", "Normal (qualifier value)"),
}
MARROW_DISPLAY = {
    "mds": "Myelodysplastic syndrome (MDS)",
    "aml": "Acute myeloid leukaemia (AML)",
    "donor": "Healthy bone-marrow donor pattern",
}
CLASS_DISPLAY = {
    DepositClass.NONE: "no metastasis",
    DepositClass.ITC: "isolated tumour cells (< 0.2 mm)",
    DepositClass.MICRO: "micrometastasis (0.2-2 mm)",
    DepositClass.MACRO: "macrometastasis (> 2 mm)",
    DepositClass.UNMEASURED: "metastasis, size not measured",
}
_OBSERVATION_STATUS = {
    "partial": "preliminary",
    "preliminary": "preliminary",
    "amended": "amended",
    "final": "final",
    "corrected": "corrected",
}


@dataclass(frozen=True)
class ReportContext:
    """What a version says beyond the study's content: its number, status and who stands behind it."""

    version: int
    status: ReportStatus
    issued: datetime
    lab_id: str
    lab_name: str
    signer_id: str | None = None
    signer_name: str | None = None
    amendments: tuple[tuple[str, str | None, str], ...] = ()
    """(when, by whom, reason) of each amendment after sign-out, oldest first."""


def report_resource_id(study_id: str) -> str:
    """The FHIR id every version of a study's report has (a UUID: study ids may hold characters
    FHIR ids do not allow)."""
    return str(uuid.uuid5(_REPORT_NAMESPACE, study_id))


def _coded(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": text or display}


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


class _Builder:
    """Collects the contained resources of one report version."""

    def __init__(self, summary: StudySummary, context: ReportContext) -> None:
        self.summary = summary
        self.context = context
        self.stamp = context.issued.isoformat()
        self.status = _OBSERVATION_STATUS[context.status]
        self.contained: list[dict[str, Any]] = []
        self.devices: dict[str, str] = {}

    def _observation(self, obs_id: str, code: dict[str, Any], device: str | None) -> dict[str, Any]:
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": obs_id,
            "status": self.status,
            "category": [
                _coded(
                    "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory"
                )
            ],
            "code": code,
            "issued": self.stamp,
            "performer": [{"reference": "#lab"}],
            "specimen": {"reference": "#specimen"},
        }
        subject = _subject(self.summary)
        if subject is not None:
            observation["subject"] = subject
        if self.summary.effective_at:
            observation["effectiveDateTime"] = self.summary.effective_at
        if device is not None and device in self.devices:
            observation["device"] = {"reference": f"#{self.devices[device]}"}
        self.contained.append(observation)
        return observation

    def devices_and_parties(self) -> None:
        self.contained.append(
            {
                "resourceType": "Organization",
                "id": "lab",
                "identifier": [{"system": LAB_SYSTEM, "value": self.context.lab_id}],
                "name": self.context.lab_name,
            }
        )
        for index, (role, version) in enumerate(self.summary.models):
            device_id = f"device-{index}"
            self.devices.setdefault(role, device_id)
            self.contained.append(
                {
                    "resourceType": "Device",
                    "id": device_id,
                    "manufacturer": "PathStream",
                    "deviceName": [{"name": f"PathStream {role} model", "type": "model-name"}],
                    "type": {"text": {"detector": "LN detector", "escnn": "ESCNN", "marrow": "marrow"}[role]},
                    "version": [{"type": {"text": "model"}, "value": version}],
                }
            )
        if self.context.signer_id is not None:
            self.contained.append(
                {
                    "resourceType": "Practitioner",
                    "id": "signer",
                    "identifier": [{"system": USER_SYSTEM, "value": self.context.signer_id}],
                    "name": [{"text": self.context.signer_name or self.context.signer_id}],
                }
            )
        self.contained.append(_specimen(self.summary))

    def lymph_node_observations(self) -> None:
        summary = self.summary
        counts = summary.counts
        for obs_id, code, display, value in (
            ("ln-examined", "21894-1", "Regional lymph nodes examined [#] Specimen", summary.examined),
            ("ln-positive", "21893-3", "Regional lymph nodes positive [#] Specimen", summary.positive),
        ):
            self._observation(obs_id, _coded(LOINC, code, display), "detector")["valueInteger"] = value
        for obs_id, display, value in (
            ("ln-itc", "Lymph nodes with isolated tumour cells only (< 0.2 mm) [#]", counts.itc),
            ("ln-micro", "Lymph nodes with micrometastasis (0.2-2 mm) [#]", counts.micro),
            ("ln-macro", "Lymph nodes with macrometastasis (> 2 mm) [#]", counts.macro),
        ):
            self._observation(obs_id, _coded(OBSERVATION_SYSTEM, obs_id, display), "escnn")[
                "valueInteger"
            ] = value
        if summary.pn_category is not None:
            code, display = PN_SNOMED[summary.pn_category]
            pn = self._observation(
                "pn", _coded(LOINC, "21900-6", "Regional lymph nodes.pathology [Class] Cancer"), "escnn"
            )
            pn["valueCodeableConcept"] = _coded(SNOMED, code, display, f"p{summary.pn_category.value}")
            pn["method"] = _coded(SNOMED, *AJCC8_METHOD)
            if summary.below_ajcc_minimum:
                pn["note"] = [{"text": "Fewer than 15 regional lymph nodes examined (AJCC minimum)."}]
        for index, finding in enumerate(summary.lymph_nodes):
            self._ln(index, finding)

    def _ln(self, index: int, finding: LymphNodeFinding) -> None:
        observation = self._observation(
            f"ln-{index}",
            _coded(OBSERVATION_SYSTEM, "ln-metastasis", "Lymph node metastasis (ESCNN)"),
            "escnn",
        )
        observation["identifier"] = [
            {"system": LN_SYSTEM, "value": finding.ln_id},
            {"system": SLIDE_SYSTEM, "value": finding.slide_id},
        ]
        if finding.label is not None:
            positive = finding.label == LnLabel.POSITIVE
            observation["valueCodeableConcept"] = _coded(SNOMED, *LN_FINDING[positive])
            observation["interpretation"] = [
                _coded(INTERPRETATION, "POS" if positive else "NEG", "Positive" if positive else "Negative")
            ]
        else:
            observation["dataAbsentReason"] = _coded(
                "http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-performed", "Not Performed"
            )
        components: list[dict[str, Any]] = []
        if finding.score is not None:
            components.append(
                {
                    "code": _coded(OBSERVATION_SYSTEM, "escnn-probability", "ESCNN metastasis probability"),
                    "valueQuantity": _quantity(round(float(finding.score), 6), "1", "1"),
                }
            )
        if finding.deposit_mm is not None:
            components.append(
                {
                    "code": _coded(
                        OBSERVATION_SYSTEM, "largest-deposit", "Largest deposit, greatest dimension"
                    ),
                    "valueQuantity": _quantity(round(finding.deposit_mm, 3), "mm", "mm"),
                }
            )
        if finding.deposit_class is not None:
            components.append(
                {
                    "code": _coded(OBSERVATION_SYSTEM, "deposit-class", "Deposit size class (AJCC 8th)"),
                    "valueCodeableConcept": _coded(
                        OBSERVATION_SYSTEM, finding.deposit_class.value, CLASS_DISPLAY[finding.deposit_class]
                    ),
                }
            )
        if components:
            observation["component"] = components
        notes = []
        if finding.reviewed:
            notes.append("Set or confirmed by pathologist review.")
        if finding.deposit_measured_by == "model":
            notes.append("Deposit size measured from the model's lesion outline.")
        if notes:
            observation["note"] = [{"text": " ".join(notes)}]

    def marrow_observations(self) -> None:
        for index, finding in enumerate(self.summary.marrow):
            self._marrow(index, finding)

    def _marrow(self, index: int, finding: MarrowFinding) -> None:
        call = finding.case_call.value
        observation = self._observation(
            f"marrow-{index}",
            _coded(
                OBSERVATION_SYSTEM, "marrow-class", "Bone-marrow smear classification (MDS / AML / donor)"
            ),
            "marrow",
        )
        observation["identifier"] = [{"system": SLIDE_SYSTEM, "value": finding.slide_id}]
        observation["valueCodeableConcept"] = {
            "coding": [
                {"system": SNOMED, "code": MARROW_SNOMED[call][0], "display": MARROW_SNOMED[call][1]},
                {"system": MARROW_SYSTEM, "code": call, "display": MARROW_DISPLAY[call]},
            ],
            "text": MARROW_DISPLAY[call],
        }
        observation["component"] = [
            {
                "code": _coded(MARROW_SYSTEM, name, f"Probability of {name}"),
                "valueQuantity": _quantity(round(probability, 6), "1", "1"),
            }
            for name, probability in finding.probabilities
        ]
        observation["note"] = [{"text": f"Mean of {finding.roi_count} automatically proposed ROIs."}]


def _subject(summary: StudySummary) -> dict[str, Any] | None:
    if summary.order is None:
        return None
    identifier: dict[str, Any] = {"value": summary.order.patient_id}
    if summary.order.patient_id_system:
        identifier["system"] = summary.order.patient_id_system
    return {"type": "Patient", "identifier": identifier}


def _specimen(summary: StudySummary) -> dict[str, Any]:
    kinds = {s.specimen for s in summary.slides if s.specimen} or (
        {summary.order.specimen} if summary.order and summary.order.specimen else set()
    )
    specimen: dict[str, Any] = {
        "resourceType": "Specimen",
        "id": "specimen",
        "accessionIdentifier": {"system": ACCESSION_SYSTEM, "value": summary.study_id},
    }
    if summary.order is not None and summary.order.specimen_id:
        specimen["identifier"] = [{"system": ACCESSION_SYSTEM, "value": summary.order.specimen_id}]
    if len(kinds) == 1:
        specimen["type"] = _coded(SNOMED, *SPECIMEN_SNOMED[next(iter(kinds))])
    subject = _subject(summary)
    if subject is not None:
        specimen["subject"] = subject
    if summary.order is not None and summary.order.collected_at:
        specimen["collection"] = {"collectedDateTime": summary.order.collected_at}
    return specimen


def _ln_statement(summary: StudySummary) -> str:
    counts = summary.counts
    text = f"{summary.positive} of {summary.examined} regional lymph nodes positive"
    classes = [
        f"{n} {what}"
        for n, what in (
            (counts.macro, "with macrometastasis"),
            (counts.micro, "with micrometastasis"),
            (counts.itc, "with isolated tumour cells only (not counted)"),
            (counts.unmeasured, "positive with deposit size not measured"),
        )
        if n
    ]
    if classes:
        text += f" ({'; '.join(classes)})"
    if summary.pn_category is not None:
        text += f"; p{summary.pn_category.value} (AJCC 8th)"
    if summary.below_ajcc_minimum:
        text += "; fewer than 15 lymph nodes examined"
    return text


def conclusion(summary: StudySummary) -> str:
    """The report's one-paragraph conclusion (also the head of the human-readable summary)."""
    parts = []
    if summary.has_lymph_node_slides:
        parts.append(_ln_statement(summary))
    for finding in summary.marrow:
        call = finding.case_call.value
        probability = dict(finding.probabilities)[call]
        parts.append(f"bone marrow {finding.slide_id}: {MARROW_DISPLAY[call]} (p = {probability:.2f})")
    failed = [s.slide_id for s in summary.slides if s.status == "failed"]
    if failed:
        parts.append(f"failed slides: {', '.join(failed)}")
    parts.append(f"{summary.slides_complete} of {summary.slide_count} slides complete.")
    return "; ".join(parts)


def summary_text(summary: StudySummary, context: ReportContext) -> str:
    """The human-readable report (FHIR presentedForm, HL7 v2 narrative): plain text lines."""
    lines = [
        f"PathStream report, accession {summary.study_id}, version {context.version} ({context.status})",
        f"Issued {context.issued.isoformat()} by {context.lab_name}",
        "",
        conclusion(summary),
        "",
    ]
    for slide in summary.slides:
        line = f"Slide {slide.slide_id} ({slide.specimen or 'unknown specimen'}): {slide.status}"
        if slide.ln_count is not None:
            line += f", {slide.positive} positive / {slide.negative} negative / {slide.itc} ITC"
        lines.append(line)
    unmeasured = [ln.ln_id for ln in summary.lymph_nodes if ln.deposit_class == DepositClass.UNMEASURED]
    if unmeasured:
        lines.append(f"Positive nodes without a measured deposit (counted positive): {', '.join(unmeasured)}")
    if context.signer_id is not None:
        at = f" at {summary.signed_out_at}" if summary.signed_out_at else ""
        lines.append(f"Signed out by {context.signer_name or context.signer_id}{at}.")
    else:
        lines.append("Not yet signed out by a pathologist: computer-generated preliminary result.")
    for at, by, reason in context.amendments:
        lines.append(f"Amended {at} by {by}: {reason}")
    lines.append("Models: " + ", ".join(f"{role} {version}" for role, version in summary.models))
    return "\n".join(lines) + "\n"


def _conclusion_codes(summary: StudySummary) -> list[dict[str, Any]]:
    codes = []
    if summary.has_lymph_node_slides and summary.pn_category is not None:
        codes.append(_coded(SNOMED, *PN_SNOMED[summary.pn_category], f"p{summary.pn_category.value}"))
    for finding in summary.marrow:
        codes.append(_coded(SNOMED, *MARROW_SNOMED[finding.case_call.value]))
    return codes


def diagnostic_report(summary: StudySummary, context: ReportContext) -> dict[str, Any]:
    """Report version `context.version` of `summary` -> validated FHIR R4 DiagnosticReport JSON dict.

    Raises `pydantic.ValidationError` if the document is not a valid DiagnosticReport (a bug).
    """
    builder = _Builder(summary, context)
    builder.devices_and_parties()
    if summary.has_lymph_node_slides:
        builder.lymph_node_observations()
    builder.marrow_observations()
    identifiers: list[dict[str, Any]] = [
        {"system": STUDY_SYSTEM, "value": summary.study_id},
        {
            "type": _coded(V2_0203, "ACSN", "Accession ID"),
            "system": ACCESSION_SYSTEM,
            "value": summary.study_id,
        },
    ]
    document: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": report_resource_id(summary.study_id),
        "meta": {"versionId": str(context.version), "lastUpdated": builder.stamp},
        "identifier": identifiers,
        "status": context.status,
        "category": [_coded("http://terminology.hl7.org/CodeSystem/v2-0074", "SP", "Surgical Pathology")],
        "code": _coded(LOINC, "60567-5", "Comprehensive pathology report panel"),
        "issued": builder.stamp,
        "performer": [{"reference": "#lab", "display": context.lab_name}],
        "specimen": [{"reference": "#specimen"}],
        "contained": builder.contained,
        "result": [
            {"reference": f"#{r['id']}"} for r in builder.contained if r["resourceType"] == "Observation"
        ],
        "conclusion": conclusion(summary),
        "presentedForm": [
            {
                "contentType": "text/plain; charset=utf-8",
                "language": "en",
                "title": f"PathStream report {summary.study_id} v{context.version}",
                "data": base64.b64encode(summary_text(summary, context).encode()).decode(),
            }
        ],
    }
    subject = _subject(summary)
    if subject is not None:
        document["subject"] = subject
    if summary.effective_at:
        document["effectiveDateTime"] = summary.effective_at
    if summary.order is not None and summary.order.placer_order_number:
        document["basedOn"] = [
            {
                "type": "ServiceRequest",
                "identifier": {
                    "system": summary.order.placer_system or PLACER_SYSTEM,
                    "value": summary.order.placer_order_number,
                },
            }
        ]
    if context.signer_id is not None:
        document["resultsInterpreter"] = [
            {"reference": "#signer", "display": context.signer_name or context.signer_id}
        ]
    codes = _conclusion_codes(summary)
    if codes:
        document["conclusionCode"] = codes
    validated = DiagnosticReport.model_validate(document)
    return validated.model_dump(mode="json", exclude_none=True)
