"""Latency of a 512 x 512 read at 0.46 um/px: tile store vs OpenSlide read_region + resize.

Both read the same random areas of the same slide in one run (a synthetic 20k x 20k lymph-node
slide at 0.25 um/px, and the real CMU-1-Small-Region.svs); OpenSlide reads the level-0 area
(about 942 x 942 px at 0.25 um/px) and resizes it with area averaging, which is what a service
would do without the tile store.

    .venv/bin/python benchmarks/read_latency.py [--reads 100] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import openslide

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, quiet_logs
from pathstream.shared.tilestore.ingest import ingest_slide
from pathstream.shared.tilestore.reader import TileStore
from pathstream.synthetic.lymph_node import write_lymph_node_slide
from tests.real_data import real_data_dir

REAL = real_data_dir() / "wsi" / "CMU-1-Small-Region.svs"
SIZE = 512


def _summary(times_ms: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(times_ms), 2),
        "p95_ms": round(float(np.percentile(times_ms, 95)), 2),
        "mean_ms": round(statistics.fmean(times_ms), 2),
    }


def measure(slide: Path, work: Path, reads: int) -> dict[str, object]:
    result = ingest_slide(slide, str(work / "stores"), slide.parent.name or "slide")
    array = TileStore.open(result.store_uri).array("20x")
    rng = np.random.default_rng(0)
    positions = [
        (int(rng.integers(0, max(1, array.width - SIZE))), int(rng.integers(0, max(1, array.height - SIZE))))
        for _ in range(reads)
    ]
    store_ms, openslide_ms = [], []
    with openslide.OpenSlide(str(slide)) as handle:
        for x, y in positions:
            started = time.perf_counter()
            array.read(x, y, SIZE, SIZE)
            store_ms.append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            left, top = array.to_level0(x, y)
            right, bottom = array.to_level0(x + SIZE, y + SIZE)
            region = handle.read_region(
                (round(left), round(top)), 0, (round(right - left), round(bottom - top))
            )
            rgb = np.asarray(region.convert("RGB"))
            cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            openslide_ms.append((time.perf_counter() - started) * 1000)
    store, direct = _summary(store_ms), _summary(openslide_ms)
    return {
        "tile_store": store,
        "openslide_read_region_plus_resize": direct,
        "speedup_median": round(direct["median_ms"] / store["median_ms"], 2),
        "speedup_mean": round(direct["mean_ms"] / store["mean_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument("--work", type=Path, default=None, help="reuse/keep the synthetic slide here")
    args = parser.parse_args()
    quiet_logs()
    work = args.work or Path(tempfile.mkdtemp(prefix="read-bench-"))
    synthetic = work / "synthetic-20000" / "slide.tif"
    if not synthetic.exists():
        write_lymph_node_slide(synthetic.parent, 20000, 20000, 4, seed=20000, mpp=0.25)
    results = {}
    for label, slide in {
        "synthetic 20000x20000 at 0.25 um/px": synthetic,
        "CMU-1-Small-Region.svs (real, 0.499 um/px)": REAL,
    }.items():
        scratch = Path(tempfile.mkdtemp(prefix="read-store-", dir=work))
        results[label] = measure(slide, scratch, args.reads)
        shutil.rmtree(scratch, ignore_errors=True)
    emit(
        {
            "benchmark": "read_latency",
            "region": f"{SIZE}x{SIZE} at 0.46 um/px",
            "reads": args.reads,
            "results": results,
        }
    )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
