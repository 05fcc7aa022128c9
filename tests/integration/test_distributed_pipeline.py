"""The distributed pipeline end to end: `pathstream watch`, `serve detector`, two `serve escnn`
workers and `serve reporter` as separate processes on the real broker and PostgreSQL.

A synthetic 3-slide study dropped into the watched folder must yield `reports.ready` with the counts
and pN the embedded run gives for the same slides, and an ESCNN worker killed with SIGKILL
mid-study (then restarted) must leave the final report identical, with one row per LN. So must a
2-slide study during which the (private) Apache Kafka broker is stopped for 10 s and started again.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from pathstream.services.demo.cohort import write_demo_study
from pathstream.shared.bus.admin import ensure_topics
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import LymphNode, StudyReport
from pathstream.shared.events import LymphNodeScored, ReportReady
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic
from tests.integration.bus_helpers import wait_until
from tests.integration.cli_runs import demo_model_env
from tests.integration.fault_drills import cluster_env
from tests.integration.kafka_broker import PrivateKafka
from tests.integration.service_processes import Processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def processes(bus_settings: PathStreamSettings, pg_url: str, tmp_path: Path) -> Iterator[Processes]:
    env = cluster_env(bus_settings.kafka_bootstrap, bus_settings.topic_prefix, pg_url, tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    children = Processes(env, logs)
    yield children
    children.stop()


def _embedded(slides: list[Path], tmp_path: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        **demo_model_env(tmp_path / "embedded"),
        "PATHSTREAM_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pathstream.services.cli",
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


async def _run_watched_study(
    settings: PathStreamSettings,
    pg_url: str,
    tmp_path: Path,
    processes: Processes,
    slides: int,
    disturb: Callable[[], Awaitable[None]],
) -> None:
    """Run `slides` demo slides through watch -> detector -> ESCNN -> reporter processes, call
    `disturb()` once the first LN is scored, and check the final report against the embedded run
    of the same slides: same counts and pN, one database row per LN with the same label and score."""
    staging = tmp_path / "staging"
    written = write_demo_study(staging, slides)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    migrate.upgrade(pg_url)
    await ensure_topics(settings, partitions=4)

    reports: list[ReportReady] = []
    scored: list[LymphNodeScored] = []
    watcher = build_broker(settings)

    @watcher.subscriber(settings.topic(Topic.REPORTS_READY), **consumer_options(settings, "e2e-reports"))
    async def on_report(event: ReportReady) -> None:
        reports.append(event)

    @watcher.subscriber(settings.topic(Topic.LN_SCORED), **consumer_options(settings, "e2e-scored"))
    async def on_scored(event: LymphNodeScored) -> None:
        scored.append(event)

    await start_with_retry(watcher, settings)
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
        await disturb()
        await wait_until(
            lambda: bool(reports) and reports[-1].slides_complete == slides, 400, "the complete study report"
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


async def test_watched_study_reports_like_the_embedded_run_despite_a_killed_worker(
    bus_settings: PathStreamSettings, pg_url: str, tmp_path: Path, processes: Processes
) -> None:
    async def kill_a_worker() -> None:
        processes.kill("escnn-a")  # mid-study: its in-flight LN is neither committed nor lost
        processes.start("escnn-a2", "serve", "escnn", "--no-create-topics")

    await _run_watched_study(bus_settings, pg_url, tmp_path, processes, 3, kill_a_worker)


async def test_study_in_flight_across_a_broker_restart_reports_like_an_undisturbed_run(
    pg_url: str, tmp_path: Path
) -> None:
    kafka = PrivateKafka(tmp_path / "kafka")
    kafka.start()
    settings = kafka.settings(tmp_path, session_timeout_ms=6000)
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = Processes(cluster_env(kafka.bootstrap, settings.topic_prefix, pg_url, tmp_path), logs)

    async def restart_the_broker() -> None:
        kafka.stop(keep_data=True)  # a clean stop, as an operator's restart
        await asyncio.sleep(10)
        kafka.start()

    try:
        await _run_watched_study(settings, pg_url, tmp_path, processes, 2, restart_the_broker)
    finally:
        processes.stop()
        kafka.stop()
