"""Model files: reading checkpoints with a clear error, and the model version every prediction records.

A model version is `<service>@sha256:<first 16 hex digits of the checkpoint file's SHA-256>`, so the
same file gives the same version on every worker, and any retraining gives a new one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from pathstream.shared.errors import ErrorCode, PathStreamError


def model_version(service: str, path: str | Path) -> str:
    """`<service>@sha256:<16 hex>` of the file at `path` (e.g. `detector@sha256:9f2c41d0aa51e3b7`)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{service}@sha256:{digest.hexdigest()[:16]}"


def read_torch_file(path: str | Path, what: str, hint: str) -> Any:
    """Load a `torch.save` file on the CPU with `weights_only=True` (no code runs from the file).

    `what` names the file in the error ("the ESCNN weights"); `hint` says what to give instead.
    Raises `PathStreamError(MODEL_UNAVAILABLE)` when the file is missing or unreadable.
    """
    file = Path(path)
    if not file.is_file():
        raise PathStreamError(ErrorCode.MODEL_UNAVAILABLE, f"Cannot find {what} at {file}.", hint=hint)
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a bad file; all mean "unreadable"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE, f"Cannot read {what} {file}: {reason}.", hint=hint
        ) from None
