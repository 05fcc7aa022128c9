"""ER7 (HL7 v2's pipe-and-hat encoding) values: escaping, unescaping, timestamps, and reading one
field of a segment that hl7apy parsed.

hl7apy keeps parsed values as they were sent, escape sequences included, and only escapes some
delimiters when it writes; PathStream's text (slide ids, narrative, reasons) may hold any of them,
so the reporter escapes and unescapes with the message's own encoding characters here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from hl7apy.core import Segment

DEFAULT_ENCODING = {"FIELD": "|", "COMPONENT": "^", "REPETITION": "~", "ESCAPE": "\\", "SUBCOMPONENT": "&"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def escape(text: str, encoding: dict[str, str] = DEFAULT_ENCODING, *, line_breaks: bool = False) -> str:
    """Plain text -> an ER7 value: delimiters become \\F\\ \\S\\ \\T\\ \\R\\ \\E\\; CR/LF become
    `\\.br\\` (for FT fields, `line_breaks=True`) or a space; other control characters are dropped."""
    e = encoding["ESCAPE"]
    out = text.replace(e, f"{e}E{e}")
    for key, code in (("FIELD", "F"), ("COMPONENT", "S"), ("SUBCOMPONENT", "T"), ("REPETITION", "R")):
        out = out.replace(encoding[key], f"{e}{code}{e}")
    out = out.replace("\r\n", "\n").replace("\r", "\n")
    out = out.replace("\n", f"{e}.br{e}" if line_breaks else " ")
    return _CONTROL.sub("", out)


def unescape(value: str, encoding: dict[str, str] = DEFAULT_ENCODING) -> str:
    """An ER7 value -> plain text (the inverse of `escape`; `\\.br\\` becomes a newline, hex
    escapes \\Xhh..\\ become their bytes decoded as UTF-8, other formatting commands vanish)."""
    e = re.escape(encoding["ESCAPE"])
    table = {
        "F": encoding["FIELD"],
        "S": encoding["COMPONENT"],
        "T": encoding["SUBCOMPONENT"],
        "R": encoding["REPETITION"],
        "E": encoding["ESCAPE"],
        ".br": "\n",
    }

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code in table:
            return table[code]
        if code.startswith("X") and re.fullmatch(r"X(?:[0-9A-Fa-f]{2})+", code):
            return bytes.fromhex(code[1:]).decode("utf-8", errors="replace")
        return ""

    return re.sub(rf"{e}([^{e}]*){e}", replace, value)


def timestamp(moment: datetime) -> str:
    """A datetime -> HL7 DTM in UTC with its offset, e.g. 20261203101500+0000."""
    utc = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return utc.strftime("%Y%m%d%H%M%S+0000")


def parse_timestamp(value: str) -> datetime | None:
    """HL7 DTM/TS text (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) -> UTC datetime; None when empty.

    A value without an offset is taken as UTC. Raises ValueError when it is not a DTM.
    """
    text = value.strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?", text)
    if match is None:
        raise ValueError(f"{value!r} is not an HL7 date/time (YYYYMMDDHHMMSS[+ZZZZ])")
    parts = [int(p) if p else d for p, d in zip(match.groups()[:6], (0, 1, 1, 0, 0, 0), strict=True)]
    offset = match.group(7)
    moment = datetime(*parts)  # type: ignore[misc]
    if offset:
        sign = 1 if offset[0] == "+" else -1
        minutes = sign * (int(offset[1:3]) * 60 + int(offset[3:5]))
        return moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).astimezone(UTC)
    return moment.replace(tzinfo=UTC)


def field_repetitions(segment: Segment, number: int) -> list[str]:
    """The raw ER7 text of each repetition of field `number` of a segment hl7apy parsed."""
    name = f"{segment.name}_{number}"
    return [child.to_er7() for child in segment.children if child.name == name]


def component(
    segment: Segment,
    number: int,
    comp: int = 1,
    sub: int = 1,
    *,
    repetition: int = 0,
    encoding: dict[str, str] = DEFAULT_ENCODING,
) -> str:
    """Field `number`, component `comp`, sub-component `sub` (all 1-based) of `segment`, unescaped
    and stripped; "" when absent. For MSH, numbers follow the standard (MSH-3 is the sending
    application)."""
    repetitions = field_repetitions(segment, number)
    if repetition >= len(repetitions):
        return ""
    components = repetitions[repetition].split(encoding["COMPONENT"])
    if comp > len(components):
        return ""
    subs = components[comp - 1].split(encoding["SUBCOMPONENT"])
    if sub > len(subs):
        return ""
    return unescape(subs[sub - 1], encoding).strip()
