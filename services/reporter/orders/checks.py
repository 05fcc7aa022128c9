"""The checks every order passes, whichever way it arrived (HL7 v2 or FHIR): usable ids and an
expected slide set that is bounded and says one thing. Each failure is an INVALID_ORDER."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events.base import Identifier

MAX_EXPECTED_SLIDES = 500
_IDENTIFIER = TypeAdapter(Identifier)


def invalid_order(message: str, hint: str) -> PathStreamError:
    """An INVALID_ORDER error naming the problem (`message`) and what to send instead (`hint`)."""
    return PathStreamError(ErrorCode.INVALID_ORDER, message, hint=hint)


def checked_id(value: str, what: str, hint: str) -> str:
    """`value` as a PathStream id (accession, slide id); INVALID_ORDER naming `what` otherwise."""
    try:
        return _IDENTIFIER.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise invalid_order(f"The {what} {value!r} is not usable: {reason}.", hint) from None


def expected_slides(
    ids: Sequence[str], count: int | None, hint: str, *, count_name: str = "slide count"
) -> tuple[tuple[str, ...], int | None]:
    """The order's expected slide ids (checked, each once) and count -> (ids, count), count = len(ids)
    when only ids are given. Refuses a count outside 1-500, more than 500 ids, a repeated id, and a
    count that disagrees with the ids (`count_name` says where the count came from)."""
    if len(set(ids)) != len(ids):
        raise invalid_order("The order names the same expected slide id twice.", hint)
    if count is not None and not 1 <= count <= MAX_EXPECTED_SLIDES:
        raise invalid_order(f"The expected slide count {count} is outside 1-{MAX_EXPECTED_SLIDES}.", hint)
    if len(ids) > MAX_EXPECTED_SLIDES:
        raise invalid_order(f"The order names {len(ids)} slides; at most {MAX_EXPECTED_SLIDES}.", hint)
    if count is not None and ids and count != len(ids):
        raise invalid_order(
            f"The order expects {count} slides ({count_name}) but names {len(ids)} slide ids.",
            "Send either the count or the ids, or make them agree.",
        )
    return tuple(ids), count if count is not None else (len(ids) or None)
