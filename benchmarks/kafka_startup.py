"""Local Apache Kafka start-up time: `infra/local/kafka-up.sh` from nothing, on kept data, and reused.

Three cases, each run `--repeats` times on a free loopback port with a state folder of its own:

- `first`: an empty jar cache (`PATHSTREAM_KAFKA_HOME`) and no storage: Maven copies the broker
  and its dependencies (from `~/.m2`, or Maven Central when that is empty too), the storage is
  formatted, the broker starts and answers a metadata request;
- `restart`: jars cached and storage kept (`kafka-down.sh --keep-data`): what a suite or a restart
  test pays;
- `reuse`: a second `kafka-up.sh` while the broker runs (idempotence).

Target (issue 16): the broker answers in under 20 s. Usage:

    .venv/bin/python benchmarks/kafka_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit
from tests.integration.kafka_broker import KAFKA_DOWN, KAFKA_UP, free_port

TARGET_S = 20.0


def _timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    times: dict[str, list[float]] = {"first": [], "restart": [], "reuse": []}
    for _ in range(args.repeats):
        work = Path(tempfile.mkdtemp(prefix="kafka-startup-"))
        port = str(free_port())
        env = {
            **os.environ,
            "PATHSTREAM_KAFKA_HOME": str(work / "jars"),
            "PATHSTREAM_RUN_DIR": str(work / "state"),
            "PATHSTREAM_LOCAL_KAFKA_CONTROLLER_PORT": str(free_port()),
        }
        try:
            times["first"].append(_timed([str(KAFKA_UP), port], env))
            times["reuse"].append(_timed([str(KAFKA_UP), port], env))
            subprocess.run([str(KAFKA_DOWN), port, "--keep-data"], env=env, check=True, capture_output=True)
            times["restart"].append(_timed([str(KAFKA_UP), port], env))
        finally:
            subprocess.run([str(KAFKA_DOWN), port], env=env, check=False, capture_output=True)
            shutil.rmtree(work, ignore_errors=True)

    summary = {
        case: {
            "min_s": round(min(v), 2),
            "median_s": round(statistics.median(v), 2),
            "max_s": round(max(v), 2),
        }
        for case, v in times.items()
    }
    worst = max(max(times["first"]), max(times["restart"]))
    emit(
        {
            "benchmark": "kafka_startup",
            "repeats": args.repeats,
            "seconds": {case: [round(t, 2) for t in v] for case, v in times.items()},
            "summary": summary,
            "target_s": TARGET_S,
            "worst_start_s": round(worst, 2),
            "target_met": worst < TARGET_S,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
