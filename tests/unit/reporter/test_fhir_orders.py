"""FHIR R4 ServiceRequest -> LabOrder: what is read from where, and every refusal naming its cause.
The example request is also checked against HL7's R4 JSON schema."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from pathstream.services.reporter.orders.fhir_orders import (
    EXPECTED_SLIDE_ID,
    EXPECTED_SLIDES,
    SPECIMEN_KIND,
    parse_service_request,
)
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Specimen
from tests.fhir_schema import assert_fhir_r4_valid

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
REQUEST: dict[str, Any] = {
    "resourceType": "ServiceRequest",
    "id": "order-1",
    "status": "active",
    "intent": "order",
    "identifier": [
        {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "system": "urn:lab", "value": "ST-200"},
        {"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]}, "system": "urn:his", "value": "PO-5"},
    ],
    "subject": {"identifier": {"system": "urn:oid:1.2.3", "value": "MRN-7"}},
    "specimen": [{"identifier": {"value": "SP-9"}}],
    "authoredOn": "2026-12-01T09:00:00+01:00",
    "occurrenceDateTime": "2026-11-30",
    "requester": {"display": "Dr Surgeon"},
    "extension": [
        {"url": EXPECTED_SLIDE_ID, "valueString": "S-1"},
        {"url": EXPECTED_SLIDE_ID, "valueString": "S-2"},
        {"url": SPECIMEN_KIND, "valueCode": "lymph_node"},
    ],
}


def test_a_service_request_gives_accession_patient_placer_specimen_and_slides() -> None:
    assert_fhir_r4_valid(REQUEST)
    order = parse_service_request(copy.deepcopy(REQUEST))
    assert order.accession == "ST-200" and order.source == "fhir" and order.message_id == "order-1"
    assert (order.patient_id, order.patient_id_system) == ("MRN-7", "urn:oid:1.2.3")
    assert (order.placer_order_number, order.placer_system) == ("PO-5", "urn:his")
    assert order.specimen_id == "SP-9" and order.specimen == Specimen.LYMPH_NODE
    assert order.expected_slide_ids == ("S-1", "S-2") and order.expected_slide_count == 2
    assert order.ordered_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert order.collected_at == datetime(2026, 11, 30, tzinfo=UTC)
    assert order.ordering_provider == "Dr Surgeon"


def test_a_slide_count_alone_is_enough() -> None:
    request = copy.deepcopy(REQUEST)
    request["extension"] = [{"url": EXPECTED_SLIDES, "valueInteger": 3}]
    order = parse_service_request(request)
    assert order.expected_slide_count == 3 and order.expected_slide_ids == () and order.specimen is None


def _without(path: str) -> dict[str, Any]:
    request = copy.deepcopy(REQUEST)
    del request[path]
    return request


def _with(**changes: Any) -> dict[str, Any]:
    request = copy.deepcopy(REQUEST)
    request.update(changes)
    return request


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ([], "Expected a FHIR ServiceRequest"),
        ({"resourceType": "Patient"}, "Expected a FHIR ServiceRequest"),
        (_with(status="not-a-status"), "status 'not-a-status' is not one of"),
        (_with(intent=None), "not valid FHIR R4"),
        (_with(identifier=[REQUEST["identifier"][1]]), "no accession number"),
        (_with(identifier=[{**REQUEST["identifier"][0], "value": "a/b"}]), "accession number 'a/b'"),
        (_without("subject"), "subject: Field required"),
        (_with(subject={"reference": "Patient/1"}), "subject has no identifier"),
        (_with(status="revoked"), "does not cancel"),
        (
            _with(extension=[*REQUEST["extension"], {"url": EXPECTED_SLIDES, "valueInteger": 5}]),
            "expects 5 slides (extension expected-slides) but names 2",
        ),
        (_with(extension=[{"url": EXPECTED_SLIDES, "valueInteger": 0}]), "outside 1-500"),
        (_with(extension=[{"url": EXPECTED_SLIDE_ID, "valueString": "S-1"}] * 2), "same expected slide id"),
        (_with(extension=[{"url": EXPECTED_SLIDE_ID, "valueInteger": 1}]), "needs a valueString"),
        (_with(extension=[{"url": SPECIMEN_KIND, "valueCode": "liver"}]), "Specimen kind 'liver'"),
    ],
)
def test_an_unusable_request_is_refused_naming_the_problem(document: object, words: str) -> None:
    with pytest.raises(PathStreamError) as caught:
        parse_service_request(document)
    assert caught.value.code == ErrorCode.INVALID_ORDER
    assert words in caught.value.message and caught.value.hint
