"""HL7 v2 orders (OML^O21, OML^O33, ORM^O01) -> LabOrder, and the ACKs that answer them, read
back with python-hl7 (a parser that did not write them)."""

from __future__ import annotations

from datetime import UTC, datetime

import hl7
import pytest

from pathstream.services.reporter.hl7v2.orders import UnreadableMessage, order_ack, parse_order_message
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Specimen

MSH = "MSH|^~\\&|HIS|HOSP|PATHSTREAM|LAB|20261203101010||{type}|MSG-1|P|{version}"
PID = "PID|1||MRN-0042^^^HOSP^MR||Doe^Jane"
ORC = "ORC|NW|PO-77^HIS|ST-100^LAB||||||20261203090000|||D1^Surgeon^Sam"
OBR = "OBR|1|PO-77^HIS|ST-100^LAB|60567-5^Pathology report^LN|||20261202073000+0100"


def _message(*segments: str, kind: str = "OML^O21^OML_O21", version: str = "2.5.1", sep: str = "\r") -> str:
    return sep.join([MSH.format(type=kind, version=version), *segments]) + sep


def test_an_oml_o21_gives_accession_patient_placer_times_and_slide_count() -> None:
    order = parse_order_message(
        _message(
            PID,
            ORC,
            OBR,
            "OBX|1|NM|PATHSTREAM-SLIDES^Expected slides^L||4",
            "SPM|1|SP-1^HIS||258589002^LN^SCT",
        )
    )
    assert order.accession == "ST-100" and order.patient_id == "MRN-0042"
    assert order.patient_id_system == "HOSP"
    assert (order.placer_order_number, order.placer_system) == ("PO-77", "HIS")
    assert order.expected_slide_count == 4 and order.expected_slide_ids == ()
    assert order.specimen == Specimen.LYMPH_NODE and order.specimen_id == "SP-1"
    assert order.ordered_at == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert order.collected_at == datetime(2026, 12, 2, 6, 30, tzinfo=UTC)  # +0100 -> UTC
    assert order.ordering_provider == "D1^Surgeon^Sam"
    assert order.message_id == "MSG-1" and order.source == "hl7v2"


def test_an_oml_o33_names_slides_by_obx_and_sac_and_takes_lf_separators() -> None:
    text = _message(
        PID,
        "ORC|NW|PO-9|ST-101",
        "SPM|1|SP-2||119359002^Bone marrow^SCT|||||||||||||20261201080000",
        "SAC|||BM-1",
        "OBR|1|PO-9|ST-101|60567-5^Pathology report^LN",
        "OBX|1|ST|PATHSTREAM-SLIDE^Slide^L||BM-2",
        kind="OML^O33^OML_O33",
        sep="\n",
    )
    order = parse_order_message(text)
    assert order.expected_slide_ids == ("BM-2", "BM-1") and order.expected_slide_count == 2
    assert order.specimen == Specimen.BONE_MARROW
    assert order.collected_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_an_orm_o01_in_v2_3_without_filler_number_uses_the_placer_number() -> None:
    order = parse_order_message(
        _message(PID, "ORC|NW|ACC-7", "OBR|1|ACC-7||88305^Surgical path^CPT4", kind="ORM^O01", version="2.3")
    )
    assert order.accession == "ACC-7" and order.placer_order_number == "ACC-7"


@pytest.mark.parametrize(
    ("segments", "words"),
    [
        ((ORC, OBR), "patient identifier (PID-3)"),
        ((PID, "ORC|NW|PO-1|ST-1", "OBR|1|PO-2|ST-2"), "2 accessions"),
        (
            (PID, ORC, OBR, "OBX|1|NM|PATHSTREAM-SLIDES||2", "OBX|2|ST|PATHSTREAM-SLIDE||A"),
            "expects 2 slides",
        ),
        ((PID, ORC, OBR, "OBX|1|NM|PATHSTREAM-SLIDES||many"), "not a slide count"),
        ((PID, ORC, OBR, "OBX|1|ST|PATHSTREAM-SLIDE||../etc"), "expected slide id"),
        ((PID, "ORC|CA|PO-77|ST-100"), "cancel"),
        ((PID, "ORC|NW|PO-77|bad accession"), "accession number"),
        ((PID,), "neither an ORC nor an OBR"),
        ((PID, "ORC|NW|PO-77|ST-100||||||bogus-time"), "Ordered at"),
    ],
)
def test_an_invalid_order_is_refused_naming_the_problem_and_answered_ae(
    segments: tuple[str, ...], words: str
) -> None:
    text = _message(*segments)
    with pytest.raises(PathStreamError) as caught:
        parse_order_message(text)
    assert caught.value.code == ErrorCode.INVALID_ORDER and words in caught.value.message
    assert not isinstance(caught.value, UnreadableMessage)
    ack = hl7.parse(order_ack(text, caught.value))
    assert str(ack.segment("MSA")[1]) == "AE" and str(ack.segment("MSA")[2]) == "MSG-1"
    assert words.split()[0] in str(ack.segment("ERR")[8])


@pytest.mark.parametrize(
    "text",
    ["", "hello, LIS", "PID|1||X", _message(PID, kind="ADT^A01^ADT_A01"), _message(PID, version="9.9")],
)
def test_unreadable_text_or_another_message_type_is_answered_ar(text: str) -> None:
    with pytest.raises(UnreadableMessage) as caught:
        parse_order_message(text)
    ack = hl7.parse(order_ack(text, caught.value))
    assert str(ack.segment("MSA")[1]) == "AR"


def test_a_stored_order_is_answered_aa_addressed_back_to_the_sender() -> None:
    text = _message(PID, ORC, OBR)
    ack = hl7.parse(order_ack(text, None, now=datetime(2026, 12, 3, tzinfo=UTC)))
    msh = ack.segment("MSH")
    assert (str(msh[3]), str(msh[5]), str(msh[6])) == ("PATHSTREAM", "HIS", "HOSP")
    assert str(msh[9]) == "ACK^O21^ACK" and str(msh[12]) == "2.5.1"
    assert str(ack.segment("MSA")[1]) == "AA" and str(ack.segment("MSA")[2]) == "MSG-1"


def test_a_conflicting_order_is_answered_ae_with_the_duplicate_key_code() -> None:
    text = _message(PID, ORC, OBR)
    error = PathStreamError(ErrorCode.ORDER_CONFLICT, "ST-100 belongs to another patient|really")
    ack = hl7.parse(order_ack(text, error))
    assert str(ack.segment("MSA")[1]) == "AE"
    assert str(ack.segment("ERR")[3]).startswith("205")
    assert "another patient" in str(ack.segment("ERR")[8])  # the '|' travelled escaped
    assert len(ack.segment("ERR")) == 9
