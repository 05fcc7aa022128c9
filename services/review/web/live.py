"""Live updates of a study for the workstation, as Server-Sent Events.

The report database is the feed: every LN the reporter stores, every report version it records
(the outbox the reporter publishes `ReportReady` from) and every amendment changes the study's
`StudyPulse`. Each open page polls it about once a second through one cheap aggregate query and is
told only when it changed, so several review replicas need nothing between them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.shared.db.models import AuditEntry, LymphNode, Slide, SlideStatus, Study, StudyReport
from pathstream.shared.errors import ErrorCode, PathStreamError

KEEP_ALIVE_S = 15.0


@dataclass(frozen=True)
class StudyPulse:
    """What changes when a study's results do: counts of LNs and scored LNs, slides finished, the
    latest report version and the latest amendment."""

    study_id: str
    lns: int
    scored: int
    slides_done: int
    report_version: int
    last_amendment: int


def study_pulse(sessions: sessionmaker[Session], study_id: str) -> StudyPulse:
    """The study's pulse now; UNKNOWN_ENTITY for a study that does not exist."""
    with sessions() as session:
        if session.get(Study, study_id) is None:
            raise PathStreamError(ErrorCode.UNKNOWN_ENTITY, f"There is no study {study_id}.")
        lns, scored = session.execute(
            select(func.count(), func.count(LymphNode.score)).where(
                LymphNode.study_id == study_id, LymphNode.removed.is_(False)
            )
        ).one()
        done = session.scalar(
            select(func.count()).where(
                Slide.study_id == study_id, Slide.status.in_((SlideStatus.COMPLETE, SlideStatus.FAILED))
            )
        )
        version = session.scalar(
            select(func.max(StudyReport.version)).where(StudyReport.study_id == study_id)
        )
        amendment = session.scalar(select(func.max(AuditEntry.id)).where(AuditEntry.study_id == study_id))
        return StudyPulse(study_id, lns, scored, done or 0, version or 0, amendment or 0)


async def study_events(
    pulse: Callable[[], StudyPulse],
    disconnected: Callable[[], Awaitable[bool]],
    poll_s: float = 1.0,
) -> AsyncIterator[str]:
    """SSE text: a `study` event with the pulse at once and whenever it changes, a comment line
    every KEEP_ALIVE_S (so proxies keep the stream open), until `disconnected()` resolves true."""
    last: StudyPulse | None = None
    quiet = 0.0
    sequence = 0
    while True:
        current = await asyncio.to_thread(pulse)
        if current != last:
            sequence += 1
            last, quiet = current, 0.0
            yield f"event: study\nid: {sequence}\ndata: {json.dumps(asdict(current))}\n\n"
        elif quiet >= KEEP_ALIVE_S:
            quiet = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_s)
        quiet += poll_s
        if await disconnected():
            return
