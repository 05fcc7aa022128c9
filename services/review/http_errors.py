"""Refusals of the review service's HTTP layer that are not PathStream errors of the domain."""

from __future__ import annotations


class Unauthorised(Exception):
    """No valid credential (bearer token or session cookie): answered 401."""


class CsrfRefused(Exception):
    """A change sent with the session cookie but without the session's CSRF token, or cross-site: 403."""
