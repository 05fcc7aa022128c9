"""The scanner bridge: announce every completed slide in a watch folder as `SlideScanned`, once.

Each complete slide is hashed; its SHA-256 is the key of a `watched_slides` row. The row is written
(pending), with the event id it will be announced under, before the event is published, and marked
published after the broker confirmed it, so a crash in between republishes the *same* event on
restart (consumers are idempotent on event_id), and a slide already published is never announced
again, whatever its file name or a restart. The event itself is `announcement.slide_scanned`'s, the
one `pathstream run` sends too.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

from faststream.kafka import KafkaBroker
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.scanner.announcement import scan_event_id, slide_scanned
from pathstream.services.scanner.discovery import Candidate, CompletionTracker, Snapshot, find_candidates
from pathstream.shared.allowed_roots import check_allowed
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.db.models import WatchedSlide, WatchedSlideStatus
from pathstream.shared.events import SlideScanned, Specimen
from pathstream.shared.events.base import utc_now
from pathstream.shared.logs import get_logger
from pathstream.shared.naming import DEFAULT_STUDY_PATTERN, safe_id, slide_id_for, study_id_from_name
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.fingerprint import slide_sha256

log = get_logger(__name__)


@dataclass
class BridgeConfig:
    """What to watch and how."""

    root: Path
    specimen: Specimen = Specimen.LYMPH_NODE
    settle_s: float = 5.0
    poll_s: float = 2.0
    mpp: float | None = None
    study_pattern: str = DEFAULT_STUDY_PATTERN


class ScannerBridge:
    """Polls a folder and publishes one `SlideScanned` per completed slide."""

    def __init__(
        self,
        config: BridgeConfig,
        settings: PathStreamSettings,
        broker: KafkaBroker,
        sessions: sessionmaker[Session],
    ) -> None:
        check_allowed(str(config.root), settings.allowed_roots)
        self.config = config
        self.settings = settings
        self.broker = broker
        self.sessions = sessions
        self.tracker = CompletionTracker(config.settle_s)
        re.compile(config.study_pattern)  # a bad pattern fails here, at start, not per slide
        self.handled: dict[Path, Snapshot] = {}
        """Slides already dealt with in this run, so an unchanged file is not hashed again."""
        self.stopping = asyncio.Event()

    # -- naming ------------------------------------------------------------------------------

    def study_id_for(self, path: Path) -> str:
        """The study: the first folder below the watch root, else the name's prefix, else the slide."""
        relative = path.relative_to(self.config.root)
        if len(relative.parts) > 1:
            return safe_id(relative.parts[0])
        return study_id_from_name(path, self.config.study_pattern)

    # -- state -------------------------------------------------------------------------------

    def _claim(self, candidate: Candidate, sha256: str) -> WatchedSlide | None:
        """Record a newly found slide as pending; None when its content was seen before."""
        with self.sessions.begin() as session:
            if session.get(WatchedSlide, sha256) is not None:
                return None
            slide_id = slide_id_for(candidate.path)
            clash = session.scalar(select(WatchedSlide).where(WatchedSlide.slide_id == slide_id))
            if clash is not None:
                # Same name, different content (a rescan): keep both, apart.
                slide_id = safe_id(f"{slide_id}-{sha256[:8]}")
            study_id = self.study_id_for(candidate.path)
            row = WatchedSlide(
                sha256=sha256,
                slide_id=slide_id,
                study_id=study_id,
                specimen=self.config.specimen,
                path=str(candidate.path),
                event_id=scan_event_id(slide_id, study_id, sha256),
                status=WatchedSlideStatus.PENDING,
            )
            session.add(row)
            session.flush()
            session.expunge(row)
            return row

    def _pending(self) -> list[WatchedSlide]:
        with self.sessions() as session:
            rows = session.scalars(
                select(WatchedSlide).where(WatchedSlide.status == WatchedSlideStatus.PENDING)
            ).all()
            for row in rows:
                session.expunge(row)
            return list(rows)

    def _mark_published(self, sha256: str) -> None:
        with self.sessions.begin() as session:
            row = session.get(WatchedSlide, sha256)
            if row is not None:
                row.status = WatchedSlideStatus.PUBLISHED
                row.published_at = utc_now()

    # -- publishing --------------------------------------------------------------------------

    def _event(self, row: WatchedSlide) -> SlideScanned:
        # The recorded event id, not a recomputed one: a row left by a crash keeps the id it was given.
        return slide_scanned(
            Path(row.path),
            row.slide_id,
            row.study_id,
            row.specimen,
            sha256=row.sha256,
            mpp=self.config.mpp,
            event_id=row.event_id,
        )

    async def _publish(self, row: WatchedSlide) -> SlideScanned:
        event = self._event(row)
        await publish_event(self.broker, self.settings, event)
        await asyncio.to_thread(self._mark_published, row.sha256)
        log.info(
            "slide_announced", slide_id=row.slide_id, study_id=row.study_id, event_id=str(event.event_id)
        )
        return event

    async def resume(self) -> list[SlideScanned]:
        """Publish slides a previous run recorded but could not confirm (same event ids)."""
        return [await self._publish(row) for row in await asyncio.to_thread(self._pending)]

    async def poll_once(self) -> list[SlideScanned]:
        """Look at the folder once; publish every slide that has just become complete."""
        candidates = await asyncio.to_thread(find_candidates, self.config.root)
        published: list[SlideScanned] = []
        for candidate, snapshot in self.tracker.complete(candidates):
            if self.handled.get(candidate.path) == snapshot:
                continue
            sha256 = await asyncio.to_thread(slide_sha256, candidate.path)
            row = await asyncio.to_thread(self._claim, candidate, sha256)
            self.handled[candidate.path] = snapshot
            if row is None:
                log.info(
                    "slide_already_announced",
                    path=str(candidate.path),
                    sha256=sha256,
                    hint="This content was announced before; to process it again (e.g. with a corrected "
                    "mpp) run: pathstream reprocess SLIDE_ID [--mpp UM_PER_PX] --reason TEXT",
                )
                continue
            published.append(await self._publish(row))
        return published

    async def run(self) -> None:
        """Resume, then poll every `poll_s` seconds until `stop()`."""
        await self.resume()
        while not self.stopping.is_set():
            await self.poll_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.config.poll_s)

    def stop(self) -> None:
        """Ask `run()` to return after the current poll."""
        self.stopping.set()
