"""Synthetic lymph-node slide generation: throughput and peak memory against slide size.

Each slide is generated in a fresh process that reports its own peak RSS; generation renders tile
by tile and spills reduced pyramid levels to disk, so memory should follow the slide's width at
most, never its area.

    .venv/bin/python benchmarks/synthetic.py [--sizes 10000,20000,50000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, quiet_logs

CHILD = """
import json, resource, sys, time
from pathlib import Path
from pathstream.synthetic.lymph_node import write_lymph_node_slide
size, out = int(sys.argv[1]), Path(sys.argv[2])
started = time.perf_counter()
write_lymph_node_slide(out, size, size, max(1, round((size / 10000) ** 2)), seed=size, mpp=0.25)
seconds = time.perf_counter() - started
print(json.dumps({
    "seconds": round(seconds, 1),
    "level0_mpx_per_s": round(size * size / 1e6 / seconds, 1),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "file_mb": round((out / "slide.tif").stat().st_size / 1e6, 1),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,20000,50000")
    args = parser.parse_args()
    quiet_logs()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    runs = {}
    try:
        for size in sizes:
            child = subprocess.run(
                [sys.executable, "-c", CHILD, str(size), str(work / str(size))],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).resolve().parents[1],
            )
            runs[f"{size}x{size}"] = json.loads(child.stdout)
            shutil.rmtree(work / str(size), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first, last = runs[f"{sizes[0]}x{sizes[0]}"], runs[f"{sizes[-1]}x{sizes[-1]}"]
    emit(
        {
            "benchmark": "synthetic_generation",
            "runs": runs,
            "peak_rss_ratio_largest_vs_smallest": round(last["peak_rss_mb"] / first["peak_rss_mb"], 3),
            "area_ratio_largest_vs_smallest": round((sizes[-1] / sizes[0]) ** 2, 1),
        }
    )


if __name__ == "__main__":
    main()
