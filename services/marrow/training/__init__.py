"""Marrow training: cross-validated, tuned MDS / AML / donor classifiers (`pathstream train marrow`)."""
