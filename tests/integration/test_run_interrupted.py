"""Ctrl-C and SIGTERM in `pathstream run` (issue 19), with real signals to a real subprocess: at
migration, mid-ingest and mid-scoring the run stops with exit 130 (143 for SIGTERM) and one line
saying so, never a traceback or a segmentation fault, leaves no half-written tile store, and the
same command run again gives exactly the report of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import tiledb

from pathstream.services.demo.cohort import write_demo_study
from pathstream.shared.tilestore.layout import MetaKey
from tests.integration.cli_runs import demo_model_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _env(data: Path) -> dict[str, str]:
    return {
        **os.environ,
        **demo_model_env(data),
        "PATHSTREAM_LOG_LEVEL": "INFO",
        "PATHSTREAM_LOG_FORMAT": "json",
        "PYTHONFAULTHANDLER": "1",  # a segmentation fault would print its stacks
    }


def _args(slide: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pathstream.services.cli", "run", str(slide), "--out", str(out), "--json"]


def _report(stdout: str) -> list[dict[str, Any]]:
    """The studies of a run's JSON without file locations (they name the run's folders)."""
    studies: list[dict[str, Any]] = json.loads(stdout)["studies"]
    for study in studies:
        for slide in study["slides"]:
            slide.pop("geojson", None)
            for ln in slide["lns"]:
                ln.pop("heatmap", None)
    return studies


def _interrupted(
    slide: Path, data: Path, out: Path, after_event: str, sig: signal.Signals
) -> tuple[int, str]:
    """Run, send `sig` as soon as a log line's event starts with `after_event`; (exit code, stderr)."""
    process = subprocess.Popen(
        _args(slide, out), env=_env(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None and process.stdout is not None
    lines: list[str] = []
    sent = threading.Event()
    stdout: list[str] = []
    reader = threading.Thread(target=lambda: stdout.append(process.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    for line in process.stderr:
        lines.append(line)
        if not sent.is_set() and f'"event": "{after_event}' in line:
            process.send_signal(sig)
            sent.set()
    code = process.wait(120)
    reader.join(30)
    assert sent.is_set(), f"no {after_event!r} log line before the run ended:\n{''.join(lines)[-3000:]}"
    return code, "".join(lines)


def _stores_complete(data: Path) -> None:
    for group in (data / "stores").glob("*") if (data / "stores").exists() else []:
        with tiledb.Group(str(group)) as opened:
            assert MetaKey.COMPLETE in opened.meta, f"half-written store left behind: {group}"


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_study(tmp_path_factory.mktemp("slides"), 1)[0].path


@pytest.fixture(scope="module")
def uninterrupted(slide: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    work = tmp_path_factory.mktemp("uninterrupted")
    done = subprocess.run(_args(slide, work / "out"), env=_env(work / "data"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return _report(done.stdout)


@pytest.mark.parametrize(
    ("stage", "after_event", "sig", "code"),
    [
        ("migration", "Running upgrade", signal.SIGINT, 130),
        ("ingest", "report_version", signal.SIGINT, 130),  # the announcement is recorded, ingest begins
        ("scoring", "ln_scored", signal.SIGINT, 130),
        ("scoring", "ln_scored", signal.SIGTERM, 143),
    ],
)
def test_a_signal_stops_the_run_cleanly_and_a_rerun_finishes_it(
    slide: Path,
    uninterrupted: list[dict[str, Any]],
    tmp_path: Path,
    stage: str,
    after_event: str,
    sig: signal.Signals,
    code: int,
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    started = time.monotonic()
    returncode, stderr = _interrupted(slide, data, out, after_event, sig)
    assert returncode == code, f"{stage}: exit {returncode}\n{stderr[-3000:]}"
    assert "Stopped (" in stderr and "run the same command again" in stderr
    assert "Traceback" not in stderr and "Fatal Python error" not in stderr
    assert time.monotonic() - started < 120
    _stores_complete(data)

    again = subprocess.run(_args(slide, out), env=_env(data), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _report(again.stdout) == uninterrupted, f"the rerun after an interrupt at {stage} differs"
