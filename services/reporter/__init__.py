"""Reporter service: LN counts, AJCC pN category, report versions in PostgreSQL and FHIR R4 output
(consumes slides.detected, ln.scored, marrow.classified, slides.failed). Its persistence is `store/`;
pathologists' amendments come through the review service (`services/review/`)."""
