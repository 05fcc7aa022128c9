"""`pathstream ingest` and `pathstream synth` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration


def _run(*args: str, tmp_path: Path, roots: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATHSTREAM_DATA_DIR": str(tmp_path), "PATHSTREAM_ALLOWED_ROOTS": roots}
    return subprocess.run(
        [sys.executable, "-c", "from pathstream.services.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_ingest_json(tmp_path: Path) -> None:
    slide = SHARED_DATA / "wsi" / "CMU-1-Small-Region.svs"
    result = _run(
        "ingest",
        str(slide),
        "--store",
        str(tmp_path / "stores"),
        "--json",
        tmp_path=tmp_path,
        roots=str(SHARED_DATA),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["slide_id"] == "CMU-1-Small-Region"
    assert report["store_uri"] == str(tmp_path / "stores" / "CMU-1-Small-Region")
    assert len(report["sha256"]) == 64 and report["mpp_source"] == "metadata"
    assert {(a["name"], a["mpp"]) for a in report["arrays"]} == {("20x", 0.46), ("1.25x", 7.36)}
    assert all(a["width"] > 0 and a["height"] > 0 for a in report["arrays"])


@pytest.mark.parametrize(
    ("name", "code"),
    [("tcga-cr-7395-01a-01-ts1.svs", "MPP_MISSING"), ("CMU-1-Small-Region.jpeg.tiff", "MPP_ABSURD")],
)
def test_ingest_errors_are_one_line_without_traceback(tmp_path: Path, name: str, code: str) -> None:
    result = _run(
        "ingest",
        str(SHARED_DATA / "wsi" / name),
        "--store",
        str(tmp_path),
        tmp_path=tmp_path,
        roots=str(SHARED_DATA),
    )
    assert result.returncode == 2
    assert f"[{code}]" in result.stderr and "--mpp" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_ingest_refuses_outside_allowed_roots(tmp_path: Path) -> None:
    result = _run(
        "ingest",
        str(SHARED_DATA / "wsi" / "CMU-1-Small-Region.svs"),
        "--store",
        str(tmp_path),
        tmp_path=tmp_path,
        roots=str(tmp_path / "inbox"),
    )
    assert result.returncode == 2 and "[OUTSIDE_ALLOWED_ROOTS]" in result.stderr


def test_synth_then_ingest(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    made = _run(
        "synth",
        "lymph-node",
        "--out",
        str(out),
        "--width",
        "5000",
        "--height",
        "4000",
        "--nodes",
        "1",
        "--seed",
        "3",
        "--mpp",
        "0.5",
        tmp_path=tmp_path,
        roots=str(tmp_path),
    )
    assert made.returncode == 0, made.stderr
    assert (out / "slide.tif").is_file() and (out / "truth.json").is_file()
    ingested = _run(
        "ingest",
        str(out / "slide.tif"),
        "--store",
        str(tmp_path / "stores"),
        "--json",
        tmp_path=tmp_path,
        roots=str(tmp_path),
    )
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["slide_id"] == "slide"
    marrow = _run(
        "synth",
        "marrow",
        "--out",
        str(tmp_path / "marrow"),
        "--cases",
        "3",
        "--rois",
        "1",
        "--field-size",
        "128",
        tmp_path=tmp_path,
        roots=str(tmp_path),
    )
    assert marrow.returncode == 0, marrow.stderr
    crowded = _run(
        "synth",
        "lymph-node",
        "--out",
        str(tmp_path / "x"),
        "--width",
        "2000",
        "--height",
        "2000",
        "--nodes",
        "9",
        tmp_path=tmp_path,
        roots=str(tmp_path),
    )
    assert crowded.returncode == 2 and "no room" in crowded.stderr and "Traceback" not in crowded.stderr
