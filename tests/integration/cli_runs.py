"""`pathstream` as a user runs it: a real subprocess, with the bundled demo models configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pathstream.services.demo.run import DETECTOR_CHECKPOINT, ESCNN_BACKBONE, ESCNN_CHECKPOINT


def demo_model_env(data_dir: Path) -> dict[str, str]:
    """The `PATHSTREAM_*` variables for the bundled LN demo models, with data under `data_dir`."""
    return {
        "PATHSTREAM_DATA_DIR": str(data_dir),
        "PATHSTREAM_DETECTOR_CHECKPOINT": str(DETECTOR_CHECKPOINT),
        "PATHSTREAM_ESCNN_CHECKPOINT": str(ESCNN_CHECKPOINT),
        "PATHSTREAM_ESCNN_BACKBONE": ESCNN_BACKBONE,
        "PATHSTREAM_ESCNN_TILE_SIZE": "1024",
    }


def pathstream_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 800, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run `python -m pathstream.services.cli ARGS` (quiet logs, wide terminal) and return its
    exit status and output; `env` is added to this process's environment."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "pathstream.services.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PATHSTREAM_LOG_LEVEL": "WARNING", "COLUMNS": "200", **(env or {})},
        **kwargs,
    )
