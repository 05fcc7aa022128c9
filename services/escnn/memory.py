"""Choose the largest tile that fits the device's free memory.

Activation memory grows with the tile's area. The bytes per input pixel are measured once per
model by running the feature extractor on a small probe tile with hooks that add up every layer's
output (what autograd keeps for the backward pass when training; the two largest consecutive
outputs when only inferring). The tile side is then the largest multiple of the stride whose
estimate fits a fraction of the free memory.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import torch
from torch import nn

from pathstream.services.escnn.geometry import NetworkGeometry

PROBE = 256
MEMORY_FRACTION = 0.5
MAX_TILE = 8192
_AUTOGRAD_OVERHEAD = 1.5  # saved masks and workspace beyond the layer outputs themselves


@lru_cache(maxsize=16)
def _elements_per_pixel(model_id: int, model: nn.Module) -> tuple[float, float]:
    """(sum of all layer outputs, largest two consecutive outputs) in elements per input pixel."""
    sizes: list[int] = []

    def record(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model.features(torch.zeros(1, 3, PROBE, PROBE, device=device))  # type: ignore[operator]
    finally:
        for handle in handles:
            handle.remove()
    pixels = PROBE * PROBE
    pairs = max(a + b for a, b in itertools.pairwise(sizes)) if len(sizes) > 1 else sizes[0]
    return sum(sizes) / pixels, pairs / pixels


def available_bytes(device: torch.device) -> int:
    """Free memory on `device`: CUDA's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


def estimate_bytes(model: nn.Module, tile: int, train: bool, bytes_per_element: int = 4) -> int:
    """Activation bytes for one tile of tile x tile pixels."""
    total, peak = _elements_per_pixel(id(model), model)
    per_pixel = total * _AUTOGRAD_OVERHEAD if train else peak
    return int(per_pixel * tile * tile * bytes_per_element)


def choose_tile_size(
    model: nn.Module,
    device: torch.device,
    geometry: NetworkGeometry,
    train: bool = True,
    precision: str = "fp32",
    budget_bytes: int | None = None,
) -> int:
    """Largest tile side (multiple of the stride, at most 8192) whose activations fit the budget
    (default: half the free memory). Never below what one output's receptive field needs."""
    stride = geometry.stride
    smallest = math.ceil((geometry.receptive_field + stride) / stride) * stride
    budget = budget_bytes if budget_bytes is not None else int(available_bytes(device) * MEMORY_FRACTION)
    element = 2 if precision in ("bf16", "fp16") else 4
    tile = MAX_TILE
    while tile > smallest and estimate_bytes(model, tile, train, element) > budget:
        tile -= stride
    return max(tile, smallest)
