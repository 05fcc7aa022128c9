"""Laboratory orders: what they hold (model.py), how they arrive (HL7 v2: ../hl7v2/orders.py, FHIR
ServiceRequest: fhir_orders.py) and how they open or complete a study (intake.py)."""
