"""HL7 v2 in and out of the reporter: MLLP framing (mllp.py), orders in (orders.py: OML^O21,
OML^O33, ORM^O01 -> LabOrder, answered with an ACK) and results out (oru.py: ORU^R01 v2.5.1 from
a report version's FHIR DiagnosticReport). Messages are read with hl7apy."""
