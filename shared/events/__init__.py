"""PathStream's event contracts (shared/README.md, Events): pydantic v2 models, JSON on the wire.

Every event carries `event_id`, `schema_version` and `occurred_at`; `TOPIC` names its base topic
and `kafka_key()` its message key.
"""

from pathstream.shared.events.base import (
    SCHEMA_VERSION,
    BBox,
    Contour,
    Event,
    Identifier,
    Specimen,
)
from pathstream.shared.events.lymph_nodes import LnLabel, LymphNodeDetected, LymphNodeScored
from pathstream.shared.events.marrow import MarrowClass, MarrowClassified, MarrowRoi
from pathstream.shared.events.reports import AJCC_MINIMUM_LNS, PnCategory, ReportReady, ReportStatus
from pathstream.shared.events.slides import FailureStage, SlideDetected, SlideFailed, SlideScanned

ALL_EVENTS: tuple[type[Event], ...] = (
    SlideScanned,
    SlideDetected,
    LymphNodeDetected,
    LymphNodeScored,
    MarrowClassified,
    ReportReady,
    SlideFailed,
)
"""Every event type, one per topic, in pipeline order."""

__all__ = [
    "AJCC_MINIMUM_LNS",
    "ALL_EVENTS",
    "SCHEMA_VERSION",
    "BBox",
    "Contour",
    "Event",
    "FailureStage",
    "Identifier",
    "LnLabel",
    "LymphNodeDetected",
    "LymphNodeScored",
    "MarrowClass",
    "MarrowClassified",
    "MarrowRoi",
    "PnCategory",
    "ReportReady",
    "ReportStatus",
    "SlideDetected",
    "SlideFailed",
    "SlideScanned",
    "Specimen",
]
