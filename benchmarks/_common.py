"""Helpers for benchmark scripts: machine description and JSON output."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any


def machine() -> dict[str, Any]:
    """Where a benchmark ran: CPU model, cores, memory, Python."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = None
    try:
        with open("/proc/meminfo") as handle:
            memory_gib = round(int(handle.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": sys.version.split()[0],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def quiet_logs() -> None:
    """Send PathStream's logs to stderr at WARNING, keeping stdout for the JSON result."""
    from pathstream.shared.logs import configure_logging

    configure_logging("WARNING", "json", sys.stderr)


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's result as one JSON object on stdout."""
    print(json.dumps({"machine": machine(), **result}, indent=1))
