"""Fixtures shared by integration tests of several modules."""

from tests.integration.detector_cohort import trained_detector

__all__ = ["trained_detector"]
