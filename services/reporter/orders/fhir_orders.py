"""A FHIR R4 ServiceRequest (posted to the review API's POST /orders) -> `LabOrder`.

What PathStream reads from it:
- the accession number: the `identifier` whose type is v2-0203 `ACSN` (the study id);
- the placer order number: the `identifier` of type `PLAC` (optional);
- the patient: `subject.identifier` (value and system; a bare `subject.reference` names no
  identifier the report could send back, so it is refused);
- the specimen: `specimen[0].identifier`, and its kind (lymph_node / bone_marrow) from the
  extension `.../specimen-kind` (valueCode) when sent, else unknown until the slides say;
- the expected slides: extensions `.../expected-slides` (valueInteger) and one
  `.../expected-slide-id` (valueString) per slide;
- `authoredOn` (ordered at), `occurrenceDateTime` (collected at), `requester` (display or reference).

Every problem is an INVALID_ORDER naming the field and what to send instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from pathstream.services.reporter.orders.checks import checked_id, expected_slides, invalid_order
from pathstream.services.reporter.orders.model import LabOrder
from pathstream.shared.errors import PathStreamError
from pathstream.shared.events import Specimen

EXTENSION_BASE = "https://pathstream.org/fhir/StructureDefinition/"
EXPECTED_SLIDES = EXTENSION_BASE + "expected-slides"
EXPECTED_SLIDE_ID = EXTENSION_BASE + "expected-slide-id"
SPECIMEN_KIND = EXTENSION_BASE + "specimen-kind"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
REQUEST_STATUSES = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown")
_HINT = "Send a FHIR R4 ServiceRequest as described in the README (Reports: orders)."


def _invalid(message: str, hint: str = _HINT) -> PathStreamError:
    return invalid_order(message, hint)


def _checked_id(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise _invalid(f"The ServiceRequest has no {what}.")
    return checked_id(value.strip(), what, _HINT)


def _typed_identifier(request: ServiceRequest, code: str) -> Any | None:
    for identifier in request.identifier or []:
        codings = identifier.type.coding if identifier.type and identifier.type.coding else []
        if any(c.code == code and c.system in (None, V2_0203) for c in codings):
            return identifier
    return None


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    # A date without a time (FHIR allows it): midnight UTC.
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _expected_slides(request: ServiceRequest) -> tuple[tuple[str, ...], int | None]:
    ids: list[str] = []
    count: int | None = None
    for extension in request.extension or []:
        if extension.url == EXPECTED_SLIDE_ID:
            if extension.valueString is None:
                raise _invalid(f"Extension {EXPECTED_SLIDE_ID} needs a valueString (the slide id).")
            ids.append(_checked_id(extension.valueString, "expected slide id"))
        elif extension.url == EXPECTED_SLIDES:
            if extension.valueInteger is None:
                raise _invalid(f"Extension {EXPECTED_SLIDES} needs a valueInteger (the slide count).")
            count = int(extension.valueInteger)
    return expected_slides(ids, count, _HINT, count_name="extension expected-slides")


def _specimen_kind(request: ServiceRequest) -> Specimen | None:
    for extension in request.extension or []:
        if extension.url == SPECIMEN_KIND:
            value = extension.valueCode or extension.valueString
            try:
                return Specimen(value)
            except ValueError:
                kinds = ", ".join(s.value for s in Specimen)
                raise _invalid(f"Specimen kind {value!r} is unknown; use one of: {kinds}.") from None
    return None


def parse_service_request(document: object) -> LabOrder:
    """A decoded JSON body (a FHIR R4 ServiceRequest) -> `LabOrder` (source "fhir").

    Raises PathStreamError(INVALID_ORDER) naming the problem when the document is not a valid
    ServiceRequest or lacks the accession (identifier type ACSN) or the patient identifier.
    """
    if not isinstance(document, dict) or document.get("resourceType") != "ServiceRequest":
        kind = document.get("resourceType") if isinstance(document, dict) else type(document).__name__
        raise _invalid(f"Expected a FHIR ServiceRequest, got {kind!r}.")
    try:
        request = ServiceRequest.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'ServiceRequest'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise _invalid(f"The ServiceRequest is not valid FHIR R4: {problems}.") from None
    if request.status not in REQUEST_STATUSES:
        # fhir.resources types `status` as a code without its value set; the schema has it.
        raise _invalid(
            f"The ServiceRequest status {request.status!r} is not one of {', '.join(REQUEST_STATUSES)}."
        )
    if request.status in ("revoked", "entered-in-error"):
        raise _invalid(
            f"The ServiceRequest has status {request.status!r}; PathStream does not cancel studies.",
            hint="Cancel the study in the laboratory system; PathStream keeps what it received.",
        )
    accession = _typed_identifier(request, "ACSN")
    if accession is None:
        raise _invalid(
            "The ServiceRequest has no accession number (an identifier with type "
            f"{V2_0203}|ACSN); it is the study id the slides are filed under."
        )
    study_id = _checked_id(accession.value, "accession number")
    subject = request.subject
    if subject is None or subject.identifier is None or not subject.identifier.value:
        raise _invalid(
            "The ServiceRequest's subject has no identifier (subject.identifier.value); "
            "the report must name the patient the hospital knows."
        )
    placer = _typed_identifier(request, "PLAC")
    specimen_id = None
    if request.specimen:
        first = request.specimen[0]
        if first.identifier is not None and first.identifier.value:
            specimen_id = first.identifier.value.strip()[:200]
    expected_ids, expected_count = _expected_slides(request)
    requester = None
    if request.requester is not None:
        requester = request.requester.display or request.requester.reference
    return LabOrder(
        accession=study_id,
        patient_id=subject.identifier.value.strip()[:200],
        patient_id_system=subject.identifier.system,
        placer_order_number=placer.value.strip()[:200] if placer is not None and placer.value else None,
        placer_system=placer.system if placer is not None else None,
        specimen_id=specimen_id,
        specimen=_specimen_kind(request),
        expected_slide_ids=expected_ids,
        expected_slide_count=expected_count,
        ordered_at=_utc(request.authoredOn),
        collected_at=_utc(request.occurrenceDateTime),
        ordering_provider=requester[:200] if requester else None,
        source="fhir",
        message_id=request.id,
    )
