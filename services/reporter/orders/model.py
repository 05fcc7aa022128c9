"""A laboratory order as PathStream keeps it, whichever way it arrived (HL7 v2 or FHIR ServiceRequest).

The order opens a study: its accession number *is* the study id the slides are filed under (the
scanner bridge and `pathstream run --study` use the same number). The patient identifier is kept
only because the report sent back must name the patient (FHIR `subject`, HL7 v2 PID-3); it is never
logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pathstream.shared.events import Specimen

OrderSource = Literal["hl7v2", "fhir"]


@dataclass(frozen=True)
class LabOrder:
    """One order for a study's slides, parsed and checked (see `services/reporter/orders/`)."""

    accession: str
    """Accession number = PathStream study id (HL7 v2 OBR-3 / ORC-3 filler number, else OBR-2 /
    ORC-2; FHIR ServiceRequest.identifier of type ACSN)."""
    patient_id: str
    """The patient's identifier in the hospital (HL7 v2 PID-3.1; FHIR subject.identifier.value)."""
    patient_id_system: str | None = None
    """Who assigned it (PID-3.4 assigning authority; FHIR subject.identifier.system)."""
    placer_order_number: str | None = None
    """The ordering system's number (ORC-2 / OBR-2; FHIR identifier of type PLAC)."""
    specimen_id: str | None = None
    """The specimen's id (SPM-2 / OBR-15 or OBR-3; FHIR specimen.identifier)."""
    specimen: Specimen | None = None
    """Lymph-node resection or bone-marrow smear, when the order says (SPM-4 / OBR-15 text / code)."""
    expected_slide_ids: tuple[str, ...] = ()
    """Slide ids the laboratory will scan for the order, when it names them."""
    expected_slide_count: int | None = None
    """How many slides the order expects (len(expected_slide_ids) when ids are named)."""
    ordered_at: datetime | None = None
    """When it was ordered (ORC-9 / OBR-6; FHIR authoredOn), UTC."""
    collected_at: datetime | None = None
    """Specimen collection time (SPM-17 / OBR-7; FHIR occurrenceDateTime), UTC: the report's effective."""
    ordering_provider: str | None = None
    """ORC-12 / OBR-16 (id^family^given as text); FHIR requester display or reference."""
    source: OrderSource = "hl7v2"
    message_id: str | None = None
    """HL7 MSH-10 control id, or the ServiceRequest's id."""
    placer_system: str | None = field(default=None)
    """The namespace of the placer number (ORC-2.2 / FHIR identifier.system)."""
