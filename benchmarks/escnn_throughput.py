"""ESCNN scoring throughput: lymph nodes per minute for one worker, through the real scoring path.

A synthetic gastric dissection slide (0.25 um/px, nodes of realistic size, 0.7-5 mm) is ingested
into a TileDB store; every node is then scored exactly as the worker does it (`LymphNodeScorer`:
contour-masked 20x tiles from the store, streaming inference, CAM overlay PNG, lesion polygons).
The first LN is a warm-up and is reported but not counted. Untrained weights: speed does not depend
on them. Run on CPU here; with CUDA present the same script measures the GPU (bf16).

    .venv/bin/python benchmarks/escnn_throughput.py [--backbone resnet50] [--nodes 5] [--json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, quiet_logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the JSON result (always on)")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--width", type=int, default=24000, help="slide width at 0.25 um/px")
    parser.add_argument("--height", type=int, default=16000)
    parser.add_argument("--tile", type=int, default=None, help="streaming tile; default from free memory")
    args = parser.parse_args()
    quiet_logs()
    import torch

    from pathstream.services.escnn.model import build_escnn
    from pathstream.services.escnn.scoring import LymphNodeScorer
    from pathstream.services.escnn.streaming import StreamingESCNN
    from pathstream.shared.events import BBox, LymphNodeDetected
    from pathstream.shared.tilestore.ingest import ingest_slide
    from pathstream.shared.tilestore.reader import TileStore
    from pathstream.synthetic.lymph_node import write_lymph_node_slide

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = "bf16" if device == "cuda" else "fp32"
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        slide, truth = write_lymph_node_slide(
            work / "slide", args.width, args.height, args.nodes, seed=7, mpp=0.25
        )
        store = TileStore.open(ingest_slide(slide, str(work / "stores"), "bench").store_uri)
        torch.manual_seed(0)
        engine = StreamingESCNN(
            build_escnn(args.backbone).eval(), tile_size=args.tile, device=device, precision=precision
        )
        scorer = LymphNodeScorer(engine, "escnn@sha256:benchmark", work / "artifacts")
        per_ln: list[dict[str, Any]] = []
        for node in truth.lymph_nodes:
            xs, ys = [p[0] for p in node.polygon], [p[1] for p in node.polygon]
            event = LymphNodeDetected(
                ln_id=f"bench_ln{node.index:03d}",
                slide_id="bench",
                study_id="bench",
                index=node.index,
                contour=node.polygon,
                bbox=BBox(x=min(xs), y=min(ys), width=max(xs) - min(xs), height=max(ys) - min(ys)),
                area_um2=node.area_um2,
                store_uri=store.uri,
                model_version="detector@sha256:benchmark",
            )
            started = time.perf_counter()
            scorer.score(event, store)
            seconds = time.perf_counter() - started
            array = store.array("20x")
            _, _, width20, height20 = array.bbox_from_level0(
                event.bbox.x, event.bbox.y, event.bbox.width, event.bbox.height
            )
            per_ln.append(
                {
                    "ln": event.ln_id,
                    "pixels_20x": [width20, height20],
                    "area_mm2": round(node.area_um2 / 1e6, 3),
                    "seconds": round(seconds, 2),
                }
            )
    counted = per_ln[1:] or per_ln
    total = sum(item["seconds"] for item in counted)
    emit(
        {
            "benchmark": "escnn_throughput",
            "backbone": args.backbone,
            "device": device,
            "precision": precision,
            "tile": engine.tile_size,
            "lymph_nodes": per_ln,
            "counted": len(counted),
            "mean_megapixels_20x": round(
                sum(i["pixels_20x"][0] * i["pixels_20x"][1] for i in counted) / len(counted) / 1e6, 2
            ),
            "lns_per_minute": round(60 * len(counted) / total, 3),
        }
    )


if __name__ == "__main__":
    main()
