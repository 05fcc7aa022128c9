"""ESCNN workers on the real broker: two workers in group `escnn` share one slide's LNs."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from pathstream.services.escnn.app import build_escnn_app, load_scorer
from pathstream.services.escnn.model import build_escnn
from pathstream.services.escnn.scoring import LymphNodeScorer
from pathstream.services.escnn.streaming import StreamingESCNN
from pathstream.shared.bus.admin import ensure_topics
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import BBox, Event, LymphNodeDetected, LymphNodeScored, SlideFailed
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.ingest import ingest_slide
from pathstream.shared.topics import Topic
from pathstream.synthetic.lymph_node import write_lymph_node_slide
from tests.integration.bus_helpers import collected, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _lymph_nodes(tmp_path: Path, settings: PathStreamSettings, copies: int) -> list[LymphNodeDetected]:
    slide, truth = write_lymph_node_slide(tmp_path / "slide", 5200, 4000, 3, seed=31, mpp=0.92)
    store_uri = ingest_slide(slide, settings.store_root, "S26-0060_A1").store_uri
    events = []
    for copy in range(copies):
        for node in truth.lymph_nodes:
            xs, ys = [p[0] for p in node.polygon], [p[1] for p in node.polygon]
            index = copy * len(truth.lymph_nodes) + node.index
            events.append(
                LymphNodeDetected(
                    ln_id=f"S26-0060_A1_ln{index:03d}",
                    slide_id="S26-0060_A1",
                    study_id="S26-0060",
                    index=index,
                    contour=node.polygon,
                    bbox=BBox(x=min(xs), y=min(ys), width=max(xs) - min(xs), height=max(ys) - min(ys)),
                    area_um2=node.area_um2,
                    store_uri=store_uri,
                    model_version="detector@sha256:test",
                )
            )
    return events


class _RecordingScorer(LymphNodeScorer):
    """A scorer that notes which LNs it was given (to see how the group shared them)."""

    def __init__(self, *args: Any, seen: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen = seen

    def score(self, event: LymphNodeDetected, store: Any) -> Any:
        self.seen.append(event.ln_id)
        return super().score(event, store)


def _scorer(settings: PathStreamSettings, seen: list[str] | None = None) -> LymphNodeScorer:
    torch.manual_seed(0)
    engine = StreamingESCNN(build_escnn("resnet18").eval(), tile_size=1024, device="cpu")
    return _RecordingScorer(
        engine, "escnn@sha256:test", Path(settings.artifact_root), seen=seen if seen is not None else []
    )


@pytest.fixture
async def results(bus_settings: PathStreamSettings) -> Any:
    topics: dict[str, tuple[Topic, type[Event]]] = {
        "scored": (Topic.LN_SCORED, LymphNodeScored),
        "failed": (Topic.SLIDES_FAILED, SlideFailed),
    }
    async with collected(bus_settings, topics) as seen:
        yield seen


async def test_two_workers_share_one_slides_lns_and_score_each_once(
    bus_settings: PathStreamSettings, results: dict[str, list[Any]], tmp_path: Path
) -> None:
    topic = bus_settings.topic(Topic.LN_DETECTED)
    await ensure_topics(bus_settings, [topic], partitions=4)
    events = _lymph_nodes(tmp_path, bus_settings, copies=3)
    handled: dict[str, list[str]] = {"a": [], "b": []}
    workers = [build_escnn_app(bus_settings, _scorer(bus_settings, handled[name]))[1] for name in ("a", "b")]
    producer = build_broker(bus_settings)
    await start_with_retry(producer, bus_settings)
    try:
        for broker in workers:
            await start_with_retry(broker, bus_settings)
        for event in events:
            await publish_event(producer, bus_settings, event)
        await wait_until(
            lambda: len({e.ln_id for e in results["scored"]}) == len(events),
            timeout_s=400,
            what=f"{len(events)} scored LNs",
        )
    finally:
        for broker in workers:
            await broker.stop()
        await producer.stop()

    counts = Counter(e.ln_id for e in results["scored"])
    assert set(counts) == {e.ln_id for e in events} and set(counts.values()) == {1}
    assert handled["a"] and handled["b"], handled
    assert not results["failed"]
    first = next(e for e in results["scored"] if e.ln_id == events[0].ln_id)
    assert first.contour == events[0].contour and Path(first.heatmap_uri or "").is_file()


async def test_a_missing_store_fails_only_that_ln(bus_settings: PathStreamSettings, tmp_path: Path) -> None:
    from pathstream.services.escnn.handler import EscnnHandler

    event = _lymph_nodes(tmp_path, bus_settings, copies=1)[0].model_copy(
        update={"store_uri": str(tmp_path / "no-such-store")}
    )
    (failure,) = EscnnHandler(bus_settings, _scorer(bus_settings)).handle(event)
    assert isinstance(failure, SlideFailed)
    assert failure.error_code == ErrorCode.STORE_MISSING and failure.ln_id == event.ln_id


def test_worker_refuses_to_start_without_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(PathStreamError, match="No ESCNN checkpoint") as info:
        load_scorer(PathStreamSettings(data_dir=tmp_path))
    assert info.value.code == ErrorCode.MODEL_UNAVAILABLE


class _SlowFirstScorer(_RecordingScorer):
    """Takes `delay_s` longer on its first LN, so the test can stop the worker mid-LN."""

    def __init__(self, *args: Any, delay_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s

    def score(self, event: LymphNodeDetected, store: Any) -> Any:
        if not self.seen:
            self.seen.append(event.ln_id)
            time.sleep(self.delay_s)
            return LymphNodeScorer.score(self, event, store)
        return super().score(event, store)


async def test_a_stopping_worker_releases_its_in_flight_ln_to_the_group(
    bus_settings: PathStreamSettings, results: dict[str, list[Any]], tmp_path: Path
) -> None:
    # What FastStream does on SIGTERM: stop the broker, waiting at most the graceful timeout.
    settings = bus_settings.model_copy(update={"handler_graceful_timeout_s": 0.5})
    topic = settings.topic(Topic.LN_DETECTED)
    await ensure_topics(settings, [topic], partitions=1)  # one partition: B can only get A's LN
    (event,) = _lymph_nodes(tmp_path, settings, copies=1)[:1]
    torch.manual_seed(0)
    engine = StreamingESCNN(build_escnn("resnet18").eval(), tile_size=1024, device="cpu")
    slow = _SlowFirstScorer(engine, "escnn@sha256:test", Path(settings.artifact_root), seen=[], delay_s=8)
    _, worker_a = build_escnn_app(settings, slow)
    producer = build_broker(settings)
    await start_with_retry(producer, settings)
    await start_with_retry(worker_a, settings)
    await publish_event(producer, settings, event)
    await wait_until(lambda: bool(slow.seen), timeout_s=60, what="worker A to start the LN")
    await worker_a.stop()  # mid-LN: the LN is released, not lost and not half-published
    assert not results["scored"]
    b_seen: list[str] = []
    _, worker_b = build_escnn_app(settings, _scorer(settings, b_seen))
    try:
        await start_with_retry(worker_b, settings)
        await wait_until(lambda: bool(results["scored"]), timeout_s=120, what="worker B to score the LN")
        await asyncio.sleep(9)  # A's abandoned computation ends meanwhile; it must publish nothing
    finally:
        await worker_b.stop()
        await producer.stop()
    assert b_seen == [event.ln_id]
    assert [e.ln_id for e in results["scored"]] == [event.ln_id]
