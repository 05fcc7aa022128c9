"""The watch-folder bridge announces each completed slide exactly once, across restarts."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.scanner.bridge import BridgeConfig, ScannerBridge
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import WatchedSlide, WatchedSlideStatus
from pathstream.shared.events import SlideScanned, Specimen
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.fingerprint import slide_sha256
from pathstream.shared.topics import Topic
from tests.conftest import SHARED_DATA
from tests.integration.bus_helpers import wait_until

pytestmark = pytest.mark.integration

SVS = SHARED_DATA / "wsi" / "CMU-1-Small-Region.svs"
DICOM = SHARED_DATA / "wsi" / "CMU-1-Small-Region_dicom_FALSECOLOUR"


@pytest.fixture
def watch_root(tmp_path: Path) -> Path:
    root = tmp_path / "scanner-out"
    root.mkdir()
    return root


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    migrate.upgrade(db_url)
    return session_factory(create_db_engine(db_url))


@pytest.fixture
async def announcements(bus_settings: PathStreamSettings) -> Any:
    """Everything published on slides.scanned, counted by a separate consumer."""
    seen: list[SlideScanned] = []
    broker = build_broker(bus_settings)

    @broker.subscriber(
        bus_settings.topic(Topic.SLIDES_SCANNED), **consumer_options(bus_settings, "watch-test")
    )
    async def record(event: SlideScanned) -> None:
        seen.append(event)

    await start_with_retry(broker, bus_settings)
    yield seen
    await broker.stop()


@pytest.fixture
async def producer(bus_settings: PathStreamSettings) -> Any:
    """The bridge's own connection to the broker."""
    broker = build_broker(bus_settings)
    await start_with_retry(broker, bus_settings)
    yield broker
    await broker.stop()


def _bridge(
    root: Path, settings: PathStreamSettings, broker: KafkaBroker, sessions: sessionmaker[Session]
) -> ScannerBridge:
    allowed = settings.model_copy(update={"allowed_roots": [str(root.parent)]})
    return ScannerBridge(BridgeConfig(root, Specimen.LYMPH_NODE, settle_s=0.0), allowed, broker, sessions)


async def test_each_slide_once_including_after_a_restart(
    watch_root: Path,
    bus_settings: PathStreamSettings,
    sessions: sessionmaker[Session],
    announcements: list[SlideScanned],
    producer: KafkaBroker,
) -> None:
    bridge = _bridge(watch_root, bus_settings, producer, sessions)
    case = watch_root / "S23-0042"
    case.mkdir()
    target = case / "S23-0042_A1.svs"
    data = SVS.read_bytes()
    # The scanner is still writing: a growing file is never announced.
    target.write_bytes(data[: len(data) // 2])
    assert await bridge.poll_once() == []
    with target.open("ab") as handle:
        handle.write(data[len(data) // 2 :])
    assert await bridge.poll_once() == [], "changed since the last look"
    # Written under a temporary name, renamed when done (the other scanner habit).
    partial = watch_root / "S23-0043_B1.svs.part"
    partial.write_bytes(data)
    (published,) = await bridge.poll_once()
    assert published.slide_id == "S23-0042_A1" and published.study_id == "S23-0042"
    assert published.sha256 == slide_sha256(target)
    assert await bridge.poll_once() == []

    partial.rename(watch_root / "S23-0043_B1.svs")
    assert await bridge.poll_once() == []  # first look after the rename
    assert await bridge.poll_once() == [], "same content as S23-0042_A1: not a new slide"

    shutil.copytree(DICOM, watch_root / "S23-0044_C1")
    await bridge.poll_once()
    (dicom,) = await bridge.poll_once()
    assert dicom.slide_id == "S23-0044_C1" and dicom.study_id == "S23-0044"

    # Restart: a new bridge with the same database announces nothing again.
    restarted = _bridge(watch_root, bus_settings, producer, sessions)
    assert await restarted.resume() == []
    assert await restarted.poll_once() == [] and await restarted.poll_once() == []

    # A new scan after the restart is announced once.
    later = watch_root / "S23-0045_A1.tiff"
    shutil.copy(SHARED_DATA / "wsi" / "CMU-1-Small-Region.jpeg.tiff", later)
    await restarted.poll_once()
    (new,) = await restarted.poll_once()
    assert new.slide_id == "S23-0045_A1"

    await wait_until(lambda: len(announcements) >= 3, 30, "three announcements")
    counts = Counter(e.slide_id for e in announcements)
    assert counts == {"S23-0042_A1": 1, "S23-0044_C1": 1, "S23-0045_A1": 1}
    assert all(e.specimen == Specimen.LYMPH_NODE for e in announcements)


async def test_a_publish_cut_off_by_a_crash_is_resent_with_the_same_event_id(
    watch_root: Path,
    bus_settings: PathStreamSettings,
    sessions: sessionmaker[Session],
    announcements: list[SlideScanned],
    producer: KafkaBroker,
) -> None:
    target = watch_root / "S24-0001_A1.svs"
    shutil.copy(SVS, target)
    event_id = uuid.uuid4()
    with sessions.begin() as session:  # what a crash right after recording leaves behind
        session.add(
            WatchedSlide(
                sha256=slide_sha256(target),
                slide_id="S24-0001_A1",
                study_id="S24-0001",
                specimen=Specimen.LYMPH_NODE,
                path=str(target),
                event_id=event_id,
                status=WatchedSlideStatus.PENDING,
            )
        )
    bridge = _bridge(watch_root, bus_settings, producer, sessions)
    (resent,) = await bridge.resume()
    assert resent.event_id == event_id
    assert await bridge.poll_once() == [] and await bridge.poll_once() == []
    await wait_until(lambda: len(announcements) == 1, 30, "the resent announcement")
    with sessions() as session:
        assert session.get(WatchedSlide, slide_sha256(target)).status == WatchedSlideStatus.PUBLISHED  # type: ignore[union-attr]


async def test_same_name_new_content_gets_its_own_id(
    watch_root: Path,
    bus_settings: PathStreamSettings,
    sessions: sessionmaker[Session],
    announcements: list[SlideScanned],
    producer: KafkaBroker,
) -> None:
    bridge = _bridge(watch_root, bus_settings, producer, sessions)
    target = watch_root / "S25-0001_A1.svs"
    shutil.copy(SVS, target)
    await bridge.poll_once()
    (first,) = await bridge.poll_once()
    # A rescan overwrites the file with different bytes.
    target.unlink()
    shutil.copy(SHARED_DATA / "wsi" / "tcga-cr-7395-01a-01-ts1.svs", target)
    await bridge.poll_once()
    (second,) = await bridge.poll_once()
    assert first.slide_id == "S25-0001_A1"
    assert second.slide_id.startswith("S25-0001_A1-") and second.sha256 != first.sha256


def test_the_watch_folder_must_be_allowed(
    watch_root: Path, tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    from pathstream.shared.errors import ErrorCode, PathStreamError

    settings = PathStreamSettings(data_dir=tmp_path / "elsewhere")
    with pytest.raises(PathStreamError) as info:
        ScannerBridge(BridgeConfig(watch_root), settings, KafkaBroker(), sessions)
    assert info.value.code == ErrorCode.OUTSIDE_ALLOWED_ROOTS


def _watch_once(root: Path, settings: PathStreamSettings, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATHSTREAM_DATA_DIR": str(root.parent),
        "PATHSTREAM_ALLOWED_ROOTS": str(root.parent),
        "PATHSTREAM_DATABASE_URL": db_url,
        "PATHSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "PATHSTREAM_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathstream.services.cli import main; main()",
            "watch",
            str(root),
            "--once",
            "--settle",
            "0.3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def test_the_watch_command_announces_once_per_run_and_never_again(
    watch_root: Path, bus_settings: PathStreamSettings, sqlite_url: str, announcements: list[SlideScanned]
) -> None:
    shutil.copy(SVS, watch_root / "S26-0001_A1.svs")
    first = await asyncio.to_thread(_watch_once, watch_root, bus_settings, sqlite_url)
    assert first.returncode == 0, first.stderr
    await wait_until(lambda: len(announcements) == 1, 30, "the announcement")
    second = await asyncio.to_thread(_watch_once, watch_root, bus_settings, sqlite_url)
    assert second.returncode == 0, second.stderr
    await asyncio.sleep(2)
    assert [e.slide_id for e in announcements] == ["S26-0001_A1"]
