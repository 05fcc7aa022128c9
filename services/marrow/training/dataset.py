"""Marrow training data: which ROI images, of which patient, with which diagnosis.

Two input layouts are accepted:

- A CSV file with the columns `path`, `patient_id`, `label` (any order, more columns ignored; the
  header is required). `path` is absolute or relative to the CSV's folder; `label` is `mds`, `aml`
  or `donor` (any case). `pathstream synth marrow` writes such a `fields.csv`.
- An image folder tree, `<root>/<label>/<patient_id>/<image>` (one folder per patient, any number
  of ROIs in it), or `<root>/<label>/<image>`, where each image is a patient of its own and the file
  name without its suffix is the patient id. Both forms may be mixed under one label folder.
  Images are `.png`, `.jpg`, `.jpeg`, `.tif` or `.tiff`; hidden files and folders are ignored.

Every ROI carries its patient's diagnosis (Eckardt et al.: case-level labels, no cell-level labels), so a
patient with two labels is an error, and so is anything a person must fix (unknown label, missing
or unreadable file, an empty set). Images are decoded once and kept in memory at the sizes training
needs (see `load_cohort`).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pathstream.backbones.imagenet import normalise_uint8
from pathstream.services.marrow.model import MarrowTask, resize_roi
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import MarrowClass

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
CSV_COLUMNS = ("path", "patient_id", "label")
TRAIN_MARGIN = 1.25
"""Training copies are kept this much larger than the input size, so a random-sized crop of most
of the ROI is resampled from real pixels rather than upscaled."""

_LABEL_HINT = "Labels are " + ", ".join(c.value for c in MarrowClass) + " (case does not matter)."


@dataclass(frozen=True)
class RoiRecord:
    """One ROI image file, its patient and the patient's diagnosis; `where` names its source (CSV
    row or folder) for error messages."""

    path: Path
    patient_id: str
    label: MarrowClass
    where: str


def _invalid(message: str, hint: str) -> PathStreamError:
    return PathStreamError(ErrorCode.INVALID_CONFIGURATION, message, hint=hint)


def _parse_label(text: str, where: str) -> MarrowClass:
    try:
        return MarrowClass(text.strip().lower())
    except ValueError:
        raise _invalid(f"Unknown marrow label {text!r} ({where}).", _LABEL_HINT) from None


def read_csv_records(csv_path: Path) -> list[RoiRecord]:
    """The ROIs listed in a CSV (columns path, patient_id, label; see the module docstring).

    Raises `PathStreamError(INVALID_CONFIGURATION)` naming the row for a missing column or value,
    an unknown label, a missing image file or an image listed twice, and for a CSV without rows.
    """
    if not csv_path.is_file():
        raise _invalid(f"Cannot find the CSV {csv_path}.", "Give --csv the path of an existing CSV file.")
    hint = f"Fix {csv_path}: columns path, patient_id, label; paths absolute or relative to its folder."
    records: list[RoiRecord] = []
    missing: list[str] = []
    try:
        # utf-8-sig: spreadsheet programs often start a CSV with a byte-order mark.
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
            absent = [c for c in CSV_COLUMNS if c not in columns]
            if absent:
                raise _invalid(f"{csv_path} has no column(s) {', '.join(absent)} in its header.", hint)
            for row in reader:
                where = f"{csv_path.name} line {reader.line_num}"
                values = {c: (row.get(columns[c]) or "").strip() for c in CSV_COLUMNS}
                if not any(values.values()):
                    continue  # a blank line
                empty = [c for c in CSV_COLUMNS if not values[c]]
                if empty:
                    raise _invalid(f"{where} has no {', '.join(empty)}.", hint)
                path = Path(values["path"]).expanduser()
                path = path if path.is_absolute() else csv_path.parent / path
                if not path.is_file():
                    missing.append(f"{where}: {path}")
                records.append(
                    RoiRecord(path, values["patient_id"], _parse_label(values["label"], where), where)
                )
    except UnicodeDecodeError:
        raise _invalid(f"{csv_path} is not a UTF-8 text CSV.", hint) from None
    except csv.Error as exc:
        raise _invalid(f"{csv_path} is not a readable CSV ({exc}).", hint) from None
    if missing:
        raise _invalid(
            f"{len(missing)} image(s) listed in {csv_path} do not exist, e.g. {'; '.join(missing[:3])}.",
            "Fix the paths (relative paths start at the CSV's folder) or remove those rows.",
        )
    if not records:
        raise _invalid(f"{csv_path} lists no images.", hint)
    _check_duplicates(records)
    return records


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def read_folder_records(root: Path) -> list[RoiRecord]:
    """The ROIs of a folder tree `<root>/<label>/<patient_id>/<image>` or `<root>/<label>/<image>`
    (see the module docstring), sorted by path.

    Raises `PathStreamError(INVALID_CONFIGURATION)` for a missing root, a label folder with an
    unknown name, or a tree without images.
    """
    hint = (
        "Lay the images out as <root>/<label>/<patient_id>/<image> or <root>/<label>/<image> "
        "(label mds, aml or donor; images .png, .jpg, .tif), or give --csv instead."
    )
    if not root.is_dir():
        raise _invalid(f"Cannot find the image folder {root}.", hint)
    records: list[RoiRecord] = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = _parse_label(label_dir.name, f"folder {label_dir}")
        for image in _images_in(label_dir):
            records.append(RoiRecord(image, image.stem, label, f"file {image}"))
        for patient_dir in sorted(
            p for p in label_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            for image in _images_in(patient_dir):
                records.append(RoiRecord(image, patient_dir.name, label, f"file {image}"))
    if not records:
        raise _invalid(f"No images found under {root}.", hint)
    return records


def _check_duplicates(records: Sequence[RoiRecord]) -> None:
    """The same file twice would sit in train and test at once if its rows name two patients."""
    seen: dict[Path, str] = {}
    for record in records:
        key = record.path.resolve()
        if key in seen:
            raise _invalid(
                f"{record.path} is listed twice ({seen[key]} and {record.where}).",
                "List every ROI image once.",
            )
        seen[key] = record.where


def check_patient_labels(records: Sequence[RoiRecord]) -> dict[str, MarrowClass]:
    """{patient_id: label}; raises `PathStreamError(INVALID_CONFIGURATION)` when a patient's ROIs
    carry two different labels (diagnoses are per patient)."""
    labels: dict[str, RoiRecord] = {}
    for record in records:
        first = labels.setdefault(record.patient_id, record)
        if first.label != record.label:
            raise _invalid(
                f"Patient {record.patient_id!r} is labelled {first.label.value} ({first.where}) and "
                f"{record.label.value} ({record.where}).",
                "A diagnosis is per patient: give all of a patient's ROIs the same label, or use "
                "distinct patient ids for distinct patients.",
            )
    return {patient: record.label for patient, record in labels.items()}


def select_task(records: Sequence[RoiRecord], task: MarrowTask) -> tuple[list[RoiRecord], dict[str, int]]:
    """(the ROIs whose label is one of `task`'s classes, {label: ROIs dropped}).

    Raises `PathStreamError(INVALID_CONFIGURATION)` when a class of the task has no ROI left.
    """
    kept = [r for r in records if r.label in task.classes]
    dropped = Counter(r.label.value for r in records if r.label not in task.classes)
    present = {r.label for r in kept}
    absent = [c.value for c in task.classes if c not in present]
    if absent:
        raise _invalid(
            f"Task {task.value} needs images of {', '.join(c.value for c in task.classes)}, "
            f"but there are none of {', '.join(absent)}.",
            "Add images of every class of the task, or choose another --task.",
        )
    return kept, dict(sorted(dropped.items()))


def read_roi(path: Path, where: str = "") -> np.ndarray:
    """Decode an image file -> uint8 H x W x 3 RGB (greyscale expanded, alpha dropped, 16-bit scaled).

    Raises `PathStreamError(INVALID_CONFIGURATION)` when the file cannot be decoded.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        source = f" ({where})" if where else ""
        raise _invalid(
            f"Cannot read the image {path}{source}.",
            "Replace it with a readable PNG, JPEG or TIFF file, or remove it from the input.",
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class MarrowCohort:
    """The task's ROIs in memory, in a fixed order (the order of `records`).

    `eval_images`: uint8 N x S x S x 3 RGB, S = `input_size`, resized exactly as `MarrowClassifier`
    resizes at inference. `train_images`: uint8 N x T x T x 3, T = ceil(S * TRAIN_MARGIN), the
    source of augmented training crops. `labels`: int64 N class indices in `task.classes` order.
    """

    task: MarrowTask
    records: list[RoiRecord]
    labels: np.ndarray
    patient_ids: list[str]
    input_size: int
    eval_images: np.ndarray
    train_images: np.ndarray
    dropped: dict[str, int]

    @property
    def patient_labels(self) -> dict[str, int]:
        """{patient_id: class index}."""
        return {p: int(label) for p, label in zip(self.patient_ids, self.labels, strict=True)}


def load_cohort(
    records: Sequence[RoiRecord],
    task: MarrowTask,
    input_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> MarrowCohort:
    """Check `records` (one label per patient), keep `task`'s classes, and decode every ROI once.

    Memory: about 3 x (1 + TRAIN_MARGIN^2) x input_size^2 bytes per ROI (1.1 GB for 1,000 ROIs at
    384 px), which keeps the many trainings of a search from decoding the files again and again.
    `progress(done, total)` is called after each image. Raises `PathStreamError` as the checks do.
    """
    if input_size < 64:
        raise _invalid(f"--input-size {input_size} is too small.", "Use 64 px or more (paper-like: 384).")
    check_patient_labels(records)
    kept, dropped = select_task(records, task)
    train_size = math.ceil(input_size * TRAIN_MARGIN)
    eval_images = np.empty((len(kept), input_size, input_size, 3), np.uint8)
    train_images = np.empty((len(kept), train_size, train_size, 3), np.uint8)
    for index, record in enumerate(kept):
        image = read_roi(record.path, record.where)
        eval_images[index] = resize_roi(image, input_size)
        train_images[index] = resize_roi(image, train_size)
        if progress is not None:
            progress(index + 1, len(kept))
    classes = list(task.classes)
    return MarrowCohort(
        task=task,
        records=list(kept),
        labels=np.array([classes.index(r.label) for r in kept], np.int64),
        patient_ids=[r.patient_id for r in kept],
        input_size=input_size,
        eval_images=eval_images,
        train_images=train_images,
        dropped=dropped,
    )


ImageTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""(uint8 H x W x 3 RGB, generator) -> uint8 S x S x 3 RGB."""


class RoiDataset(Dataset[tuple[torch.Tensor, int]]):
    """Training view of some ROIs: item k is (float32 3 x S x S ImageNet-normalised RGB, class index).

    `order` lists image indices for one epoch (repeats allowed: that is how minority classes are
    oversampled, see `pathstream.services.marrow.training.augment.balanced_order`); item k is image
    `order[k]` through
    `transform` with a generator seeded by (seed, epoch, k), so every epoch is reproducible.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, transform: ImageTransform, seed: int = 0
    ) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.order: list[int] = list(range(len(images)))

    def set_epoch(self, epoch: int, order: Sequence[int] | np.ndarray) -> None:
        """Use `order` (image indices) for epoch `epoch`."""
        self.epoch = epoch
        self.order = [int(i) for i in order]

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        index = self.order[position]
        rng = np.random.default_rng([self.seed, self.epoch, position])
        image = np.ascontiguousarray(self.transform(self.images[index], rng))
        tensor = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)
        return normalise_uint8(tensor)[0], int(self.labels[index])
