"""Turn file and folder names into ids that satisfy the event contract's `Identifier` rules."""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DASHES = re.compile(r"-{2,}")
MAX_ID = 200


def safe_id(text: str) -> str:
    """Return `text` with runs of characters outside [A-Za-z0-9._-] replaced by '-', trimmed so it
    starts with a letter or digit and is at most 200 characters. Raises ValueError if nothing is
    left."""
    cleaned = _DASHES.sub("-", _UNSAFE.sub("-", text)).lstrip("._-")[:MAX_ID].rstrip("-")
    if not cleaned:
        raise ValueError(f"cannot derive an id from {text!r}; give one explicitly")
    return cleaned


def exact_id(text: str) -> str:
    """`text` when it already is a safe id (`safe_id` leaves it unchanged): ids an operator types are
    used as given or refused, never silently rewritten. Raises ValueError saying why, with the
    nearest safe id when there is one."""
    try:
        cleaned = safe_id(text)
    except ValueError:
        cleaned = ""
    if cleaned != text:
        suggestion = f"; did you mean {cleaned!r}?" if cleaned else ""
        raise ValueError(
            f"{text!r} is not a usable id: ids are letters, digits, '.', '_' and '-', starting with a "
            f"letter or digit, at most {MAX_ID} characters{suggestion}"
        )
    return text


def slide_id_for(path: Path) -> str:
    """The default slide id of a slide file or DICOM folder: its name without the extension."""
    name = path.name if path.is_dir() else path.stem
    return safe_id(name)


DEFAULT_STUDY_PATTERN = r"^(?P<study>[^_ ]+)[_ ]"
"""Study id from the slide name: the text before the first underscore or space (S23-0001_A1)."""


def study_id_from_name(path: Path, pattern: str = DEFAULT_STUDY_PATTERN) -> str:
    """The study id a slide's file name states (`pattern`'s `study` group), else its slide id."""
    match = re.match(pattern, path.name)
    if match and match.groupdict().get("study"):
        return safe_id(match.group("study"))
    return slide_id_for(path)
