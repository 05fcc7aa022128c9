"""What every PathStream training loop needs to stop and resume safely.

- `InterruptFlag`: Ctrl-C / SIGTERM become a flag checked between steps, so an interruption never
  lands between an optimiser step and the step count.
- `save_state_atomically`: a resume state (or checkpoint) is written whole or not at all.
- `BEST_CHECKPOINT`, `RESUME_STATE`, `METRICS_LOG`: the file names every training run writes.
- `load_resume_state`: a resume state, refused when the run's settings differ.
- `rng_state_text` / `restore_rng`: numpy generator state as JSON text, because PCG64 holds 128-bit
  integers that `torch.load(weights_only=True)` refuses.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pathstream.shared.atomic_files import write_atomically
from pathstream.shared.errors import ErrorCode, PathStreamError

BEST_CHECKPOINT = "best.pt"
"""The lowest-validation-loss (or best-metric) model: what gets served; its hash is the version."""
RESUME_STATE = "last.pt"
"""Everything `--resume` needs."""
METRICS_LOG = "metrics.jsonl"
"""One JSON line per validation."""


class InterruptFlag:
    """Turns SIGINT / SIGTERM into `raised = True` while installed (main thread only; elsewhere the
    signals keep their handlers). Call `restore()` when the loop ends."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.raised = True

    def restore(self) -> None:
        """Put the previous signal handlers back."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def save_state_atomically(state: dict[str, Any], path: str | Path) -> None:
    """`torch.save(state, path)` through a temporary file and a rename: never a half-written file."""
    write_atomically(Path(path), lambda handle: torch.save(state, handle))


def load_resume_state(path: Path, config_text: str) -> dict[str, Any]:
    """The resume state at `path` (written by a run whose settings serialise to `config_text`).

    Raises `PathStreamError(INVALID_CONFIGURATION)` when it was written with other settings.
    """
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if state["config"] != config_text:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"{path} was written with other training settings; a resumed run must use the same.",
            hint="Repeat the original options, or train into a new --out folder.",
        )
    return state


def rng_state_text(rng: np.random.Generator) -> str:
    """The generator's state as JSON text (storable in a weights-only torch file)."""
    return json.dumps(rng.bit_generator.state)


def restore_rng(rng: np.random.Generator, text: str) -> None:
    """Put a state written by `rng_state_text` back into `rng`."""
    rng.bit_generator.state = json.loads(text)
