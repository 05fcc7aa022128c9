"""HL7 v2 laboratory orders (OML^O21, OML^O33, ORM^O01; v2.3-2.8) -> `LabOrder`, and the ACK
that answers each.

Where PathStream reads each part (first repetition unless said):
- accession (the study id): ORC-3 / OBR-3 filler order number (EI.1), else ORC-2 / OBR-2 placer;
- placer order number: ORC-2 / OBR-2 (EI.1, namespace EI.2);
- patient: PID-3 (CX.1, assigning authority CX.4.1);
- specimen: SPM-2 (EIP.1 placer, else EIP.2 filler) and SPM-4 type (SNOMED CT 258589002 lymph
  node / 119359002 bone marrow, or text containing "lymph" / "marrow"); without SPM, OBR-15;
- expected slides: OBX with OBX-3.1 `PATHSTREAM-SLIDES` (NM: the count) and one OBX per slide with
  `PATHSTREAM-SLIDE` (ST: its id), and SAC-3 container ids (OML); a count and ids must agree;
- ordered at: ORC-9 else OBR-6; collected at: SPM-17.1 else OBR-7; ordering provider: ORC-12 else
  OBR-16 (id^family^given).
A message holding orders for more than one accession is refused: one message, one study.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message, Segment
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from pathstream.services.reporter.hl7v2.er7 import component, escape, parse_timestamp, timestamp
from pathstream.services.reporter.orders.checks import checked_id, expected_slides, invalid_order
from pathstream.services.reporter.orders.model import LabOrder
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Specimen

ORDER_TYPES = frozenset({("OML", "O21"), ("OML", "O33"), ("ORM", "O01")})
SLIDE_COUNT_CODE = "PATHSTREAM-SLIDES"
SLIDE_ID_CODE = "PATHSTREAM-SLIDE"
SPECIMEN_CODES = {"258589002": Specimen.LYMPH_NODE, "119359002": Specimen.BONE_MARROW}
CANCELLING_CONTROLS = frozenset({"CA", "OC", "DC", "OD"})
_HINT = "Send OML^O21, OML^O33 or ORM^O01 as described in the README (Reports: orders)."


class UnreadableMessage(PathStreamError):
    """The text is not an HL7 v2 message PathStream can read at all (answered with AR)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_ORDER, message, hint=_HINT)


def _invalid(message: str, hint: str = _HINT) -> PathStreamError:
    return invalid_order(message, hint)


def _normalise(text: str) -> str:
    # Segments end in CR; senders (and files) also use LF or CRLF.
    return "\r".join(line for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if line)


def read_message(text: str) -> Message:
    """ER7 text -> hl7apy Message (segments flat, tolerant validation).

    Raises UnreadableMessage when there is no MSH or the version is not one hl7apy knows.
    """
    cleaned = _normalise(text.strip().lstrip("\ufeff"))
    if not cleaned.startswith("MSH"):
        raise UnreadableMessage("The message does not start with an MSH segment.")
    try:
        return parse_message(cleaned, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)
    except HL7apyException as exc:
        raise UnreadableMessage(f"The message is not readable HL7 v2: {exc}.") from None
    except (ValueError, IndexError, KeyError, AttributeError) as exc:
        raise UnreadableMessage(f"The message is not readable HL7 v2 ({type(exc).__name__}).") from None


def message_type(message: Message) -> tuple[str, str]:
    """(MSH-9.1, MSH-9.2) of a parsed message, e.g. ("OML", "O21")."""
    enc = message.encoding_chars
    return component(message.msh, 9, 1, encoding=enc).upper(), component(
        message.msh, 9, 2, encoding=enc
    ).upper()


def _segments(message: Message, name: str) -> list[Segment]:
    return [child for child in message.children if child.name == name]


def _checked_id(value: str, what: str) -> str:
    return checked_id(value, what, _HINT)


def _time(value: str, what: str) -> datetime | None:
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise _invalid(f"{what}: {exc}.") from None


def _first(*values: str) -> str:
    return next((v for v in values if v), "")


def _specimen_kind(code: str, text: str) -> Specimen | None:
    if code in SPECIMEN_CODES:
        return SPECIMEN_CODES[code]
    lowered = f"{code} {text}".lower()
    if "marrow" in lowered:
        return Specimen.BONE_MARROW
    if "lymph" in lowered:
        return Specimen.LYMPH_NODE
    return None


def _expected_slides(message: Message) -> tuple[tuple[str, ...], int | None]:
    enc = message.encoding_chars
    ids: list[str] = []
    count: int | None = None
    for obx in _segments(message, "OBX"):
        code = component(obx, 3, 1, encoding=enc).upper()
        value = component(obx, 5, 1, encoding=enc)
        if code == SLIDE_ID_CODE:
            ids.append(_checked_id(value, "expected slide id (OBX-5)"))
        elif code == SLIDE_COUNT_CODE:
            try:
                count = int(float(value))
            except ValueError:
                raise _invalid(f"OBX {SLIDE_COUNT_CODE} holds {value!r}, not a slide count.") from None
    for sac in _segments(message, "SAC"):
        container = component(sac, 3, 1, encoding=enc)
        if container:
            ids.append(_checked_id(container, "slide id (SAC-3)"))
    return expected_slides(list(dict.fromkeys(ids)), count, _HINT, count_name=SLIDE_COUNT_CODE)


def parse_order_message(text: str) -> LabOrder:
    """HL7 v2 order text (OML^O21 / OML^O33 / ORM^O01, segments separated by CR) -> `LabOrder`.

    Raises UnreadableMessage (AR) for text that is not HL7 v2 or an unsupported message type, and
    PathStreamError(INVALID_ORDER) (AE) naming the missing or contradictory part otherwise.
    """
    message = read_message(text)
    enc = message.encoding_chars
    kind = message_type(message)
    if kind not in ORDER_TYPES:
        accepted = ", ".join(f"{m}^{t}" for m, t in sorted(ORDER_TYPES))
        raise UnreadableMessage(f"PathStream takes orders ({accepted}), not {kind[0]}^{kind[1]}.")
    orcs, obrs = _segments(message, "ORC"), _segments(message, "OBR")
    if not orcs and not obrs:
        raise _invalid("The order has neither an ORC nor an OBR segment.")
    controls = {component(orc, 1, encoding=enc).upper() for orc in orcs}
    if controls & CANCELLING_CONTROLS:
        raise _invalid(
            f"Order control {'/'.join(sorted(controls & CANCELLING_CONTROLS))} (cancel/discontinue) is not "
            "taken: PathStream does not cancel studies.",
            hint="Cancel the study in the laboratory system; PathStream keeps what it received.",
        )
    accessions = set()
    for segment in orcs + obrs:
        accession = _first(component(segment, 3, encoding=enc), component(segment, 2, encoding=enc))
        if accession:
            accessions.add(accession)
    if not accessions:
        raise _invalid("The order has no filler or placer order number (ORC-3/OBR-3, ORC-2/OBR-2).")
    if len(accessions) > 1:
        raise _invalid(
            f"The message holds orders for {len(accessions)} accessions ({', '.join(sorted(accessions))}).",
            hint="Send one message per accession.",
        )
    study_id = _checked_id(accessions.pop(), "accession number (ORC-3/OBR-3)")
    pids = _segments(message, "PID")
    patient_id = component(pids[0], 3, encoding=enc) if pids else ""
    if not patient_id:
        raise _invalid("The order has no patient identifier (PID-3).")
    orc = orcs[0] if orcs else None
    obr = obrs[0] if obrs else None

    def pick(orc_field: int, obr_field: int, comp: int = 1) -> str:
        return _first(
            component(orc, orc_field, comp, encoding=enc) if orc is not None and orc_field else "",
            component(obr, obr_field, comp, encoding=enc) if obr is not None and obr_field else "",
        )

    spms = _segments(message, "SPM")
    specimen_id = specimen_code = specimen_text = collected = ""
    if spms:
        spm = spms[0]
        specimen_id = _first(component(spm, 2, 1, encoding=enc), component(spm, 2, 2, encoding=enc))
        specimen_code, specimen_text = component(spm, 4, 1, encoding=enc), component(spm, 4, 2, encoding=enc)
        collected = component(spm, 17, 1, encoding=enc)
    elif obr is not None:
        specimen_code = component(obr, 15, 1, encoding=enc)
        specimen_text = component(obr, 15, 2, encoding=enc)
    expected_ids, expected_count = _expected_slides(message)
    provider = [pick(12, 16, i) for i in (1, 2, 3)]
    return LabOrder(
        accession=study_id,
        patient_id=patient_id[:200],
        patient_id_system=component(pids[0], 3, 4, encoding=enc) or None,
        placer_order_number=pick(2, 2)[:200] or None,
        placer_system=pick(2, 2, 2) or None,
        specimen_id=specimen_id[:200] or None,
        specimen=_specimen_kind(specimen_code, specimen_text),
        expected_slide_ids=expected_ids,
        expected_slide_count=expected_count,
        ordered_at=_time(pick(9, 6), "Ordered at (ORC-9/OBR-6)"),
        collected_at=_time(collected or pick(0, 7), "Collected at (SPM-17/OBR-7)"),
        ordering_provider="^".join(provider).strip("^")[:200] or None,
        source="hl7v2",
        message_id=component(message.msh, 10, encoding=enc) or None,
    )


def _error_code(error: PathStreamError) -> str:
    """ERR-3 (HL7 table 0357) for a refused order."""
    if error.code == ErrorCode.ORDER_CONFLICT:
        return "205^Duplicate key identifier^HL70357"
    if isinstance(error, UnreadableMessage):
        return "200^Unsupported message type^HL70357"
    return "207^Application internal error^HL70357"


def order_ack(text: str, error: PathStreamError | None, *, now: datetime | None = None) -> str:
    """The ACK answering order `text`: MSA-1 AA when `error` is None, AR when the text could not be
    read as an order (UnreadableMessage), else AE; MSA-3 and ERR-8 carry the problem."""
    try:
        message: Message | None = read_message(text)
    except UnreadableMessage:
        message = None
    enc = message.encoding_chars if message is not None else None
    field = (lambda n, c=1: component(message.msh, n, c, encoding=enc)) if message is not None else None
    sender_app = field(3) if field else ""
    sender_facility = field(4) if field else ""
    receiver_app = field(5) if field else ""
    receiver_facility = field(6) if field else ""
    control = field(10) if field else ""
    version = (field(12) if field else "") or "2.5.1"
    trigger = (field(9, 2) if field else "") or ""
    if error is None:
        code = "AA"
    elif isinstance(error, UnreadableMessage) or message is None:
        code = "AR"
    else:
        code = "AE"
    moment = now or datetime.now(UTC)
    segments = [
        "|".join(
            [
                "MSH",
                "^~\\&",
                escape(receiver_app or "PathStream"),
                escape(receiver_facility),
                escape(sender_app),
                escape(sender_facility),
                timestamp(moment),
                "",
                f"ACK^{escape(trigger)}^ACK",
                f"ACK{moment.strftime('%Y%m%d%H%M%S%f')}"[:20],
                "P",
                escape(version),
            ]
        ),
        "|".join(["MSA", code, escape(control), escape((error.message if error else "Order stored")[:80])]),
    ]
    if error is not None:
        detail = f"{error.message} {error.hint}".strip()
        segments.append("|".join(["ERR", "", "", _error_code(error), "E", "", "", "", escape(detail)]))
    return "\r".join(segments) + "\r"
