"""Detector training on synthetic slides: held-out IoU, exact LN counts, resumable, CLI evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pathstream.services.detector.inference import LymphNodeSegmenter
from pathstream.services.detector.model import DetectorConfig, read_checkpoint
from pathstream.services.detector.training.dataset import load_training_image
from pathstream.services.detector.training.evaluation import evaluate_images
from pathstream.services.detector.training.trainer import RESUME_STATE, TrainingConfig, train_detector
from pathstream.shared.errors import PathStreamError
from pathstream.training.annotated_slides import find_annotated_slides
from tests.integration.detector_cohort import TrainedDetector, make_slide

# The first test to use `trained_detector` also pays for training it (about 2 minutes on 2 cores).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_small_detector_reaches_iou_08_and_exact_counts_on_held_out_slides(
    trained_detector: TrainedDetector,
) -> None:
    segmenter = LymphNodeSegmenter.from_checkpoint(trained_detector.outcome.best_checkpoint, device="cpu")
    metrics = evaluate_images(segmenter, trained_detector.test_images)
    per_slide = [(s.name, round(s.iou, 3), s.true_lns, s.predicted_lns) for s in metrics.slides]
    assert metrics.iou >= 0.8, per_slide
    assert all(s.count_error == 0 for s in metrics.slides), per_slide
    assert metrics.ln_recall == 1.0 and metrics.ln_precision == 1.0, per_slide
    assert metrics.pixel_accuracy > 0.95


def test_best_checkpoint_records_its_validation_metrics(trained_detector: TrainedDetector) -> None:
    outcome = trained_detector.outcome
    checkpoint = read_checkpoint(outcome.best_checkpoint)
    assert json.loads(checkpoint["metrics"])["iou"] == pytest.approx(outcome.best_metrics["iou"])
    assert outcome.model_version.startswith("detector@sha256:")
    lines = (outcome.best_checkpoint.parent / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [120, 240]


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    make_slide(tmp_path / "data", 7, nodes=2)
    image = load_training_image(find_annotated_slides([tmp_path / "data"])[0], str(tmp_path / "stores"))
    tiny = DetectorConfig(backbone="resnet18", aspp_channels=8, decoder_channels=8, low_level_channels=8)
    config = TrainingConfig(iterations=6, batch_size=2, crop=64, validate_every=3, save_every=5, model=tiny)
    straight = train_detector([image], [image], tmp_path / "straight", config)

    def interrupt_at_4(done: int, total: int, values: dict[str, float]) -> None:
        if done == 4:
            raise KeyboardInterrupt  # as Ctrl-C between iterations would

    partial = tmp_path / "partial"
    with pytest.raises(KeyboardInterrupt):
        train_detector([image], [image], partial, config, progress=interrupt_at_4)
    assert torch.load(partial / RESUME_STATE, weights_only=True)["iteration"] == 4
    resumed = train_detector([image], [image], partial, config, resume=True)
    assert resumed.iterations == 6 and resumed.best_iteration == straight.best_iteration
    a = torch.load(tmp_path / "straight" / RESUME_STATE, weights_only=True)["model"]
    b = torch.load(partial / RESUME_STATE, weights_only=True)["model"]
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    make_slide(tmp_path / "data", 8, nodes=2)
    image = load_training_image(find_annotated_slides([tmp_path / "data"])[0], str(tmp_path / "stores"))
    tiny = DetectorConfig(backbone="resnet18", aspp_channels=8, decoder_channels=8, low_level_channels=8)
    config = TrainingConfig(iterations=2, batch_size=2, crop=64, validate_every=2, save_every=1, model=tiny)
    train_detector([image], [image], tmp_path / "run", config)
    other = TrainingConfig(iterations=4, batch_size=2, crop=64, validate_every=2, save_every=1, model=tiny)
    with pytest.raises(PathStreamError, match="other training settings"):
        train_detector([image], [image], tmp_path / "run", other, resume=True)


def test_evaluate_command_prints_json_metrics(trained_detector: TrainedDetector, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathstream.services.cli import main; main()",
            "evaluate",
            "detector",
            str(trained_detector.test_dir),
            "--checkpoint",
            str(trained_detector.outcome.best_checkpoint),
            "--work",
            str(tmp_path / "stores"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) >= {
        "iou",
        "pixel_accuracy",
        "count_mae",
        "ln_precision",
        "ln_recall",
        "model_version",
    }
    assert [s["true_lns"] for s in metrics["slides"]] == [t.ln_count for t in trained_detector.test_images]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pathstream.services.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_train_command_writes_a_resumable_best_checkpoint(tmp_path: Path) -> None:
    make_slide(tmp_path / "train", 11, nodes=2)
    make_slide(tmp_path / "val", 12, nodes=2)
    common = [
        "train", "detector", "--train", str(tmp_path / "train"), "--val", str(tmp_path / "val"),
        "--out", str(tmp_path / "model"), "--batch-size", "2", "--crop", "64", "--backbone", "resnet18",
        "--aspp-channels", "8", "--decoder-channels", "8", "--validate-every", "2", "--json",
    ]  # fmt: skip
    first = _cli(*common, "--iterations", "2")
    assert first.returncode == 0, first.stderr
    outcome = json.loads(first.stdout)
    assert Path(outcome["best_checkpoint"]).is_file() and outcome["iterations"] == 2
    assert outcome["train_slides"] == ["s11"] and outcome["val_slides"] == ["s12"]
    # The same settings with --resume pick up at iteration 2 and stop at once.
    again = _cli(*common, "--iterations", "2", "--resume")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["iterations"] == 2


def test_train_command_names_a_missing_input_without_a_traceback(tmp_path: Path) -> None:
    result = _cli("train", "detector", "--train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "INVALID_CONFIGURATION" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
