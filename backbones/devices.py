"""Which torch device a process computes on, from the `PATHSTREAM_DEVICE` setting."""

from __future__ import annotations

import torch


def resolve_device(setting: str = "auto") -> str:
    """ "auto" -> "cuda" when a CUDA device is present, else "cpu"; anything else (cpu, cuda,
    cuda:N) is returned unchanged."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting
