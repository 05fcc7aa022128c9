"""`pathstream evaluate escnn` scores labelled synthetic LNs through the worker's path and reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pathstream.services.escnn.model import build_escnn, save_checkpoint
from pathstream.synthetic.lymph_node import write_lymph_node_slide

pytestmark = pytest.mark.integration


def test_evaluate_escnn_reports_both_levels_and_writes_a_roc_plot(tmp_path: Path) -> None:
    _, truth_a = write_lymph_node_slide(
        tmp_path / "data" / "a", 5200, 4000, 3, seed=41, mpp=0.92, positive_fraction=0.5
    )
    _, truth_b = write_lymph_node_slide(
        tmp_path / "data" / "b", 5200, 4000, 2, seed=42, mpp=0.92, positive_fraction=0.5
    )
    torch.manual_seed(0)
    checkpoint = tmp_path / "escnn.pt"
    save_checkpoint(build_escnn("resnet18"), checkpoint)
    result = subprocess.run(
        [
            sys.executable, "-c", "from pathstream.services.cli import main; main()",
            "evaluate", "escnn", str(tmp_path / "data"), "--checkpoint", str(checkpoint),
            "--backbone", "resnet18", "--tile-size", "1024", "--out", str(tmp_path / "out"),
            "--work", str(tmp_path / "stores"), "--json",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    lns = truth_a.lymph_nodes + truth_b.lymph_nodes
    assert metrics["ln"]["n"] == len(lns) == 5
    assert metrics["ln"]["positives"] == sum(1 for n in lns if n.lesions)
    assert metrics["slide"]["n"] == 2
    assert set(metrics["ln"]["thresholds"]) == {"0.4", "0.15"}
    assert metrics["model_version"].startswith("escnn@sha256:")
    assert Path(metrics["roc_png"]).is_file()
    assert len(list((tmp_path / "out" / "heatmaps").rglob("*_cam.png"))) == 5
