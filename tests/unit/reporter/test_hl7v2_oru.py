"""ORU^R01 built from a report version's FHIR DiagnosticReport, checked with python-hl7 (a parser
that did not write it), and the LIS's ACKs read back."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import hl7
import pytest

from pathstream.services.reporter.fhir import diagnostic_report
from pathstream.services.reporter.hl7v2.oru import oru_r01, parse_ack
from pathstream.services.reporter.summary import summarise
from pathstream.shared.db.models import SlideStatus
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import LnLabel
from tests.report_fixtures import ORDER, ln_finding, report_context, study_inputs

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _report(status: str = "final", *, order: bool = True, signed: bool = True) -> dict[str, object]:
    nodes = [ln_finding("A", 0, LnLabel.POSITIVE, 2.5), ln_finding("A", 1, LnLabel.NEGATIVE)]
    nodes.append(ln_finding("A", 2, None))  # not yet scored
    other = [ln_finding("B", 0, LnLabel.POSITIVE, 0.1)]  # isolated tumour cells only
    summary = summarise(
        study_inputs(
            ("A", SlideStatus.COMPLETE, nodes),
            ("B", SlideStatus.COMPLETE, other),
            order=ORDER if order else None,
        )
    )
    signer = {"signer_id": "drx", "signer_name": "Dr X^Y|Z"} if signed else {}
    return diagnostic_report(summary, report_context(4, status, **signer))  # type: ignore[arg-type]


def _oru(report: dict[str, object]) -> hl7.Message:
    text = oru_r01(
        report,
        sending_facility="LAB-1",
        receiving_application="LIS",
        receiving_facility="HOSP",
        control_id="c0ffee.4",
        now=NOW,
    )
    assert text.endswith("\r") and "\n" not in text
    return hl7.parse(text)


def _obx(message: hl7.Message) -> dict[str, hl7.Segment]:
    return {str(segment[4]): segment for segment in message.segments("OBX")}


def test_a_final_report_becomes_an_oru_with_patient_order_and_coded_results() -> None:
    report = _report()
    message = _oru(report)
    msh = message.segment("MSH")
    assert str(msh[9]) == "ORU^R01^ORU_R01" and str(msh[10]) == "c0ffee.4" and str(msh[12]) == "2.5.1"
    assert (str(msh[4]), str(msh[5]), str(msh[6])) == ("LAB-1", "LIS", "HOSP")
    assert str(msh[7]) == "20261203100000+0000"
    assert str(message.segment("PID")[3][0][0]) == "MRN-0042"
    assert str(message.segment("PID")[3][0][3]) == "urn:oid:1.2.3.4"
    obr = message.segment("OBR")
    assert str(obr[2][0][0]) == "PO-77" and str(obr[3][0][0]) == "ST-1"
    assert str(obr[4][0][0]) == "60567-5" and str(obr[4][0][2]) == "LN"
    assert str(obr[7]) == "20261120073000+0000"  # effective = collection time
    assert str(obr[25]) == "F" and str(obr[32]).startswith("drx&")
    obx = _obx(message)
    examined, positive = obx["ln-examined"], obx["ln-positive"]
    # examined: the 3 scored nodes (the unscored one is not yet examined)
    assert (str(examined[2]), str(examined[3][0][0]), str(examined[5])) == ("NM", "21894-1", "3")
    assert (str(positive[3][0][0]), str(positive[5])) == ("21893-3", "1")  # the ITC node is not counted
    assert str(obx["ln-itc"][5]) == "1" and str(obx["ln-macro"][5]) == "1"
    assert str(examined[6][0][0]) == "1" and str(examined[6][0][2]) == "UCUM"
    pn = obx["pn"]
    assert str(pn[2]) == "CWE" and str(pn[3][0][0]) == "21900-6"
    assert (str(pn[5][0][0]), str(pn[5][0][2])) == ("1229951001", "SCT")  # pN1
    assert str(pn[17][0][0]) == "897275008"
    assert {str(s[11]) for s in message.segments("OBX")} <= {"F", "X"}
    assert str(obx["ln-2"][11]) == "X"  # the unscored node: no result
    assert str(obx["ln-0.2"][5]) == "2.5" and str(obx["ln-0.2"][6][0][0]) == "mm"
    assert str(obx["ln-0"][18][0][0]) == "escnn@sha256:ab"  # the model version
    assert str(obx["ln-examined"][18][0][0]) == "detector@sha256:cd"
    assert str(obx["ln-0"][23][0][0]) == "City Pathology"
    contained = [r for r in report["contained"] if r["resourceType"] == "Observation"]  # type: ignore[index,union-attr]
    components = sum(len(r.get("component", [])) for r in contained)
    assert len(message.segments("OBX")) == len(contained) + components + 1
    assert [int(str(s[1])) for s in message.segments("OBX")] == list(range(1, len(obx) + 1))


def test_the_narrative_travels_as_formatted_text_with_delimiters_escaped() -> None:
    report = _report()
    message = _oru(report)
    narrative = _obx(message)["report"]
    assert str(narrative[2]) == "FT"
    text = str(narrative[5])
    expected = base64.b64decode(report["presentedForm"][0]["data"]).decode()  # type: ignore[index]
    assert "\\.br\\" in text and "Dr X\\S\\Y\\F\\Z" in text  # '^' and '|' escaped, not splitting fields
    assert text.replace("\\.br\\", "\n").replace("\\S\\", "^").replace("\\F\\", "|") == expected.rstrip("\n")


@pytest.mark.parametrize(
    ("status", "signed", "obr25", "obx11"),
    [
        ("partial", False, "A", "P"),
        ("preliminary", False, "P", "P"),
        ("amended", False, "P", "P"),  # a review change before sign-out: still preliminary
        ("amended", True, "C", "C"),
        ("corrected", True, "C", "C"),
    ],
)
def test_result_status_follows_the_report_lifecycle(
    status: str, signed: bool, obr25: str, obx11: str
) -> None:
    message = _oru(_report(status, signed=signed))
    assert str(message.segment("OBR")[25]) == obr25
    assert str(_obx(message)["ln-examined"][11]) == obx11


def test_a_study_without_an_order_has_no_patient_segment() -> None:
    message = _oru(_report("preliminary", order=False, signed=False))
    assert [str(s[0]) for s in message][:3] == ["MSH", "ORC", "OBR"]
    assert str(message.segment("OBR")[2]) == ""


def test_acks_are_read_with_code_control_id_and_text() -> None:
    base = "MSH|^~\\&|LIS|HOSP|PathStream|LAB|20261203||ACK^R01^ACK|A1|P|2.5.1\r"
    assert parse_ack(base + "MSA|AA|c0ffee.4|filed\r") == ("AA", "c0ffee.4", "filed")
    rejected = base + "MSA|AE|c0ffee.4|no\rERR|||207^x^HL70357|E||||Unknown patient MRN-0042\r"
    assert parse_ack(rejected) == ("AE", "c0ffee.4", "Unknown patient MRN-0042")
    with pytest.raises(PathStreamError) as caught:
        parse_ack("HTTP/1.1 400 Bad Request")
    assert caught.value.code == ErrorCode.LIS_REJECTED and caught.value.retriable
    with pytest.raises(PathStreamError):
        parse_ack(base)
