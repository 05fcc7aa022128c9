"""Structured logs: one JSON object per line, with slide_id / study_id / event_id bound.

Every library that logs through the standard `logging` module (FastStream, aiokafka, Alembic) is
routed through the same renderer, so an operator's log shipper sees one format. Logs carry ids only:
keys that would hold patient identifiers are redacted before rendering, whoever logged them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor

CONTEXT_KEYS = ("event_id", "slide_id", "study_id", "ln_id")
"""The ids a log line may be tied to; nothing else about a patient or case is ever bound."""

REDACTED = "[redacted]"
_OWN_HANDLER_LOGGERS = ("faststream",)
_IDENTIFYING_KEYS = frozenset(
    {
        "patient",
        "patient_name",
        "patient_id",
        "name_of_patient",
        "mrn",
        "medical_record_number",
        "birth_date",
        "date_of_birth",
        "dob",
        "address",
        "phone",
        "email",
        "ssn",
        "social_security_number",
        "national_id",
        "insurance_number",
    }
)


# Frames only, no local variables: locals can hold message bodies and credentials.
_json_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def redact_identifiers(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace the value of any patient-identifying key with `[redacted]`."""
    for key in event_dict:
        if key.lower() in _IDENTIFYING_KEYS:
            event_dict[key] = REDACTED
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route structlog and standard-library logging to `stream` (default stderr) as JSON lines.

    `fmt="console"` renders the same events human-readably for a developer's terminal.
    Safe to call more than once; the last call wins.
    """
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_identifiers,
    ]
    renderer: Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _json_tracebacks if fmt == "json" else structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # FastStream gives its app logger a private coloured handler; fold it into the JSON stream.
    for name in _OWN_HANDLER_LOGGERS:
        own = logging.getLogger(name)
        for old in list(own.handlers):
            own.removeHandler(old)
        own.propagate = True
    # aiokafka reports every reconnect attempt at INFO/ERROR; keep its chatter at WARNING.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # tifffile warns about every broken offset while we classify damaged slides on purpose.
    logging.getLogger("tifffile").setLevel(logging.ERROR)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger named `name` (conventionally the module's `__name__`)."""
    return structlog.stdlib.get_logger(name)


def context_ids(source: Mapping[str, Any] | object) -> dict[str, str]:
    """Return the log-context ids (event_id, slide_id, study_id, ln_id) found in an event or dict."""
    ids: dict[str, str] = {}
    for key in CONTEXT_KEYS:
        value = source.get(key) if isinstance(source, Mapping) else getattr(source, key, None)
        if value is not None and not isinstance(value, (dict, list)):
            ids[key] = str(value)
    return ids


@contextmanager
def bound_ids(source: Mapping[str, Any] | object) -> Iterator[dict[str, str]]:
    """Bind the ids of `source` to every log line emitted inside the block, then unbind them."""
    ids = context_ids(source)
    with structlog.contextvars.bound_contextvars(**ids):
        yield ids
