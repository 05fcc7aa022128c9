"""Ingest throughput and peak memory against slide size, measured side by side in one run.

Synthetic lymph-node slides of 10k, 20k and 50k pixels square (0.25 um/px, nodes scaled with the
area) are generated once, then each is ingested in a fresh process that reports its own peak RSS.
Target (issue 3): peak RSS for 50k x 50k must not exceed 1.5x that for 10k x 10k.

    .venv/bin/python benchmarks/ingest.py [--sizes 10000,20000,50000] [--work DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, quiet_logs
from pathstream.synthetic.lymph_node import write_lymph_node_slide

CHILD = """
import json, resource, sys, time
from pathlib import Path
from pathstream.shared.logs import configure_logging
configure_logging("WARNING", "json", sys.stderr)
from pathstream.shared.tilestore.ingest import ingest_slide
slide, store, workers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
result = ingest_slide(slide, store, "bench", workers=workers)
seconds = time.perf_counter() - started
print(json.dumps({
    "seconds": seconds,
    "level0_megapixels": result.megapixels,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "arrays": [a.summary() for a in result.arrays],
}))
"""

TARGET_RSS_RATIO = 1.5


def slide_for(size: int, work: Path) -> tuple[Path, float]:
    """Generate (or reuse) the synthetic slide of `size` px square; return it and the seconds taken."""
    folder = work / f"synthetic-{size}"
    slide = folder / "slide.tif"
    if slide.exists():
        return slide, 0.0
    nodes = max(1, round((size / 10000) ** 2))
    started = time.perf_counter()
    write_lymph_node_slide(folder, size, size, nodes, seed=size, mpp=0.25)
    return slide, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,20000,50000")
    parser.add_argument("--work", type=Path, default=None, help="keep generated slides here")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    quiet_logs()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    runs = {}
    for size in sizes:
        slide, generated_s = slide_for(size, work)
        store = work / f"store-{size}"
        shutil.rmtree(store, ignore_errors=True)
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(slide), str(store), str(args.workers)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        run = json.loads(child.stdout)
        run["level0_mpx_per_s"] = round(run["level0_megapixels"] / run["seconds"], 1)
        run["synthetic_generation_s"] = round(generated_s, 1)
        run["seconds"] = round(run["seconds"], 1)
        run["peak_rss_mb"] = round(run["peak_rss_mb"], 1)
        runs[f"{size}x{size}"] = run
        shutil.rmtree(store, ignore_errors=True)
    smallest, largest = runs[f"{sizes[0]}x{sizes[0]}"], runs[f"{sizes[-1]}x{sizes[-1]}"]
    ratio = largest["peak_rss_mb"] / smallest["peak_rss_mb"]
    emit(
        {
            "benchmark": "ingest",
            "workers": args.workers,
            "runs": runs,
            "peak_rss_ratio_largest_vs_smallest": round(ratio, 3),
            "target_rss_ratio": TARGET_RSS_RATIO,
            "target_met": ratio <= TARGET_RSS_RATIO,
        }
    )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
