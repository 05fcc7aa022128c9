"""Reproduce the bundled demo checkpoints with PathStream's own commands (CPU, about 15 minutes).

    .venv/bin/python -m services.demo.train_models --work /tmp/demo-training

writes `services/demo/checkpoints/{detector,escnn}.pt` and `recipe.json` (the commands, model
versions and validation metrics). Steps: synthetic training and validation slides
(`services.demo.cohort`), `pathstream train detector` (compact16 DeepLabv3+),
`pathstream train escnn-patches` (starting weights, as no ImageNet weights are bundled) and
`pathstream train escnn` (compact16, weak LN labels). The models are for demonstration on synthetic
slides only; clinical use needs models trained and validated on real data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from services.demo.cohort import TRAINING_FIRST_SEED, write_slides

CHECKPOINTS = Path(__file__).with_name("checkpoints")
TRAIN_SLIDES = 20
VAL_SLIDES = 4
VAL_FIRST_SEED = TRAINING_FIRST_SEED + 5000


def _pathstream(*args: str) -> dict[str, Any]:
    """Run one `pathstream` command in a child process; return its --json output."""
    command = [sys.executable, "-m", "services.cli", *args]
    print("+ pathstream " + " ".join(args), file=sys.stderr, flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"pathstream {args[0]} {args[1]} failed:\n{result.stderr[-4000:]}")
    parsed: dict[str, Any] = json.loads(result.stdout) if "--json" in args else {}
    return parsed


def main() -> None:
    """Train both demo models into `--out` (default: the bundled checkpoint folder)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="Scratch folder for slides and runs.")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS)
    args = parser.parse_args()
    work: Path = args.work
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
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(detector["best_checkpoint"], args.out / "detector.pt")
    shutil.copyfile(escnn["best_checkpoint"], args.out / "escnn.pt")
    recipe = {
        "command": "python -m services.demo.train_models --work DIR",
        "detector": detector,
        "escnn": escnn,
        "note": "Demonstration models trained on synthetic slides; not for clinical use.",
    }
    (args.out / "recipe.json").write_text(json.dumps(recipe, indent=2, default=str) + "\n")
    print(json.dumps({"detector": detector["model_version"], "escnn": escnn["model_version"]}))


if __name__ == "__main__":
    main()
