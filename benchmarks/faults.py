"""Fault-injection suite (issue 18): every fault at three timings against the distributed pipeline.

Each round runs the 3-slide demo study through `watch`, `serve detector`, two `serve escnn` workers
and `serve reporter` on a private Apache Kafka broker and a private PostgreSQL server (both started
here, on free loopback ports) and injects one fault; `tests/integration/fault_drills.py` says what
each round checks. Prints the faults x outcome table on stderr and everything as JSON on stdout;
exits 1 when any round fails a check.

    .venv/bin/python benchmarks/faults.py [--only TEXT] [--fast]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, quiet_logs
from tests.integration.fault_catalogue import FAST_TIER, UNDISTURBED, drills, table
from tests.integration.fault_drills import Cluster, run_drill


async def _main(only: str | None, fast: bool) -> int:
    chosen = [
        d
        for d in drills()
        if (only is None or only.lower() in d.fault.lower())
        and (not fast or (d.fault, d.timing) in FAST_TIER)
    ]
    work = Path(tempfile.mkdtemp(prefix="pathstream-faults-"))
    cluster = Cluster(work)
    cluster.start()
    try:
        baseline_outcome, baseline = await run_drill(cluster, UNDISTURBED, None)
        outcomes = [baseline_outcome]
        print(f"undisturbed: {baseline_outcome.ok} {baseline_outcome.details}", file=sys.stderr)
        for drill in chosen:
            outcome, _ = await run_drill(cluster, drill, baseline)
            outcomes.append(outcome)
            print(f"{drill.fault} / {drill.timing}: ok={outcome.ok} {outcome.details}", file=sys.stderr)
    finally:
        cluster.stop()
    if all(o.ok for o in outcomes):
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"rounds' logs kept in {work}/rounds", file=sys.stderr)
    print(table(outcomes), file=sys.stderr)
    emit(
        {
            "benchmark": "faults",
            "models": "bundled demo checkpoints (compact16)",
            "study": {
                "slides": 3,
                "positive": baseline.positive,
                "lns": len(baseline.lns),
                "pn": baseline.pn_category,
            },
            "rounds": [o.as_dict() for o in outcomes],
            "all_ok": all(o.ok for o in outcomes),
        }
    )
    return 0 if all(o.ok for o in outcomes) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="Run only faults whose name contains this text.")
    parser.add_argument("--fast", action="store_true", help="Only the suite's fast tier (one timing each).")
    args = parser.parse_args()
    quiet_logs()
    sys.exit(asyncio.run(_main(args.only, args.fast)))


if __name__ == "__main__":
    main()
