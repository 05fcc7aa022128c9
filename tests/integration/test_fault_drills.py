"""The fault-injection suite's fast tier (issue 18): one timing of each fault that
`test_distributed_pipeline.py` does not already drill, on a private Apache Kafka broker and a private
PostgreSQL server, each round checked against an undisturbed round of the same study.

`benchmarks/faults.py` runs every fault at three timings; `fault_drills.py` says what is checked and
`fault_catalogue.py` what each fault does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.integration.fault_catalogue import FAST_TIER, UNDISTURBED, drills
from tests.integration.fault_drills import Cluster, Drill, StudyResult, run_drill

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

FAST = [d for d in drills() if (d.fault, d.timing) in FAST_TIER]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("drills"))
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def baseline(cluster: Cluster) -> StudyResult:
    outcome, result = asyncio.run(run_drill(cluster, UNDISTURBED, None))
    assert outcome.ok, outcome.details
    assert len(result.lns) >= 9 and result.positive >= 1, "the study must have LNs to disturb"
    return result


def test_the_fast_tier_covers_each_fault_the_other_drills_do_not() -> None:
    assert {d.fault for d in FAST} == {
        "reporter SIGKILL mid-event",
        "PostgreSQL down 30 s",
        "hostile messages",
        "replay of every topic from offset 0",
        "12 concurrent amendments of one LN",
    }


@pytest.mark.parametrize("drill", FAST, ids=lambda d: f"{d.fault}/{d.timing}")
def test_fault_leaves_the_study_as_an_undisturbed_run(
    cluster: Cluster, baseline: StudyResult, drill: Drill
) -> None:
    outcome, _ = asyncio.run(run_drill(cluster, drill, baseline))
    assert outcome.ok, "\n".join(outcome.details)
