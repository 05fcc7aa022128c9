"""The FHIR R4 schema check (tests/fhir_schema.py) passes valid resources and catches invalid ones.

Other tests lean on `assert_fhir_r4_valid` to prove PathStream's FHIR is R4; these show the check is
HL7's schema really applied (enumerations, required elements, no unknown elements, JSON types), in
contained resources and Bundle entries too, so a pass there means something.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.fhir_schema import assert_fhir_r4_valid, fhir_r4_errors, fhir_r4_schema_path

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "ln-examined",
    "status": "final",
    "code": {"text": "Lymph nodes examined"},
    "valueQuantity": {"value": 12, "unit": "nodes"},
}
REPORT: dict[str, Any] = {
    "resourceType": "DiagnosticReport",
    "id": "report-1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "60567-5"}]},
    "subject": {"reference": "Patient/p1"},
    "issued": "2026-11-23T12:00:00+00:00",
    "contained": [OBSERVATION],
    "result": [{"reference": "#ln-examined"}],
    "conclusion": "No metastasis.",
}


def report(**changes: Any) -> dict[str, Any]:
    """A copy of the valid report with top-level elements replaced (None removes one)."""
    document = copy.deepcopy(REPORT)
    for name, value in changes.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def test_the_schema_is_hl7s_r4_json_schema() -> None:
    path = fhir_r4_schema_path()
    assert path.is_absolute() and path.name == "fhir.schema.json"
    head = path.read_text(encoding="utf-8")[:400]
    assert '"http://hl7.org/fhir/json-schema/4.0"' in head and "draft-06" in head


def test_minimal_valid_resources_pass() -> None:
    assert_fhir_r4_valid({"resourceType": "Patient", "id": "p1"})
    assert_fhir_r4_valid(
        {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "Pathology"}}
    )
    assert_fhir_r4_valid(REPORT)
    assert fhir_r4_errors(REPORT) == []


def test_a_status_outside_the_value_set_fails() -> None:
    errors = fhir_r4_errors(report(status="bogus"))
    assert len(errors) == 1 and errors[0].startswith("$.status: 'bogus' is not one of")
    with pytest.raises(AssertionError, match=r"(?s)DiagnosticReport .*\$\.status: 'bogus'"):
        assert_fhir_r4_valid(report(status="bogus"))


def test_a_missing_required_code_fails() -> None:
    assert fhir_r4_errors(report(code=None)) == ["$: 'code' is a required property"]


def test_an_unknown_element_fails() -> None:
    errors = fhir_r4_errors(report(pathstreamScore=0.9))
    assert errors == ["$: Additional properties are not allowed ('pathstreamScore' was unexpected)"]


def test_a_wrong_json_type_in_a_contained_resource_fails() -> None:
    observation = copy.deepcopy(OBSERVATION)
    observation["valueQuantity"]["value"] = "12"  # a decimal is a JSON number, not a string
    errors = fhir_r4_errors(report(contained=[observation]))
    assert errors == ["$.contained[0].valueQuantity.value: '12' is not of type 'number'"]


def test_contained_resources_are_checked_against_their_own_type() -> None:
    unknown = {"resourceType": "Pathology", "id": "x"}
    untyped = {"id": "y", "status": "final"}
    bad_status = dict(OBSERVATION, status="done")
    errors = fhir_r4_errors(report(contained=[unknown, untyped, bad_status]))
    assert errors[0] == "$.contained[0]: resourceType 'Pathology' is not a FHIR R4 resource type"
    assert errors[1].startswith("$.contained[1]: 'resourceType' is a required property")
    assert errors[2].startswith("$.contained[2].status: 'done' is not one of")
    assert len(errors) == 3


def test_bundle_entries_are_checked() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": REPORT}, {"resource": {"resourceType": "Patient", "id": "p1"}}],
    }
    assert_fhir_r4_valid(bundle)
    bundle["entry"][1]["resource"]["gender"] = "f"
    assert fhir_r4_errors(bundle) == [
        "$.entry[1].resource.gender: 'f' is not one of ['male', 'female', 'other', 'unknown']"
    ]


def test_the_assertion_lists_at_most_twenty_errors() -> None:
    document = report(**{f"extra{i}": i for i in range(25)})
    with pytest.raises(AssertionError) as raised:
        assert_fhir_r4_valid(document)
    message = str(raised.value)
    assert "DiagnosticReport" in message and "(1 error)" in message  # one error names all 25 extras
    many = report(contained=[dict(OBSERVATION, id=f"o{i}", status="bogus") for i in range(25)])
    with pytest.raises(AssertionError) as raised:
        assert_fhir_r4_valid(many)
    message = str(raised.value)
    assert "(25 errors)" in message and "... and 5 more" in message
    assert message.count("is not one of") == 20
