"""Streaming ESCNN against the ordinary computation: exactness, memory, time, skipping.

Every timing and memory figure comes from a fresh child process that reports its own peak RSS
above its baseline (model and input image already loaded), so numbers measured side by side are
comparable. On CPU the backbone defaults to resnet18 (ResNet50 needs a GPU to be practical at
these sizes); with a GPU the ResNet50 throughput section runs as well.

    .venv/bin/python benchmarks/streaming.py --json [--backbone resnet18] [--tile 2048]

Keys (issue 4): max_rel_err_logit, max_rel_err_grad, skip_identical, peak_mem_mb (per size),
mem_ratio_8192_vs_2048 (goal <= 1.25), time_ratio_stream_vs_plain_2048 (goal <= 1.5),
skip_speedup_75pct_white (goal >= 3), and the same three prefixed train_ for a training step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, quiet_logs

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np, torch
import torch.nn.functional as F
sys.path.insert(0, sys.argv[1])
from benchmarks.streaming import synthetic_tissue, randomised_model
from pathstream.services.escnn.model import preprocess
from pathstream.services.escnn.streaming import StreamingESCNN

spec = json.loads(sys.argv[2])
device = torch.device(spec["device"])
model = randomised_model(spec["backbone"]).to(device)
image = synthetic_tissue(spec["size"], spec["white"], spec["layout"])

def status_mb(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0

def run():
    if spec["mode"] == "plain-infer":
        with torch.no_grad():
            model.eval()
            pixels = preprocess(image.read(0, 0, image.height, image.width), device)
            return float(model(pixels)[0, 0])
    if spec["mode"] == "plain-train":
        model.train(); model.zero_grad()
        pixels = preprocess(image.read(0, 0, image.height, image.width), device)
        loss = F.binary_cross_entropy_with_logits(model(pixels), torch.ones(1, 1, device=device))
        loss.backward(); return float(loss)
    streaming = StreamingESCNN(model, tile_size=spec["tile"], skip_white=spec["skip"],
                               sparse_backward=spec["skip"], device=device, precision=spec["precision"])
    if spec["mode"] == "stream-infer":
        return float(streaming.infer(image)[0][0])
    model.zero_grad()
    return streaming.train_step(image, 1.0)

warm = synthetic_tissue(512, 0.0, "band")
with torch.no_grad():
    model.eval(); model(preprocess(warm.read(0, 0, 512, 512), device))
if device.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
baseline = status_mb("VmRSS")
# Reset the kernel's peak-RSS mark, so the peak is this run's, not the imports' (Linux >= 4.0).
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
started = time.perf_counter()
value = run()
if device.type == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - started
peak = status_mb("VmHWM")
result = {"seconds": seconds, "value": value, "peak_rss_mb": peak, "working_mb": max(0.0, peak - baseline)}
if device.type == "cuda":
    result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(result))
"""


class TissueSource:
    """A size x size synthetic image generated on demand (a 75k^2 image never exists in memory):
    smooth random 'tissue' blocks with noise, and a white share laid out as 'band' (left columns)
    or 'quadrant' (tissue only in the top-left square, e.g. 75% white)."""

    BLOCK = 16
    PERIOD = 1021  # prime: the texture never lines up with the tiles

    def __init__(self, size: int, white: float, layout: str) -> None:
        self.size = size
        rng = np.random.default_rng(size)
        blocks = -(-self.PERIOD // self.BLOCK)
        coarse = rng.integers(60, 230, (blocks, blocks, 3), dtype=np.uint8)
        texture = np.kron(coarse, np.ones((self.BLOCK, self.BLOCK, 1), np.uint8))[
            : self.PERIOD, : self.PERIOD
        ]
        noise = rng.integers(0, 24, texture.shape, dtype=np.uint8)
        self.texture = np.minimum(texture.astype(np.uint16) + noise, 254).astype(np.uint8)
        if layout == "quadrant":
            self.tissue_rows = self.tissue_cols = round(float(size * np.sqrt(1 - white)))
        else:
            self.tissue_rows, self.tissue_cols = size, size - int(size * white)
        self.band = layout != "quadrant"

    @property
    def height(self) -> int:
        return self.size

    @property
    def width(self) -> int:
        return self.size

    def read(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        rows = (y0 + np.arange(height)) % self.PERIOD
        cols = (x0 + np.arange(width)) % self.PERIOD
        out = self.texture[np.ix_(rows, cols)]
        row_index = np.arange(y0, y0 + height)[:, None]
        col_index = np.arange(x0, x0 + width)[None, :]
        if self.band:
            white = col_index < self.size - self.tissue_cols
        else:
            white = (row_index >= self.tissue_rows) | (col_index >= self.tissue_cols)
        out[np.broadcast_to(white, (height, width))] = 255
        return out


def synthetic_tissue(size: int, white: float, layout: str) -> TissueSource:
    """The benchmark's image (see `TissueSource`)."""
    return TissueSource(size, white, layout)


def randomised_model(backbone: str):  # type: ignore[no-untyped-def]
    """An ESCNN with varied frozen statistics (a realistic amount of work, not a trained model)."""
    import torch

    from pathstream.services.escnn.model import FrozenBatchNorm2d, build_escnn

    torch.manual_seed(0)
    model = build_escnn(backbone)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        model.head.weight.normal_(0, 0.05)
    return model


def child(**spec: Any) -> dict[str, float]:
    """Run one measurement in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({spec}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def exactness(backbone: str) -> dict[str, Any]:
    """Streaming vs ordinary at 1300 x 1500 (half white), plus the ordinary run's own noise."""
    import torch
    import torch.nn.functional as F

    from pathstream.services.escnn.model import preprocess
    from pathstream.services.escnn.streaming import StreamingESCNN

    model = randomised_model(backbone)
    image = synthetic_tissue(1500, 0.5, "band").read(0, 0, 1300, 1500)

    def grads() -> list[torch.Tensor]:
        return [p.grad.detach().clone() for p in model.parameters()]

    def ordinary(channels_last: bool, threads: int) -> tuple[float, list[torch.Tensor]]:
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model.to(memory_format=fmt)
        model.zero_grad()
        logit = model(preprocess(image).contiguous(memory_format=fmt))
        F.binary_cross_entropy_with_logits(logit, torch.ones(1, 1)).backward()
        model.to(memory_format=torch.contiguous_format)
        torch.set_num_threads(saved)
        return float(logit), grads()

    def compare(a: list[torch.Tensor], b: list[torch.Tensor]) -> dict[str, float]:
        pairs = [(x, y) for x, y in zip(a, b, strict=True) if y.norm() > 0]
        total = torch.sqrt(sum(((x - y) ** 2).sum() for x, y in pairs)) / torch.sqrt(
            sum((y**2).sum() for _, y in pairs)
        )
        return {
            "global_rel": float(total),
            "worst_param_rel": max(float((x - y).norm() / y.norm()) for x, y in pairs),
            "worst_param_cosine": min(
                float(F.cosine_similarity(x.flatten(), y.flatten(), dim=0)) for x, y in pairs
            ),
        }

    model.train()
    plain_logit, plain = ordinary(False, torch.get_num_threads())
    _, floor = ordinary(True, 1)
    results: dict[str, Any] = {"image": "1300x1500, 50% white", "tile": 768}
    logits, grad_sets, cams = {}, {}, {}
    for skip in (True, False):
        streaming = StreamingESCNN(model, tile_size=768, skip_white=skip, sparse_backward=skip)
        logit, cam = streaming.infer(image)
        model.zero_grad()
        streaming.train_step(image, 1.0)
        logits[skip], cams[skip], grad_sets[skip] = float(logit[0]), cam, grads()
    results["max_rel_err_logit"] = abs(logits[True] - plain_logit) / abs(plain_logit)
    stream_errors = compare(grad_sets[True], plain)
    results["max_rel_err_grad"] = stream_errors["worst_param_rel"]
    results["grad_errors_stream_vs_plain"] = stream_errors
    results["grad_noise_floor_plain_vs_plain"] = compare(floor, plain)
    results["skip_identical"] = bool(
        logits[True] == logits[False]
        and torch.equal(cams[True], cams[False])
        and all(torch.equal(a, b) for a, b in zip(grad_sets[True], grad_sets[False], strict=True))
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the JSON result (always on)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--tile", type=int, default=2048)
    parser.add_argument("--skip-tile", type=int, default=1024, help="tile size of the skip-speedup runs")
    args = parser.parse_args()
    quiet_logs()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = "bf16" if device == "cuda" else "fp32"
    common = {"backbone": args.backbone, "device": device, "precision": "fp32", "tile": args.tile}
    skip_tiles = {**common, "tile": args.skip_tile}
    result: dict[str, Any] = {
        "skip_tile": args.skip_tile,
        "benchmark": "streaming",
        "backbone": args.backbone,
        "device": device,
        "tile": args.tile,
    }
    started = time.perf_counter()
    result["exactness"] = exactness(args.backbone)
    for key in ("max_rel_err_logit", "max_rel_err_grad", "skip_identical"):
        result[key] = result["exactness"][key]

    for prefix, mode in (("", "infer"), ("train_", "train")):
        runs = {
            "plain_2048": child(
                **common, mode=f"plain-{mode}", size=2048, white=0.0, layout="band", skip=True
            ),
            "stream_2048": child(
                **common, mode=f"stream-{mode}", size=2048, white=0.0, layout="band", skip=True
            ),
            "stream_2048_tile1024": child(
                **{**common, "tile": 1024},
                mode=f"stream-{mode}",
                size=2048,
                white=0.0,
                layout="band",
                skip=True,
            ),
            "stream_8192": child(
                **common, mode=f"stream-{mode}", size=8192, white=0.0, layout="band", skip=True
            ),
            # Skipping pays off with the image/tile ratio; 8192 px in 1024-px tiles (14 per side).
            "stream_8192_75pct_white_skip": child(
                **skip_tiles, mode=f"stream-{mode}", size=8192, white=0.75, layout="quadrant", skip=True
            ),
            "stream_8192_75pct_white_noskip": child(
                **skip_tiles, mode=f"stream-{mode}", size=8192, white=0.75, layout="quadrant", skip=False
            ),
        }
        result[f"{prefix}runs"] = runs
        result[f"{prefix}peak_mem_mb"] = {name: round(run["working_mb"], 1) for name, run in runs.items()}
        result[f"{prefix}mem_ratio_8192_vs_2048"] = round(
            runs["stream_8192"]["working_mb"] / runs["stream_2048"]["working_mb"], 3
        )
        result[f"{prefix}time_ratio_stream_vs_plain_2048"] = round(
            runs["stream_2048"]["seconds"] / runs["plain_2048"]["seconds"], 3
        )
        result[f"{prefix}time_ratio_stream_vs_plain_2048_tile1024"] = round(
            runs["stream_2048_tile1024"]["seconds"] / runs["plain_2048"]["seconds"], 3
        )
        result[f"{prefix}skip_speedup_75pct_white"] = round(
            runs["stream_8192_75pct_white_noskip"]["seconds"]
            / runs["stream_8192_75pct_white_skip"]["seconds"],
            3,
        )
    result["goals"] = {
        "mem_ratio_8192_vs_2048": "<= 1.25",
        "time_ratio_stream_vs_plain_2048": "<= 1.5",
        "skip_speedup_75pct_white": ">= 3",
    }
    if device == "cuda":
        result["gpu_resnet50"] = {
            f"{size}": {
                mode: child(
                    backbone="resnet50",
                    device=device,
                    precision=precision,
                    tile=args.tile,
                    mode=f"stream-{mode}",
                    size=size,
                    white=0.5,
                    layout="quadrant",
                    skip=True,
                )
                for mode in ("train", "infer")
            }
            for size in (16384, 32768, 75000)
        }
    else:
        result["gpu_resnet50"] = "not run: no CUDA device"
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    emit(result)


if __name__ == "__main__":
    main()
