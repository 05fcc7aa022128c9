"""Reporter service: LN counts, AJCC pN category, PostgreSQL reports, FHIR R4 output and
pathologist amendments (consumes slides.detected, ln.scored, marrow.classified, slides.failed)."""
