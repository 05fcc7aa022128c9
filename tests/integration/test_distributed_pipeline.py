"""The distributed pipeline end to end: `pathstream watch`, `serve detector`, two `serve escnn`
workers and `serve reporter` as separate processes on the real broker and PostgreSQL.

A synthetic 3-slide study dropped into the watched folder must yield `reports.ready` with the counts
and pN the embedded run gives for the same slides, and an ESCNN worker killed with SIGKILL
mid-study (then restarted) must leave the final report identical, with one row per LN.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.demo.cohort import write_demo_study
from services.demo.run import DETECTOR_CHECKPOINT, ESCNN_BACKBONE, ESCNN_CHECKPOINT
from shared.bus.admin import ensure_topics
from shared.bus.broker import build_broker
from shared.bus.startup import start_with_retry
from shared.bus.subscribe import consumer_options
from shared.db import migrate
from shared.db.engine import create_db_engine, session_factory
from shared.db.models import LymphNode, StudyReport
from shared.events import LymphNodeScored, ReportReady
from shared.settings import PathStreamSettings
from shared.topics import Topic
from tests.integration.bus_helpers import wait_until
from tests.integration.service_processes import Processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def processes(bus_settings: PathStreamSettings, pg_url: str, tmp_path: Path) -> Iterator[Processes]:
    env = {
        **os.environ,
        "PATHSTREAM_KAFKA_BOOTSTRAP": bus_settings.kafka_bootstrap,
        "PATHSTREAM_TOPIC_PREFIX": bus_settings.topic_prefix,
        "PATHSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "PATHSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "PATHSTREAM_KAFKA_TOPIC_PARTITIONS": "4",
        "PATHSTREAM_DATABASE_URL": pg_url,
        "PATHSTREAM_DATA_DIR": str(tmp_path / "cluster"),
        "PATHSTREAM_ALLOWED_ROOTS": str(tmp_path),
        "PATHSTREAM_DETECTOR_CHECKPOINT": str(DETECTOR_CHECKPOINT),
        "PATHSTREAM_ESCNN_CHECKPOINT": str(ESCNN_CHECKPOINT),
        "PATHSTREAM_ESCNN_BACKBONE": ESCNN_BACKBONE,
        "PATHSTREAM_ESCNN_TILE_SIZE": "1024",
        "PATHSTREAM_REPORT_OUTBOX_POLL_S": "0.5",
        "PATHSTREAM_HANDLER_GRACEFUL_TIMEOUT_S": "10",
        "PATHSTREAM_LOG_LEVEL": "INFO",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    children = Processes(env, logs)
    yield children
    children.stop()


def _embedded(slides: list[Path], tmp_path: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "PATHSTREAM_DATA_DIR": str(tmp_path / "embedded"),
        "PATHSTREAM_DETECTOR_CHECKPOINT": str(DETECTOR_CHECKPOINT),
        "PATHSTREAM_ESCNN_CHECKPOINT": str(ESCNN_CHECKPOINT),
        "PATHSTREAM_ESCNN_BACKBONE": ESCNN_BACKBONE,
        "PATHSTREAM_ESCNN_TILE_SIZE": "1024",
        "PATHSTREAM_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "run",
            *map(str, slides),
            "--out",
            str(tmp_path / "emb-out"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (study,) = json.loads(result.stdout)["studies"]
    study_result: dict[str, Any] = study
    return study_result


async def test_watched_study_reports_like_the_embedded_run_despite_a_killed_worker(
    bus_settings: PathStreamSettings, pg_url: str, tmp_path: Path, processes: Processes
) -> None:
    staging = tmp_path / "staging"
    written = write_demo_study(staging, 3)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    migrate.upgrade(pg_url)
    await ensure_topics(bus_settings, partitions=4)

    reports: list[ReportReady] = []
    scored: list[LymphNodeScored] = []
    watcher = build_broker(bus_settings)

    @watcher.subscriber(
        bus_settings.topic(Topic.REPORTS_READY), **consumer_options(bus_settings, "e2e-reports")
    )
    async def on_report(event: ReportReady) -> None:
        reports.append(event)

    @watcher.subscriber(bus_settings.topic(Topic.LN_SCORED), **consumer_options(bus_settings, "e2e-scored"))
    async def on_scored(event: LymphNodeScored) -> None:
        scored.append(event)

    await start_with_retry(watcher, bus_settings)
    try:
        processes.start("reporter", "serve", "reporter", "--no-create-topics")
        processes.start("detector", "serve", "detector", "--no-create-topics")
        processes.start("escnn-a", "serve", "escnn", "--no-create-topics")
        processes.start("escnn-b", "serve", "escnn", "--no-create-topics")
        processes.start("watch", "watch", str(incoming), "--settle", "1", "--poll", "0.5")
        for slide in written:  # the scanner finishes writing: whole files appear in the folder
            shutil.copyfile(slide.path, incoming / slide.path.name)

        await wait_until(lambda: len(scored) >= 1, 300, "the first LymphNodeScored")
        processes.assert_alive()
        processes.kill("escnn-a")  # mid-study: its in-flight LN is neither committed nor lost
        processes.start("escnn-a2", "serve", "escnn", "--no-create-topics")
        await wait_until(
            lambda: bool(reports) and reports[-1].slides_complete == 3, 400, "the complete study report"
        )
        processes.assert_alive()
    finally:
        await watcher.stop()

    final = reports[-1]
    embedded = _embedded([incoming / s.path.name for s in written], tmp_path)
    assert final.study_id == embedded["study_id"] == "DEMO-0001"
    assert (final.ln_positive, final.ln_negative) == (embedded["positive"], embedded["negative"])
    assert final.pn_category is not None and final.pn_category.value == embedded["pn_category"]
    assert final.fhir_report["status"] == "preliminary"

    engine = create_db_engine(pg_url)
    try:
        with session_factory(engine)() as session:
            rows = session.scalars(select(LymphNode).order_by(LymphNode.ln_id)).all()
            latest = session.scalars(select(StudyReport).order_by(StudyReport.version.desc())).first()
            unpublished = session.scalar(
                select(func.count()).select_from(StudyReport).where(StudyReport.published_at.is_(None))
            )
    finally:
        engine.dispose()
    expected = {ln["ln_id"]: ln for s in embedded["slides"] for ln in s["lns"]}
    assert [r.ln_id for r in rows] == sorted(expected)  # one row per LN: none lost, none doubled
    for row in rows:
        assert row.label is not None and row.label.value == expected[row.ln_id]["label"]
        assert row.score == pytest.approx(expected[row.ln_id]["score"], abs=1e-5)
    assert latest is not None and latest.version == final.report_version and unpublished == 0
