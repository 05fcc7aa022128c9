"""Reproduce the bundled demo checkpoints with PathStream's own commands (CPU, about 30 minutes).

    .venv/bin/python -m pathstream.services.demo.train_models --work /tmp/demo-training [--only marrow]

writes `services/demo/checkpoints/{detector,escnn,marrow}.pt` and `recipe.json` (the commands,
model versions and validation metrics). Steps: synthetic training and validation slides
(`pathstream.services.demo.cohort`), `pathstream train detector` (compact16 DeepLabv3+),
`pathstream train escnn-patches` (starting weights, as no ImageNet weights are bundled),
`pathstream train escnn` (compact16, weak LN labels), and for bone marrow the proposer's ROI fields
of 60 synthetic smears and `pathstream train marrow` (ShuffleNet v2 x0.5, 3-class, patient-level 5-fold CV, no
ImageNet weights; SqueezeNet 1.1 from scratch collapsed to a constant output at lr 1e-3). The
models are for demonstration on synthetic slides only; clinical use needs models trained and
validated on real data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pathstream.services.demo.cohort import (
    MARROW_TRAINING_CASES,
    MARROW_TRAINING_SEED,
    TRAINING_FIRST_SEED,
    write_marrow_roi_cohort,
    write_slides,
)
from pathstream.synthetic.marrow import FIELDS_CSV

CHECKPOINTS = Path(__file__).with_name("checkpoints")
TRAIN_SLIDES = 20
VAL_SLIDES = 4
VAL_FIRST_SEED = TRAINING_FIRST_SEED + 5000


def _pathstream(*args: str) -> dict[str, Any]:
    """Run one `pathstream` command in a child process; return its --json output."""
    command = [sys.executable, "-m", "pathstream.services.cli", *args]
    print("+ pathstream " + " ".join(args), file=sys.stderr, flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"pathstream {args[0]} {args[1]} failed:\n{result.stderr[-4000:]}")
    parsed: dict[str, Any] = json.loads(result.stdout) if "--json" in args else {}
    return parsed


def train_marrow_model(work: Path, out: Path) -> dict[str, Any]:
    """Synthetic ROI fields -> `pathstream train marrow` -> `out/marrow.pt`; returns the run's JSON."""
    cohort = work / "marrow-cohort"
    if not (cohort / FIELDS_CSV).is_file():
        write_marrow_roi_cohort(cohort, MARROW_TRAINING_CASES, MARROW_TRAINING_SEED)
    marrow = _pathstream(
        "train", "marrow", "--csv", str(cohort / FIELDS_CSV), "--task", "mds_aml_donor",
        "--out", str(work / "marrow"), "--architectures", "shufflenet_v2_x0_5", "--trials", "1",
        "--epochs", "12", "--input-size", "256", "--lr", "2e-3", "--batch-size", "16",
        "--strength", "0.5", "--seed", "0", "--json",
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "marrow" / "best.pt", out / "marrow.pt")
    return marrow


def main() -> None:
    """Train the demo models into `--out` (default: the bundled checkpoint folder)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="Scratch folder for slides and runs.")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS)
    parser.add_argument("--only", choices=("all", "lymph_node", "marrow"), default="all")
    args = parser.parse_args()
    work: Path = args.work
    recipe_path = args.out / "recipe.json"
    recipe: dict[str, Any] = json.loads(recipe_path.read_text()) if recipe_path.is_file() else {}
    recipe["command"] = "python -m pathstream.services.demo.train_models --work DIR"
    recipe["note"] = "Demonstration models trained on synthetic slides; not for clinical use."
    if args.only in ("all", "marrow"):
        recipe["marrow"] = train_marrow_model(work, args.out)
    if args.only in ("all", "lymph_node"):
        recipe.update(train_lymph_node_models(work, args.out))
    recipe_path.write_text(json.dumps(recipe, indent=2, default=str) + "\n")


def train_lymph_node_models(work: Path, out: Path) -> dict[str, Any]:
    """The LN detector and ESCNN demo models -> `out/{detector,escnn}.pt`; returns their runs' JSON."""
    train, val, stores = work / "train", work / "val", work / "stores"
    if not train.is_dir():
        write_slides(train, TRAIN_SLIDES, TRAINING_FIRST_SEED)
        write_slides(val, VAL_SLIDES, VAL_FIRST_SEED)
    detector = _pathstream(
        "train", "detector", "--train", str(train), "--val", str(val), "--out", str(work / "detector"),
        "--work", str(stores), "--backbone", "compact16", "--aspp-channels", "32",
        "--decoder-channels", "32", "--iterations", "400", "--batch-size", "8", "--crop", "160",
        "--validate-every", "100", "--seed", "0", "--json",
    )  # fmt: skip
    start = work / "escnn-start.pt"
    _pathstream(
        "train", "escnn-patches", "--train", str(train), "--out", str(start), "--work", str(stores),
        "--backbone", "compact16", "--iterations", "300", "--seed", "0",
    )  # fmt: skip
    escnn = _pathstream(
        "train", "escnn", "--train", str(train), "--val", str(val), "--out", str(work / "escnn"),
        "--work", str(stores), "--backbone", "compact16", "--weights", str(start), "--lr", "1e-3",
        "--reduced-lr", "1e-4", "--patience", "2", "--max-epochs", "2", "--tile-size", "1024",
        "--seed", "0", "--json",
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(detector["best_checkpoint"], out / "detector.pt")
    shutil.copyfile(escnn["best_checkpoint"], out / "escnn.pt")
    return {"detector": detector, "escnn": escnn}


if __name__ == "__main__":
    main()
