"""Logs are JSON lines with the bound ids; patient identifiers never reach the output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pathstream.shared.logs import REDACTED, bound_ids, configure_logging, context_ids, get_logger
from tests.samples import ln_scored


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    import faststream  # noqa: F401 - it installs its own handler on import

    buffer = io.StringIO()
    configure_logging("INFO", "json", buffer)
    yield buffer
    configure_logging("WARNING", "console")


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_bound_ids_appear_on_every_line_inside_the_block(stream: io.StringIO) -> None:
    event = ln_scored()
    log = get_logger("test")
    with bound_ids(event):
        log.info("scoring_started", tile_size=4096)
        logging.getLogger("faststream").warning("library line")
    log.info("after")

    first, library, after = _lines(stream)
    for line in (first, library):
        assert line["event_id"] == str(event.event_id)
        assert line["slide_id"] == "S-001"
        assert line["study_id"] == "ST-001"
        assert line["ln_id"] == "S-001-ln000"
        assert "timestamp" in line and "level" in line
    assert first["event"] == "scoring_started" and first["tile_size"] == 4096
    assert library["event"] == "library line" and library["logger"] == "faststream"
    assert "slide_id" not in after


def test_patient_identifiers_are_redacted(stream: io.StringIO) -> None:
    get_logger("test").warning("bad caller", patient_name="Jane Doe", MRN="12345", slide_id="S-9")
    logging.getLogger("lib").error("from a library", extra={"date_of_birth": "1950-01-01"})
    text = stream.getvalue()
    assert "Jane Doe" not in text and "12345" not in text and "1950-01-01" not in text
    first, second = _lines(stream)
    assert first["patient_name"] == REDACTED and first["MRN"] == REDACTED
    assert first["slide_id"] == "S-9"
    assert second["date_of_birth"] == REDACTED


def test_context_ids_only_takes_the_known_ids() -> None:
    ids = context_ids({"slide_id": "S-1", "study_id": "ST-1", "patient_name": "x", "contour": [1]})
    assert ids == {"slide_id": "S-1", "study_id": "ST-1"}


def test_exceptions_are_structured_without_local_variables(stream: io.StringIO) -> None:
    password = "Zq7pW0rd"  # a local that must not be rendered
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("test").exception("failed", length=len(password))
    (line,) = _lines(stream)
    assert line["exception"][0]["exc_type"] == "ValueError"
    assert line["exception"][0]["frames"], "the stack is kept"
    assert password not in stream.getvalue()
