"""Which tile extent and compression the tile store should use, measured side by side.

For each candidate (zstd, lossless WebP, lossy WebP; 256 or 512 tiles) the same slides are ingested
and the store size, ingest speed, random 512x512 read latency at 0.46 um/px and pixel fidelity
(against the lossless store) are measured in one run. Inputs: the real H&E slides in
../shared/data/real/wsi and a synthetic lymph-node slide.

    .venv/bin/python benchmarks/tile_format.py [--synthetic 16000] [--reads 40]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, quiet_logs
from pathstream.shared.tilestore.ingest import ingest_slide
from pathstream.shared.tilestore.layout import TileFormat
from pathstream.shared.tilestore.reader import TileStore
from pathstream.synthetic.lymph_node import write_lymph_node_slide
from tests.real_data import real_data_dir

REAL = real_data_dir() / "wsi"
CANDIDATES = {
    "zstd-256": TileFormat(256, "zstd", 7),
    "zstd-512": TileFormat(512, "zstd", 7),
    "zstd3-512": TileFormat(512, "zstd", 3),
    "webp-lossless-256": TileFormat(256, "webp-lossless"),
    "webp-lossless-512": TileFormat(512, "webp-lossless"),
    "webp-q90-256": TileFormat(256, "webp-lossy", 90),
    "webp-q90-512": TileFormat(512, "webp-lossy", 90),
    "webp-q80-512": TileFormat(512, "webp-lossy", 80),
}
REFERENCE = "webp-lossless-512"


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _reads(store: TileStore, positions: list[tuple[int, int]]) -> list[float]:
    array = store.array("20x")
    times = []
    for x, y in positions:
        started = time.perf_counter()
        array.read(x, y, 512, 512)
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure(slide: Path, mpp: float | None, reads: int, work: Path) -> dict[str, object]:
    results: dict[str, dict[str, float]] = {}
    stores: dict[str, TileStore] = {}
    rng = np.random.default_rng(0)
    positions: list[tuple[int, int]] = []
    for name, fmt in CANDIDATES.items():
        root = work / name
        result = ingest_slide(slide, str(root), "s", mpp=mpp, fmt=fmt)
        store = TileStore.open(result.store_uri)
        stores[name] = store
        escnn = store.array("20x")
        if not positions:
            positions = [
                (
                    int(rng.integers(0, max(1, escnn.width - 512))),
                    int(rng.integers(0, max(1, escnn.height - 512))),
                )
                for _ in range(reads)
            ]
        latencies = _reads(store, positions)
        output_mpx = sum(a.width * a.height for a in result.arrays) / 1e6
        results[name] = {
            "store_mb": round(_size(root) / 1e6, 2),
            "bytes_per_output_px": round(_size(root) / (output_mpx * 1e6), 3),
            "ingest_s": round(result.seconds, 2),
            "ingest_level0_mpx_per_s": round(result.megapixels / result.seconds, 1),
            "read_512_ms_median": round(statistics.median(latencies), 2),
            "read_512_ms_p95": round(float(np.percentile(latencies, 95)), 2),
        }
    reference = stores[REFERENCE].array("20x")
    for name, store in stores.items():
        array = store.array("20x")
        diffs = [
            np.abs(
                array.read(x, y, 512, 512).astype(np.int16) - reference.read(x, y, 512, 512).astype(np.int16)
            )
            for x, y in positions[:10]
        ]
        stacked = np.stack(diffs).astype(np.float64)
        mse = float((stacked**2).mean())
        results[name]["mean_abs_error_vs_lossless"] = round(float(stacked.mean()), 3)
        results[name]["psnr_db_vs_lossless"] = round(10 * np.log10(255**2 / mse), 1) if mse > 0 else None
    base = results["zstd-512"]
    for values in results.values():
        values["size_ratio_vs_zstd512"] = round(values["store_mb"] / base["store_mb"], 3)
        values["read_ratio_vs_zstd512"] = round(values["read_512_ms_median"] / base["read_512_ms_median"], 3)
        values["ingest_ratio_vs_zstd512"] = round(values["ingest_s"] / base["ingest_s"], 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--synthetic", type=int, default=16000, help="side of the synthetic slide (px)")
    parser.add_argument("--reads", type=int, default=40)
    args = parser.parse_args()
    quiet_logs()
    work = Path(tempfile.mkdtemp(prefix="tile-format-"))
    try:
        synthetic, _ = write_lymph_node_slide(
            work / "synthetic", args.synthetic, args.synthetic, 3, seed=1, mpp=0.25
        )
        inputs = {
            "CMU-1-Small-Region.svs (real H&E, 0.499 um/px)": (REAL / "CMU-1-Small-Region.svs", None),
            "tcga-cr-7395-01a-01-ts1.svs (real H&E, mpp given 0.25)": (
                REAL / "tcga-cr-7395-01a-01-ts1.svs",
                0.25,
            ),
            f"synthetic lymph node {args.synthetic}x{args.synthetic} at 0.25 um/px": (synthetic, None),
        }
        emit(
            {
                "benchmark": "tile_format",
                "results": {
                    label: measure(path, mpp, args.reads, work / f"run{i}")
                    for i, (label, (path, mpp)) in enumerate(inputs.items())
                },
            }
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
