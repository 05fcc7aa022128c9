"""End-to-end pipeline speed: embedded seconds per slide, and Kafka mode against embedded mode.

1. A synthetic 30,000 x 30,000 px slide (0.46 um/px, 8 lymph nodes of 0.7-2.5 mm) goes through
   `pathstream run` (ingest, detection, ESCNN per LN, report) on this machine: seconds per slide.
2. A synthetic 3-slide study runs once embedded (`pathstream run`) and once distributed: `watch`,
   `serve detector`, two `serve escnn` workers and `serve reporter` as processes on the Kafka
   broker at PATHSTREAM_BENCH_KAFKA and the PostgreSQL server at PATHSTREAM_BENCH_PG_ADMIN_URL
   (both as `infra/test.sh` starts them). Kafka seconds are from the first file appearing in the
   watched folder to the complete `ReportReady`, service start-up excluded.

Models: the bundled demo checkpoints (compact16), so the numbers measure the pipeline, not a
ResNet-50; `benchmarks/escnn_throughput.py` measures ResNet-50 scoring.

    .venv/bin/python benchmarks/pipeline.py [--skip-large] [--skip-kafka] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit

KAFKA = os.environ.get("PATHSTREAM_BENCH_KAFKA", "127.0.0.1:19092")
PG_ADMIN = os.environ.get(
    "PATHSTREAM_BENCH_PG_ADMIN_URL", "postgresql+psycopg://pathstream:pathstream@127.0.0.1:5432/postgres"
)


def _model_env(data_dir: Path) -> dict[str, str]:
    from pathstream.services.demo.run import DETECTOR_CHECKPOINT, ESCNN_BACKBONE, ESCNN_CHECKPOINT

    return {
        **os.environ,
        "PATHSTREAM_DATA_DIR": str(data_dir),
        "PATHSTREAM_ALLOWED_ROOTS": str(data_dir.parent),
        "PATHSTREAM_DETECTOR_CHECKPOINT": str(DETECTOR_CHECKPOINT),
        "PATHSTREAM_ESCNN_CHECKPOINT": str(ESCNN_CHECKPOINT),
        "PATHSTREAM_ESCNN_BACKBONE": ESCNN_BACKBONE,
        "PATHSTREAM_ESCNN_TILE_SIZE": "1024",
        "PATHSTREAM_LOG_LEVEL": "WARNING",
    }


def _run_embedded(slides: list[Path], work: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pathstream.services.cli",
            "run",
            *map(str, slides),
            "--out",
            str(work / "out"),
            "--json",
        ],
        capture_output=True,
        text=True,
        # The slides' folders are allowed too: configured roots hold for `run` as for every entry point.
        env={
            **_model_env(work / "data"),
            "PATHSTREAM_ALLOWED_ROOTS": ",".join(
                dict.fromkeys([str(work), *(str(s.parent) for s in slides)])
            ),
        },
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"pathstream run failed:\n{result.stderr[-3000:]}")
    (study,) = json.loads(result.stdout)["studies"]
    return seconds, study


def large_slide(root: Path) -> dict[str, Any]:
    """Embedded seconds for one 30k x 30k slide with 8 LNs (generation not counted)."""
    from pathstream.synthetic.lymph_node import write_lymph_node_slide

    started = time.perf_counter()
    slide, truth = write_lymph_node_slide(
        root / "large",
        30_000,
        30_000,
        8,
        seed=7,
        mpp=0.46,
        node_size_um=(700.0, 2500.0),
        name="BENCH-1_A1.tif",
    )
    generated = time.perf_counter() - started
    seconds, study = _run_embedded([slide], root / "large-run")
    return {
        "slide_px": [30_000, 30_000],
        "mpp": 0.46,
        "true_lymph_nodes": len(truth.lymph_nodes),
        "detected_lymph_nodes": sum(len(s["lns"]) for s in study["slides"]),
        "generate_s": round(generated, 1),
        "embedded_seconds_per_slide": round(seconds, 1),
    }


async def _kafka_study(slides: list[Path], work: Path) -> tuple[float, dict[str, Any]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from pathstream.shared.bus.admin import ensure_topics
    from pathstream.shared.bus.broker import build_broker
    from pathstream.shared.bus.startup import start_with_retry
    from pathstream.shared.bus.subscribe import consumer_options
    from pathstream.shared.db import migrate
    from pathstream.shared.events import LymphNodeScored, ReportReady
    from pathstream.shared.settings import PathStreamSettings
    from pathstream.shared.topics import Topic
    from tests.integration.service_processes import Processes

    name = f"pathstream_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    settings = PathStreamSettings(
        data_dir=work / "cluster",
        kafka_bootstrap=KAFKA,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=500,
    )
    migrate.upgrade(url)
    await ensure_topics(settings, partitions=4)
    env = {
        **_model_env(work / "cluster"),
        "PATHSTREAM_KAFKA_BOOTSTRAP": KAFKA,
        "PATHSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "PATHSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "PATHSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "PATHSTREAM_DATABASE_URL": url,
        "PATHSTREAM_REPORT_OUTBOX_POLL_S": "0.5",
    }
    (work / "logs").mkdir(parents=True)
    children = Processes(env, work / "logs")
    incoming = work / "incoming"
    incoming.mkdir()
    reports: list[ReportReady] = []
    scored: list[LymphNodeScored] = []
    watcher = build_broker(settings)

    @watcher.subscriber(settings.topic(Topic.REPORTS_READY), **consumer_options(settings, "bench-reports"))
    async def on_report(event: ReportReady) -> None:
        reports.append(event)

    @watcher.subscriber(settings.topic(Topic.LN_SCORED), **consumer_options(settings, "bench-scored"))
    async def on_scored(event: LymphNodeScored) -> None:
        scored.append(event)

    await start_with_retry(watcher, settings)
    try:
        for service in ("reporter", "detector", "escnn", "escnn"):
            children.start(f"{service}-{len(children.running)}", "serve", service, "--no-create-topics")
        children.start("watch", "watch", str(incoming), "--settle", "1", "--poll", "0.5")
        await asyncio.sleep(20)  # let every service load its model and join its group
        children.assert_alive()
        started = time.perf_counter()
        for slide in slides:
            shutil.copyfile(slide, incoming / slide.name)
        while not (reports and reports[-1].slides_complete == len(slides)):
            children.assert_alive()
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - started
    finally:
        children.stop()
        await watcher.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    final = reports[-1]
    return seconds, {
        "positive": final.ln_positive,
        "negative": final.ln_negative,
        "pn_category": final.pn_category.value if final.pn_category else None,
    }


def three_slides(root: Path) -> dict[str, Any]:
    """The same 3-slide study embedded and on Kafka (one detector, two ESCNN workers, one reporter)."""
    from pathstream.services.demo.cohort import write_demo_study

    written = write_demo_study(root / "study", 3)
    slides = [s.path for s in written]
    embedded_s, embedded = _run_embedded(slides, root / "embedded")
    kafka_s, kafka = asyncio.run(_kafka_study(slides, root / "kafka"))
    return {
        "slides": 3,
        "embedded_s": round(embedded_s, 1),
        "kafka_s": round(kafka_s, 1),
        "kafka_vs_embedded": round(kafka_s / embedded_s, 3),
        "same_report": kafka == {k: embedded[k] for k in ("positive", "negative", "pn_category")},
        "report": kafka,
    }


def main() -> None:
    """Run the measurements and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the JSON result (always on)")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "pipeline", "models": "bundled demo checkpoints (compact16)"}
    with tempfile.TemporaryDirectory(prefix="pathstream-bench-") as tmp:
        root = Path(tmp)
        if not args.skip_large:
            result["large_slide"] = large_slide(root)
        if not args.skip_kafka:
            result["three_slide_study"] = three_slides(root)
    emit(result)


if __name__ == "__main__":
    main()
