"""Fault drills on the distributed pipeline (issue 18): real processes on a private Apache Kafka broker
and a private PostgreSQL server, one fault injected per round, each round checked against an
undisturbed round of the same study.

A round runs the 3-slide demo study through `watch`, `serve detector`, two `serve escnn` workers and
`serve reporter` (and `api serve` for amendments), each round with its own topic prefix and database.
A fault is injected when the round's collector has seen `trigger` LNs scored (or once the study is
complete). Afterwards a round must show:

- **report**: the final `ReportReady` states the undisturbed round's counts and pN, and every LN row
  has the undisturbed label and score (an amended LN: the pathologist's last label);
- **rows**: one database row per LN, none lost or doubled;
- **lag 0**: every service's consumer group has committed every message of its topics;
- **accounted**: every hostile message sits in a DLQ with its reason or was answered with a
  `SlideFailed` naming it; no message of the study itself was dead-lettered;
- **versions**: the newest report version in the database is the last one published, none is left
  unpublished, and (for amendments) every audit "before" is the previous "after" and agrees with the
  row and the newest report.

The faults and the catalogue of drills are in `fault_catalogue.py`. `benchmarks/faults.py` runs every
fault at three timings and prints the faults x outcome table; `tests/integration/test_fault_drills.py`
runs a fast tier of it in the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from sqlalchemy import func, select

from pathstream.services.demo.cohort import DemoSlide, write_demo_study
from pathstream.services.operations.dead_letters import DlqEntry, dead_letter_topics, read_dead_letters
from pathstream.services.reporter.handler import CONSUMER as REPORTER_GROUP
from pathstream.services.reporter.handler import REPORTER_INPUTS
from pathstream.services.reporter.store.report_inputs import load_study_inputs
from pathstream.services.review.auth import DatabaseTokens
from pathstream.shared.bus.admin import ensure_topics, topic_partitions
from pathstream.shared.bus.broker import build_broker, client_kwargs
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import AuditEntry, LymphNode, Role, StudyReport
from pathstream.shared.events import LymphNodeScored, ReportReady, SlideFailed
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic
from tests.integration.bus_helpers import group_lag, wait_until
from tests.integration.cli_runs import demo_model_env
from tests.integration.kafka_broker import PrivateKafka, free_port
from tests.integration.private_postgres import PrivatePostgres
from tests.integration.service_processes import Processes

STUDY_SLIDES = 3
SERVICE_GROUPS: dict[str, list[str]] = {
    "detector": [Topic.SLIDES_SCANNED.value],
    "escnn": [Topic.LN_DETECTED.value],
    REPORTER_GROUP: [t.TOPIC.value for t in REPORTER_INPUTS],
}
"""Each service's consumer group (before the prefix) and the topics it consumes."""

HOSTILE_STUDY = "HOSTILE-0001"
BIG_TOPIC_BYTES = 16 * 1024 * 1024


def cluster_env(
    kafka_bootstrap: str, topic_prefix: str, pg_url: str, work: Path, **extra: str
) -> dict[str, str]:
    """The environment every service process of one cluster shares (demo models, quick group
    liveness, `work` as data folder parent and the only allowed root); `extra` adds PATHSTREAM_*."""
    return {
        **os.environ,
        "PATHSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PATHSTREAM_TOPIC_PREFIX": topic_prefix,
        "PATHSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "PATHSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "PATHSTREAM_KAFKA_TOPIC_PARTITIONS": "4",
        "PATHSTREAM_DATABASE_URL": pg_url,
        **demo_model_env(work / "cluster"),
        "PATHSTREAM_ALLOWED_ROOTS": str(work),
        "PATHSTREAM_REPORT_OUTBOX_POLL_S": "0.5",
        # The drills send slides without an order: their slide set closes after this settle time.
        "PATHSTREAM_STUDY_SETTLE_S": "3",
        "PATHSTREAM_HANDLER_GRACEFUL_TIMEOUT_S": "10",
        "PATHSTREAM_HANDLER_OUTAGE_MAX_WAIT_S": "2",
        "PATHSTREAM_LOG_LEVEL": "INFO",
        **{f"PATHSTREAM_{k.upper()}": v for k, v in extra.items()},
    }


@dataclass(frozen=True)
class StudyResult:
    """What a round ended with: the final report and the LN rows."""

    positive: int
    negative: int
    pn_category: str | None
    report_version: int
    lns: dict[str, tuple[str, float]]
    """ln_id -> (effective label, score)."""
    rows_positive: int
    """Nodes the LN rows count toward pN (positive label and not isolated tumour cells only)."""
    examined: int = 0
    """Nodes the report examined: positive, negative and ITC-only."""


@dataclass
class Outcome:
    """One round's checks; `ok` when all hold."""

    fault: str
    timing: str
    seconds: float = 0.0
    report: bool = False
    rows: bool = False
    lag_zero: bool = False
    accounted: bool = False
    versions: bool = False
    scorings: int = 0
    lns: int = 0
    dead_letters: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check of the round held."""
        return self.report and self.rows and self.lag_zero and self.accounted and self.versions

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (benchmarks' output)."""
        return {**asdict(self), "ok": self.ok}


class Cluster:
    """The private broker and database all rounds share, and the demo study's slides."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.kafka = PrivateKafka(work / "kafka")
        self.postgres = PrivatePostgres()
        self.slides: list[DemoSlide] = []

    def start(self) -> None:
        """Start broker and database; write the demo study once."""
        self.kafka.start()
        self.postgres.start()
        self.slides = write_demo_study(self.work / "staging", STUDY_SLIDES)

    def stop(self) -> None:
        """Stop and remove both servers."""
        try:
            self.kafka.stop()
        finally:
            self.postgres.remove()


@dataclass
class Hostile:
    """A message nobody should have sent, and where it must end up."""

    name: str
    topic: str
    key: bytes
    value: bytes | None
    slide_id: str | None = None
    ln_id: str | None = None
    partition: int = -1
    offset: int = -1


class Round:
    """One run of the study through the service processes, with its own prefix and database."""

    def __init__(
        self,
        cluster: Cluster,
        name: str,
        escnn_workers: int = 2,
        process_env: dict[str, str] | None = None,
        **env: str,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.dir = cluster.work / "rounds" / name
        self.dir.mkdir(parents=True)
        suffix = uuid.uuid4().hex[:8]
        self.prefix = f"f{suffix}."
        self.db_url = cluster.postgres.create_database(f"drill_{suffix}")
        self.settings = PathStreamSettings(
            data_dir=self.dir / "collector",
            kafka_bootstrap=cluster.kafka.bootstrap,
            topic_prefix=self.prefix,
            kafka_session_timeout_ms=6000,
            kafka_heartbeat_interval_ms=500,
            kafka_connect_timeout_s=60,
            kafka_max_request_size=BIG_TOPIC_BYTES,
        )
        self.env = {
            **cluster_env(cluster.kafka.bootstrap, self.prefix, self.db_url, self.dir, **env),
            **(process_env or {}),
        }
        self.escnn_workers = escnn_workers
        (self.dir / "logs").mkdir()
        self.processes = Processes(self.env, self.dir / "logs")
        self.incoming = self.dir / "incoming"
        self.scored: list[LymphNodeScored] = []
        self.reports: list[ReportReady] = []
        self.failures: list[SlideFailed] = []
        self.hostile: list[Hostile] = []
        self.amended: set[str] = set()
        self.api_url: str | None = None
        self._collector = build_broker(self.settings)
        self.engine = create_db_engine(self.db_url)
        self.sessions = session_factory(self.engine)

    # -- running ------------------------------------------------------------------------------

    def start_services(self) -> None:
        """Start reporter, detector, the ESCNN workers (a, b, ...) and the folder watcher."""
        self.processes.start("reporter", "serve", "reporter", "--no-create-topics")
        self.processes.start("detector", "serve", "detector", "--no-create-topics")
        for worker in "abcdefgh"[: self.escnn_workers]:
            self.processes.start(f"escnn-{worker}", "serve", "escnn", "--no-create-topics")
        self.processes.start("watch", "watch", str(self.incoming), "--settle", "1", "--poll", "0.5")

    async def start(self) -> None:
        """Schema, topics, the collector of results, the services; then the scanner drops the files."""
        migrate.upgrade(self.db_url)
        await ensure_topics(self.settings, partitions=4)
        self.incoming.mkdir()
        collector = self._collector

        @collector.subscriber(
            self.settings.topic(Topic.REPORTS_READY), **consumer_options(self.settings, "drill-reports")
        )
        async def on_report(event: ReportReady) -> None:
            self.reports.append(event)

        @collector.subscriber(
            self.settings.topic(Topic.LN_SCORED), **consumer_options(self.settings, "drill-scored")
        )
        async def on_scored(event: LymphNodeScored) -> None:
            self.scored.append(event)

        @collector.subscriber(
            self.settings.topic(Topic.SLIDES_FAILED), **consumer_options(self.settings, "drill-failed")
        )
        async def on_failed(event: SlideFailed) -> None:
            self.failures.append(event)

        await start_with_retry(collector, self.settings)
        self.start_services()
        for slide in self.cluster.slides:  # whole files appear in the folder, as a scanner writes them
            shutil.copyfile(slide.path, self.incoming / slide.path.name)

    async def wait_scored(self, count: int) -> None:
        """Until the collector has seen `count` LymphNodeScored events."""
        await wait_until(lambda: len(self.scored) >= count, 300, f"{count} LNs scored")

    def complete(self) -> bool:
        """True once a report for every slide of the study has been published."""
        return any(r.study_id != HOSTILE_STUDY and r.slides_complete == STUDY_SLIDES for r in self.reports)

    async def wait_complete(self, timeout_s: float = 420) -> None:
        """Until the study's complete report has been published."""
        await wait_until(self.complete, timeout_s, "the complete study report")

    async def stop(self) -> None:
        """Stop the processes and the collector; release the database connections."""
        self.processes.stop()
        await self._collector.stop()
        self.engine.dispose()

    # -- faults -------------------------------------------------------------------------------

    async def stop_services_and_rewind(self, groups: list[str]) -> None:
        """Stop every service, set `groups`' committed offsets of all their topics to 0, restart."""
        self.processes.stop()
        self.processes.running.clear()
        for group in groups:
            topics = [self.settings.topic(t) for t in SERVICE_GROUPS[group]]
            consumer = AIOKafkaConsumer(
                **client_kwargs(self.settings), group_id=self.settings.topic(group), enable_auto_commit=False
            )
            await consumer.start()
            try:
                partitions = await topic_partitions(self.settings, topics)
                consumer.assign(partitions)
                await consumer.commit({tp: 0 for tp in partitions})
            finally:
                await consumer.stop()
        self.start_services()

    async def publish_raw(self, messages: list[Hostile]) -> None:
        """Send `messages` as raw bytes (no PathStream producer would), recording them as hostile."""
        producer = AIOKafkaProducer(**client_kwargs(self.settings), max_request_size=BIG_TOPIC_BYTES)
        await producer.start()
        try:
            for message in messages:
                sent = await producer.send_and_wait(message.topic, message.value, key=message.key)
                message.partition, message.offset = sent.partition, sent.offset
                self.hostile.append(message)
        finally:
            await producer.stop()

    async def allow_big_messages(self, base_topics: list[Topic]) -> None:
        """Let `base_topics` take 16 MiB messages, as a cluster someone configured loosely would."""
        admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
        await admin.start()
        try:
            await admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC,
                        self.settings.topic(t),
                        configs={"max.message.bytes": str(BIG_TOPIC_BYTES)},
                    )
                    for t in base_topics
                ]
            )
        finally:
            await admin.close()

    async def first_detected_event(self) -> dict[str, Any]:
        """The first `LymphNodeDetected` of the study, read back from its topic."""
        topic = self.settings.topic(Topic.LN_DETECTED)
        consumer = AIOKafkaConsumer(**client_kwargs(self.settings), group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = await topic_partitions(self.settings, [topic])
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        body: dict[str, Any] = json.loads(record.value)
                        if body.get("study_id") != HOSTILE_STUDY:
                            return body
        finally:
            await consumer.stop()
        raise AssertionError("no LymphNodeDetected on the topic")

    def start_api(self) -> tuple[str, str]:
        """Start `pathstream api serve` for this round; returns (base URL, a pathologist token)."""
        port = free_port()
        self.processes.start("api", "api", "serve", "--port", str(port))
        tokens = DatabaseTokens(self.sessions)
        tokens.add_user("drill-pathologist", Role.PATHOLOGIST)
        token = tokens.issue("drill-pathologist").token
        self.api_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                httpx.get(
                    self.api_url + "/openapi.json", headers={"Authorization": f"Bearer {token}"}, timeout=5
                )
                return self.api_url, token
            except httpx.TransportError:
                time.sleep(0.5)
        raise AssertionError(f"the review API did not answer; see {self.dir / 'logs' / 'api.log'}")

    # -- checks -------------------------------------------------------------------------------

    def result(self) -> StudyResult:
        """The final published report of the study and its LN rows."""
        final = max((r for r in self.reports if r.study_id != HOSTILE_STUDY), key=lambda r: r.report_version)
        with self.sessions() as session:
            rows = session.scalars(select(LymphNode).where(LymphNode.study_id == final.study_id)).all()
            lns = {r.ln_id: (r.effective_label.value, float(r.score or 0.0)) for r in rows}
            rows_positive = load_study_inputs(session, final.study_id).counts.positive
        pn = final.pn_category.value if final.pn_category is not None else None
        return StudyResult(
            final.ln_positive,
            final.ln_negative,
            pn,
            final.report_version,
            lns,
            rows_positive,
            final.ln_examined,
        )

    async def lag(self) -> dict[str, int]:
        """Uncommitted messages per service group (each topic has the round's 4 partitions)."""
        return {
            group: await group_lag(self.settings, group, [self.settings.topic(t) for t in bases], 4)
            for group, bases in SERVICE_GROUPS.items()
        }

    async def wait_lag_zero(self, timeout_s: float = 120) -> dict[str, int]:
        """Until every service group has lag 0 (or the timeout); returns the last lags seen."""
        deadline = time.monotonic() + timeout_s
        while True:
            lags = await self.lag()
            if not any(lags.values()) or time.monotonic() > deadline:
                return lags
            await asyncio.sleep(1.0)

    async def dead_letters(self) -> list[DlqEntry]:
        """Every DLQ record of this round."""
        return await read_dead_letters(self.settings, dead_letter_topics(self.settings))

    def scoring_seconds(self) -> list[float]:
        """How long each LN scoring took, from the ESCNN workers' `ln_scored` log lines."""
        seconds = []
        for log in sorted((self.dir / "logs").glob("escnn-*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if '"ln_scored"' in line:
                    with contextlib.suppress(ValueError, KeyError):
                        seconds.append(float(json.loads(line)["seconds"]))
        return seconds

    def audit_consistent(self, outcome: Outcome) -> bool:
        """Every LN's audit chain links up and its last "after" is what the row says."""
        with self.sessions() as session:
            audit = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
            by_ln: dict[str, list[AuditEntry]] = {}
            for entry in audit:
                by_ln.setdefault(entry.entity_id, []).append(entry)
            good = True
            for ln_id, chain in by_ln.items():
                row = session.get(LymphNode, ln_id)
                for previous, entry in itertools.pairwise(chain):
                    if entry.before != previous.after:
                        outcome.details.append(f"audit of {ln_id}: a stale 'before'")
                        good = False
                last = chain[-1].after.get("review_label")
                if row is None or (last is not None and row.effective_label.value != last):
                    outcome.details.append(f"{ln_id}: row and last audit entry disagree")
                    good = False
            return good


Fault = Callable[[Round, Outcome], Awaitable[None]]
"""Injects one fault into a running round (after its trigger) and notes what it did."""


@dataclass(frozen=True)
class Drill:
    """One fault at one timing: when to inject it and with which service settings."""

    fault: str
    timing: str
    inject: Fault
    trigger: int | None = 1
    """Inject after this many LNs were scored; None: once the study is complete."""
    env: dict[str, str] = field(default_factory=dict)
    exactly_once: bool = False
    """Each LN must be scored exactly once (no redelivery may happen)."""
    longer_than_ms: int | None = None
    """The drill only counts when some LN's scoring took longer than this (the poll interval)."""
    escnn_workers: int = 2
    process_env: dict[str, str] = field(default_factory=dict)
    """Environment for every service process beyond PATHSTREAM_* settings (e.g. OMP_NUM_THREADS)."""


async def run_drill(
    cluster: Cluster, drill: Drill, baseline: StudyResult | None
) -> tuple[Outcome, StudyResult]:
    """Run one round with `drill`'s fault and check it against `baseline` (None: this is the
    undisturbed round, which sets the baseline)."""
    outcome = Outcome(drill.fault, drill.timing)
    started = time.perf_counter()
    # A plain folder name: PATHSTREAM_ALLOWED_ROOTS is comma-separated.
    folder = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{drill.fault}-{drill.timing}")
    round_ = Round(cluster, folder, drill.escnn_workers, drill.process_env, **drill.env)
    try:
        await round_.start()
        if drill.trigger is not None:
            await round_.wait_scored(drill.trigger)
            await drill.inject(round_, outcome)
        await round_.wait_complete()
        if drill.trigger is None:
            await drill.inject(round_, outcome)
        lags = await round_.wait_lag_zero()
        round_.processes.assert_alive()
        await _check(round_, drill, outcome, lags, baseline)
        result = round_.result()
    except Exception as exc:  # a round that could not finish is a failed outcome, not a crash
        outcome.details.append(f"{type(exc).__name__}: {exc}; logs in {round_.dir / 'logs'}")
        result = StudyResult(0, 0, None, 0, {}, 0)
    finally:
        await round_.stop()
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome, result


async def _check(
    round_: Round, drill: Drill, outcome: Outcome, lags: dict[str, int], baseline: StudyResult | None
) -> None:
    result = round_.result()
    outcome.lns = len(result.lns)
    outcome.scorings = sum(1 for s in round_.scored if s.study_id != HOSTILE_STUDY)
    outcome.lag_zero = not any(lags.values())
    if not outcome.lag_zero:
        outcome.details.append(f"lag {lags}")

    scored_ids = Counter(s.ln_id for s in round_.scored if s.study_id != HOSTILE_STUDY)
    outcome.rows = set(result.lns) == set(scored_ids)
    if drill.exactly_once and any(n != 1 for n in scored_ids.values()):
        outcome.rows = False
        outcome.details.append(f"scored more than once: {[k for k, n in scored_ids.items() if n != 1]}")
    if drill.longer_than_ms is not None:
        seconds = round_.scoring_seconds()
        longer = [t for t in seconds if t * 1000 > drill.longer_than_ms]
        outcome.details.append(
            f"{len(longer)} of {len(seconds)} LN scorings took longer than the {drill.longer_than_ms} ms "
            f"poll interval (longest {max(seconds, default=0):.2f} s)"
        )
        if not longer:
            outcome.rows = False  # the drill did not drill: nothing outlasted the interval
    if baseline is not None:
        outcome.rows = outcome.rows and set(result.lns) == set(baseline.lns)
        amended = {ln for ln, (label, _) in result.lns.items() if label != baseline.lns.get(ln, ("", 0))[0]}
        amended -= round_.amended
        same_scores = all(abs(result.lns[ln][1] - baseline.lns[ln][1]) < 1e-5 for ln in result.lns)
        # ITC-only nodes carry a positive label but do not count toward pN (AJCC 8th).
        expected_positive = result.rows_positive
        outcome.report = (
            not amended
            and same_scores
            and result.positive == expected_positive
            # Examined, not positive + negative: a node relabelled positive may hold only ITC.
            and result.examined == baseline.examined
            and (
                bool(round_.amended)
                or (result.positive, result.pn_category) == (baseline.positive, baseline.pn_category)
            )
        )
        if not outcome.report:
            outcome.details.append(
                f"report {result.positive}/{result.examined} {result.pn_category} vs "
                f"{baseline.positive}/{baseline.examined} {baseline.pn_category}; "
                f"labels changed: {sorted(amended)}"
            )
    else:
        outcome.report = True

    entries = await round_.dead_letters()
    outcome.dead_letters = len(entries)
    outcome.accounted = _accounted(round_, entries, outcome)

    with round_.sessions() as session:
        latest = session.scalars(
            select(StudyReport)
            .where(StudyReport.study_id != HOSTILE_STUDY)
            .order_by(StudyReport.version.desc())
        ).first()
        unpublished = session.scalar(
            select(func.count()).select_from(StudyReport).where(StudyReport.published_at.is_(None))
        )
    outcome.versions = (
        latest is not None
        and latest.version == result.report_version
        and unpublished == 0
        and round_.audit_consistent(outcome)
    )
    if not outcome.versions:
        version = latest.version if latest is not None else None
        outcome.details.append(
            f"newest version {version}, last published {result.report_version}, unpublished {unpublished}"
        )


def _accounted(round_: Round, entries: list[DlqEntry], outcome: Outcome) -> bool:
    """Every hostile message is in a DLQ (each consuming group dead-letters its own copy) or answered
    by a SlideFailed naming it; no other message was dead-lettered."""
    good = True
    claimed: set[int] = set()
    for message in round_.hostile:
        found = [
            i
            for i, e in enumerate(entries)
            if (e.record.original_topic, e.record.original_partition, e.record.original_offset)
            == (message.topic, message.partition, message.offset)
        ]
        claimed.update(found)
        answers = [
            f"DLQ {entries[i].record.error_code or entries[i].record.error_type} "
            f"({entries[i].record.error[:90]})"
            for i in found[:1]
        ]
        answers += [
            f"SlideFailed {f.error_code.value}"
            for f in round_.failures
            if message.slide_id is not None
            and f.slide_id == message.slide_id
            and (message.ln_id is None or f.ln_id == message.ln_id)
        ][:1]
        if not answers:
            answers = ["LOST (neither dead-lettered nor answered)"]
            good = False
        outcome.details.append(f"{message.name}: {'; '.join(answers)}")
    for i, entry in enumerate(entries):
        if i not in claimed:
            outcome.details.append(f"a study message was dead-lettered: {entry.origin} {entry.record.error}")
            good = False
    return good
