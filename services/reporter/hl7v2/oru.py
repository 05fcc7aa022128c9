"""A report version's FHIR DiagnosticReport -> HL7 v2.5.1 ORU^R01 text, and reading the LIS's ACK.

The ORU says what the DiagnosticReport says, in the segments an LIS files:
- PID-3 the patient identifier from `subject.identifier` (PID is left out for a study without an
  order, which has no patient PathStream could name);
- ORC-2 / OBR-2 the placer number (`basedOn`), ORC-3 / OBR-3 the accession (filler number);
- OBR-4 LOINC 60567-5, OBR-7 `effectiveDateTime`, OBR-22 `issued`, OBR-25 the result status
  (partial -> A, preliminary -> P, final -> F, amended before sign-out -> P, amended or
  corrected after sign-out -> C), OBR-32 the signing pathologist;
- one OBX per contained Observation (OBX-4 sub-id = the Observation's id): NM with UCUM units for
  counts and quantities, CWE for coded values (LOINC `LN`, SNOMED CT `SCT`, PathStream's local
  codes `L`), OBX-17 the method, OBX-18 the model version from the Observation's Device, OBX-23 the
  laboratory; each Observation component is an OBX with sub-id `<id>.<n>`;
- a final FT OBX with the human-readable report (`presentedForm`).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from pathstream.services.reporter.hl7v2.er7 import component, escape, timestamp
from pathstream.services.reporter.hl7v2.orders import UnreadableMessage, read_message
from pathstream.shared.errors import ErrorCode, PathStreamError

HL7_VERSION = "2.5.1"
CODING_SYSTEMS = {
    "http://loinc.org": "LN",
    "http://snomed.info/sct": "SCT",
    "http://unitsofmeasure.org": "UCUM",
}
_OBR_STATUS = {"registered": "O", "partial": "A", "preliminary": "P", "final": "F"}
_OBX_STATUS = {"registered": "I", "preliminary": "P", "final": "F"}


def _system(uri: str | None) -> str:
    return CODING_SYSTEMS.get(uri or "", "L")


def _cwe(concept: dict[str, Any] | None) -> str:
    """A CodeableConcept -> CWE `code^text^system` (the first coding), or `^text` without codes."""
    if not concept:
        return ""
    codings = concept.get("coding") or []
    text = concept.get("text") or ""
    if not codings:
        return f"^{escape(text)}"
    first = codings[0]
    return "^".join(
        [escape(first.get("code", "")), escape(first.get("display") or text), _system(first.get("system"))]
    )


def _dtm(value: str | None) -> str:
    return timestamp(datetime.fromisoformat(value)) if value else ""


def _reference_id(reference: dict[str, Any] | None) -> str | None:
    ref = (reference or {}).get("reference") or ""
    return ref[1:] if ref.startswith("#") else None


def _signed(report: dict[str, Any]) -> bool:
    return bool(report.get("resultsInterpreter"))


def result_status(report: dict[str, Any]) -> str:
    """OBR-25 (HL7 table 0123) for a DiagnosticReport status (see the module docstring)."""
    status = report["status"]
    if status in ("amended", "corrected", "appended"):
        return "C" if _signed(report) else "P"
    return _OBR_STATUS.get(status, "P")


def _observation_status(report: dict[str, Any], status: str) -> str:
    if status in ("amended", "corrected"):
        return "C" if _signed(report) else "P"
    return _OBX_STATUS.get(status, "P")


class _OruBuilder:
    def __init__(self, report: dict[str, Any], lab_name: str, lab_id: str) -> None:
        self.report = report
        self.contained = {r["id"]: r for r in report.get("contained", [])}
        self.lab = f"{escape(lab_name)}^^^^^^^^^{escape(lab_id)}"
        self.segments: list[str] = []
        self.obx_count = 0

    def device_version(self, observation: dict[str, Any]) -> str:
        device = self.contained.get(_reference_id(observation.get("device")) or "")
        if not device:
            return ""
        version = (device.get("version") or [{}])[0].get("value", "")
        name = (device.get("deviceName") or [{}])[0].get("name", "")
        return f"{escape(version)}^{escape(name)}"

    def obx(
        self,
        value_type: str,
        code: str,
        sub_id: str,
        value: str,
        *,
        units: str = "",
        status: str,
        observed: str = "",
        method: str = "",
        equipment: str = "",
        interpretation: str = "",
    ) -> None:
        self.obx_count += 1
        fields = [
            "OBX",
            str(self.obx_count),
            value_type,
            code,
            escape(sub_id),
            value,
            units,
            "",
            interpretation,
            "",
            "",
            status,
            "",
            "",
            observed,
            "",
            "",
            method,
            equipment,
            _dtm(self.report.get("issued")),
            "",
            "",
            "",
            self.lab,
        ]
        self.segments.append("|".join(fields).rstrip("|"))

    def value(self, holder: dict[str, Any]) -> tuple[str, str, str] | None:
        """(value type, OBX-5, OBX-6) of an Observation or component's value[x], None when absent."""
        if "valueInteger" in holder:
            return "NM", str(holder["valueInteger"]), "1^^UCUM"
        if "valueQuantity" in holder:
            quantity = holder["valueQuantity"]
            unit = quantity.get("code") or quantity.get("unit") or ""
            return "NM", f"{quantity['value']}", f"{escape(unit)}^^{_system(quantity.get('system'))}"
        if "valueCodeableConcept" in holder:
            return "CWE", _cwe(holder["valueCodeableConcept"]), ""
        if "valueString" in holder:
            return "ST", escape(holder["valueString"]), ""
        return None

    def observation(self, observation: dict[str, Any]) -> None:
        status = _observation_status(self.report, observation.get("status", "preliminary"))
        observed = _dtm(observation.get("effectiveDateTime"))
        equipment = self.device_version(observation)
        method = _cwe(observation.get("method"))
        interpretation = ""
        if observation.get("interpretation"):
            interpretation = escape(observation["interpretation"][0]["coding"][0]["code"])
        value = self.value(observation)
        if value is None:
            # No value (e.g. a node not yet scored): an OBX saying the result could not be obtained.
            self.obx(
                "ST",
                _cwe(observation["code"]),
                observation["id"],
                "",
                status="X",
                observed=observed,
                equipment=equipment,
            )
        else:
            value_type, text, units = value
            self.obx(
                value_type,
                _cwe(observation["code"]),
                observation["id"],
                text,
                units=units,
                status=status,
                observed=observed,
                method=method,
                equipment=equipment,
                interpretation=interpretation,
            )
        for index, part in enumerate(observation.get("component") or [], start=1):
            part_value = self.value(part)
            if part_value is None:
                continue
            value_type, text, units = part_value
            self.obx(
                value_type,
                _cwe(part["code"]),
                f"{observation['id']}.{index}",
                text,
                units=units,
                status=status,
                observed=observed,
                equipment=equipment,
            )


def _identifier(report: dict[str, Any], type_code: str) -> str:
    for identifier in report.get("identifier") or []:
        codings = (identifier.get("type") or {}).get("coding") or []
        if any(c.get("code") == type_code for c in codings):
            return identifier.get("value", "")
    return ""


def _narrative(report: dict[str, Any]) -> str:
    forms = report.get("presentedForm") or []
    if not forms or "data" not in forms[0]:
        return report.get("conclusion", "")
    return base64.b64decode(forms[0]["data"]).decode("utf-8", errors="replace")


def oru_r01(
    report: dict[str, Any],
    *,
    sending_facility: str,
    receiving_application: str,
    receiving_facility: str,
    control_id: str,
    now: datetime,
) -> str:
    """A FHIR R4 DiagnosticReport JSON dict (as `services/reporter/fhir.py` builds it) -> HL7
    v2.5.1 ORU^R01 ER7 text (segments end in CR), MSH-10 = `control_id`, MSH-7 = `now`.

    The text is read back with hl7apy (groups resolved) before it is returned, so a message the
    LIS could not parse is a PathStreamError(INTERNAL) here rather than a rejection there.
    """
    lab = next((r for r in report.get("contained", []) if r["resourceType"] == "Organization"), {})
    lab_name = lab.get("name", "PathStream")
    lab_id = (lab.get("identifier") or [{}])[0].get("value", sending_facility)
    builder = _OruBuilder(report, lab_name, lab_id)
    segments = builder.segments
    segments.append(
        "|".join(
            [
                "MSH",
                "^~\\&",
                "PathStream",
                escape(sending_facility),
                escape(receiving_application),
                escape(receiving_facility),
                timestamp(now),
                "",
                "ORU^R01^ORU_R01",
                escape(control_id),
                "P",
                HL7_VERSION,
                "",
                "",
                "AL",
                "NE",
            ]
        )
    )
    subject = (report.get("subject") or {}).get("identifier")
    if subject:
        authority = escape(subject.get("system", ""))
        segments.append(f"PID|1||{escape(subject['value'])}^^^{authority}^MR||^^^^^^U")
    accession = _identifier(report, "ACSN")
    placer = ""
    if report.get("basedOn"):
        placer = escape(report["basedOn"][0].get("identifier", {}).get("value", ""))
    filler = f"{escape(accession)}^PathStream"
    placer_ei = f"{placer}^{escape(sending_facility)}" if placer else ""
    status = result_status(report)
    segments.append(f"ORC|RE|{placer_ei}|{filler}||{'CM' if status in ('F', 'C') else 'IP'}")
    interpreter = ""
    for entry in report.get("resultsInterpreter") or []:
        practitioner = builder.contained.get(_reference_id(entry) or "", {})
        signer_id = (practitioner.get("identifier") or [{}])[0].get("value", "")
        interpreter = f"{escape(signer_id)}&{escape(entry.get('display', ''))}"
    obr = [
        "OBR",
        "1",
        placer_ei,
        filler,
        _cwe(report["code"]),
        "",
        "",
        _dtm(report.get("effectiveDateTime")),
    ] + [""] * 14
    obr += [_dtm(report.get("issued")), "", "", status] + [""] * 6 + [interpreter]
    segments.append("|".join(obr).rstrip("|"))
    for resource in report.get("contained", []):
        if resource["resourceType"] == "Observation":
            builder.observation(resource)
    builder.obx(
        "FT",
        "60567-5^Comprehensive pathology report panel^LN",
        "report",
        escape(_narrative(report).rstrip("\n"), line_breaks=True),
        status=_observation_status(report, report["status"]),
    )
    text = "\r".join(segments) + "\r"
    try:
        parse_message(text, find_groups=True, validation_level=VALIDATION_LEVEL.TOLERANT)
    except HL7apyException as exc:
        raise PathStreamError(
            ErrorCode.INTERNAL, f"The ORU^R01 built for the LIS does not parse as HL7 v2.5.1: {exc}."
        ) from None
    return text


def parse_ack(text: str) -> tuple[str, str, str]:
    """An ACK's ER7 text -> (MSA-1 code, MSA-2 control id acknowledged, MSA-3 / ERR-8 text).

    Raises PathStreamError(LIS_REJECTED, retriable=True) when the answer is not an HL7 ACK.
    """
    try:
        message = read_message(text)
    except UnreadableMessage as exc:
        raise PathStreamError(
            ErrorCode.LIS_REJECTED,
            f"The LIS answered with something that is not HL7 v2: {exc.message}",
            retriable=True,
        ) from None
    enc = message.encoding_chars
    msas = [child for child in message.children if child.name == "MSA"]
    if not msas:
        raise PathStreamError(
            ErrorCode.LIS_REJECTED, "The LIS answered without an MSA segment.", retriable=True
        )
    msa = msas[0]
    errs = [child for child in message.children if child.name == "ERR"]
    detail = component(msa, 3, encoding=enc)
    if errs:
        detail = component(errs[0], 8, encoding=enc) or detail
    return component(msa, 1, encoding=enc).upper(), component(msa, 2, encoding=enc), detail
