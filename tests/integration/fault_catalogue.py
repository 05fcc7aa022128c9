"""The faults the drills inject and the catalogue of drills (issue 18): what each fault does to a
running round (`tests.integration.fault_drills.Round`), every fault at three timings, the suite's
fast tier and the faults x outcome table."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from pathstream.services.reporter.handler import CONSUMER as REPORTER_GROUP
from pathstream.shared.db.models import StudyReport
from pathstream.shared.topics import Topic
from tests.integration.bus_helpers import wait_until
from tests.integration.fault_drills import (
    HOSTILE_STUDY,
    SERVICE_GROUPS,
    Drill,
    Fault,
    Hostile,
    Outcome,
    Round,
)

# -- the faults ----------------------------------------------------------------------------------


async def kill_escnn_worker(round_: Round, outcome: Outcome) -> None:
    """SIGKILL ESCNN worker a mid-LN and start a replacement."""
    round_.processes.kill("escnn-a")
    round_.processes.start("escnn-a2", "serve", "escnn", "--no-create-topics")


async def kill_reporter(round_: Round, outcome: Outcome) -> None:
    """SIGKILL the reporter mid-event; start it again 2 s later."""
    round_.processes.kill("reporter")
    await asyncio.sleep(2)
    round_.processes.start("reporter-2", "serve", "reporter", "--no-create-topics")


def stop_postgres(seconds: float, mode: str) -> Fault:
    """PostgreSQL down for `seconds` (`fast` shutdown or an `immediate` crash), then back."""

    async def inject(round_: Round, outcome: Outcome) -> None:
        round_.cluster.postgres.stop(mode)
        await asyncio.sleep(seconds)
        round_.cluster.postgres.start()

    return inject


def stop_broker(seconds: float) -> Fault:
    """The broker stopped cleanly (an operator's restart) for `seconds`, then started on its data."""

    async def inject(round_: Round, outcome: Outcome) -> None:
        round_.cluster.kafka.stop(keep_data=True)
        await asyncio.sleep(seconds)
        round_.cluster.kafka.start()

    return inject


async def nothing(round_: Round, outcome: Outcome) -> None:
    """No injection: the round's settings are the fault (e.g. a lowered poll interval)."""


def hostile_messages(with_study_copy: bool) -> Fault:
    """Send not-JSON, wrong-schema, 2 MB invalid, 13 MB valid (1e6-point contour), path-traversal,
    outside-roots and empty messages; with `with_study_copy`, also a copy of one of the study's own
    LN events whose `store_uri` names /etc (its real result must stand)."""

    def build(topic: Callable[[str], str]) -> list[Hostile]:
        scanned = {
            "event_id": str(uuid.uuid4()),
            "slide_id": "HOSTILE-S1",
            "study_id": HOSTILE_STUDY,
            "specimen": "lymph_node",
            "uri": "../../../../etc/passwd",
            "sha256": "0" * 64,
            "mpp": 0.46,
        }
        square = [[0, 0], [400, 0], [400, 400], [0, 400]]
        detected = {
            "event_id": str(uuid.uuid4()),
            "ln_id": "HOSTILE-S2-ln000",
            "slide_id": "HOSTILE-S2",
            "study_id": HOSTILE_STUDY,
            "index": 0,
            "contour": square,
            "bbox": {"x": 0, "y": 0, "width": 400, "height": 400},
            "area_um2": 33856.0,
            "store_uri": "/etc",
            "model_version": "hostile",
        }
        step = 2 * math.pi / 1_000_000
        circle = [
            [round(5000 + 4000 * math.cos(i * step)), round(5000 + 4000 * math.sin(i * step))]
            for i in range(1_000_000)
        ]
        huge = {
            **detected,
            "event_id": str(uuid.uuid4()),
            "ln_id": "HOSTILE-S3-ln000",
            "slide_id": "HOSTILE-S3",
        }
        huge["contour"] = circle
        return [
            Hostile("not JSON", topic(Topic.SLIDES_SCANNED), b"hostile-1", b"\xff\xfenot json {"),
            Hostile(
                "wrong schema", topic(Topic.LN_DETECTED), b"hostile-2", json.dumps({"ln_id": 5}).encode()
            ),
            Hostile("empty body", topic(Topic.LN_SCORED), b"hostile-3", None),
            Hostile(
                "2 MB invalid",
                topic(Topic.SLIDES_SCANNED),
                b"hostile-4",
                b'{"slide_id": "' + b"A" * 2_000_000 + b'"}',
            ),
            Hostile(
                "13 MB valid, 1e6-point contour",
                topic(Topic.LN_DETECTED),
                b"hostile-5",
                json.dumps(huge).encode(),
            ),
            Hostile(
                "path traversal",
                topic(Topic.SLIDES_SCANNED),
                b"hostile-6",
                json.dumps(scanned).encode(),
                slide_id="HOSTILE-S1",
            ),
            Hostile(
                "store_uri outside roots",
                topic(Topic.LN_DETECTED),
                b"hostile-7",
                json.dumps(detected).encode(),
                slide_id="HOSTILE-S2",
                ln_id="HOSTILE-S2-ln000",
            ),
        ]

    async def inject(round_: Round, outcome: Outcome) -> None:
        await round_.allow_big_messages([Topic.SLIDES_SCANNED, Topic.LN_DETECTED])
        topic = round_.settings.topic
        # Built in a thread: a 13 MB JSON takes seconds, and the collector must keep heartbeating.
        messages = await asyncio.to_thread(build, topic)
        if with_study_copy:
            copy = await round_.first_detected_event()
            copy.update(event_id=str(uuid.uuid4()), store_uri="/etc")
            messages.append(
                Hostile(
                    "study LN copy, store_uri /etc",
                    topic(Topic.LN_DETECTED),
                    copy["ln_id"].encode(),
                    json.dumps(copy).encode(),
                    slide_id=copy["slide_id"],
                    ln_id=copy["ln_id"],
                )
            )
        await round_.publish_raw(messages)
        outcome.details.append(f"{len(messages)} hostile messages sent")

    return inject


def replay_from_zero(groups: list[str]) -> Fault:
    """Stop the services, rewind `groups` to offset 0 on all their topics, restart them."""

    async def inject(round_: Round, outcome: Outcome) -> None:
        before = len(round_.reports)
        await round_.stop_services_and_rewind(groups)
        await asyncio.sleep(5)
        await round_.wait_lag_zero(240)
        outcome.details.append(f"rewound {', '.join(groups)}; {len(round_.reports) - before} reports after")

    return inject


def concurrent_amendments(spacing_s: float) -> Fault:
    """12 label changes of one scored LN through the review API, `spacing_s` apart (0: all at once)."""

    async def inject(round_: Round, outcome: Outcome) -> None:
        url, token = await asyncio.to_thread(round_.start_api)
        ln_id = round_.scored[0].ln_id
        labels = ["positive" if i % 2 == 0 else "negative" for i in range(12)]

        def change(i: int) -> int:
            time.sleep(i * spacing_s)
            body = {"label": labels[i], "reason": f"drill review {i}"}
            response = httpx.put(
                f"{url}/lymph-nodes/{ln_id}/label",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            return response.status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = await asyncio.to_thread(lambda: list(pool.map(change, range(12))))
        round_.amended.add(ln_id)
        outcome.details.append(f"12 amendments of {ln_id}: HTTP {sorted(Counter(codes).items())}")
        with round_.sessions() as session:
            newest = session.scalar(select(func.max(StudyReport.version)))
        if newest is not None:
            await wait_until(
                lambda: any(r.report_version == newest for r in round_.reports), 60, "the amended report sent"
            )
        # else: the study's report is not issued yet (LNs still being scored); the first version
        # carries the amendments, and the round's checks compare it with the LN rows.

    return inject


# -- the catalogue ----------------------------------------------------------------------------------

UNDISTURBED = Drill("undisturbed", "-", nothing, trigger=None)


def drills() -> list[Drill]:
    """Every fault at three timings (issue 18's fault-injection suite)."""
    return [
        *(Drill("ESCNN worker SIGKILL mid-LN", f"after {k} scored", kill_escnn_worker, k) for k in (1, 4, 8)),
        *(Drill("reporter SIGKILL mid-event", f"after {k} scored", kill_reporter, k) for k in (1, 5, 9)),
        Drill("PostgreSQL down 30 s", "after 1 scored, fast stop", stop_postgres(30, "fast"), 1),
        Drill("PostgreSQL down 30 s", "after 4 scored, crash", stop_postgres(30, "immediate"), 4),
        Drill("PostgreSQL down 30 s", "after 8 scored, fast stop", stop_postgres(30, "fast"), 8),
        *(Drill("broker down 10 s", f"after {k} scored", stop_broker(10), k) for k in (1, 4, 8)),
        *(
            Drill(
                "long LN past the poll interval",
                f"max.poll.interval {ms} ms, {timing}",
                nothing,
                None,
                {"kafka_max_poll_interval_ms": str(ms)},
                exactly_once=True,
                longer_than_ms=ms,
                escnn_workers=workers,
                process_env=process_env,
            )
            for ms, timing, workers, process_env in [
                (500, "2 workers", 2, {}),
                (500, "1 worker", 1, {}),
                (1000, "2 workers, 1 thread each", 2, {"OMP_NUM_THREADS": "1"}),
            ]
        ),
        Drill("hostile messages", "before the study", hostile_messages(False), 0),
        Drill("hostile messages", "after 4 scored", hostile_messages(True), 4),
        Drill("hostile messages", "after the report", hostile_messages(True), None),
        *(
            Drill("replay of every topic from offset 0", timing, replay_from_zero(groups), trigger)
            for timing, groups, trigger in [
                ("after the report", list(SERVICE_GROUPS), None),
                ("after 5 scored", list(SERVICE_GROUPS), 5),
                ("after the report, reporter only", [REPORTER_GROUP], None),
            ]
        ),
        Drill(
            "12 concurrent amendments of one LN", "after the report, at once", concurrent_amendments(0), None
        ),
        Drill(
            "12 concurrent amendments of one LN",
            "after the report, 20 ms apart",
            concurrent_amendments(0.02),
            None,
        ),
        Drill("12 concurrent amendments of one LN", "after 6 scored, at once", concurrent_amendments(0), 6),
    ]


FAST_TIER = {
    ("reporter SIGKILL mid-event", "after 5 scored"),
    ("PostgreSQL down 30 s", "after 4 scored, crash"),
    ("hostile messages", "after 4 scored"),
    ("replay of every topic from offset 0", "after 5 scored"),
    ("12 concurrent amendments of one LN", "after 6 scored, at once"),
}
"""One timing of the faults `test_distributed_pipeline.py` does not already drill (it kills an ESCNN
worker and restarts the broker), run in the suite; the benchmark runs every timing."""


def table(outcomes: list[Outcome]) -> str:
    """The faults x outcome table (Markdown)."""

    def mark(flag: bool) -> str:
        return "yes" if flag else "**NO**"

    lines = [
        "| fault | timing | report = undisturbed | one row per LN | lag 0 | every message accounted "
        "| versions/audit agree | scorings/LNs | DLQ | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.fault} | {o.timing} | {mark(o.report)} | {mark(o.rows)} | {mark(o.lag_zero)} | "
            f"{mark(o.accounted)} | {mark(o.versions)} | {o.scorings}/{o.lns} | {o.dead_letters} "
            f"| {o.seconds} |"
        )
    return "\n".join(lines)
