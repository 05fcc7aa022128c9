"""Marrow training input: CSV and folder layouts, every user mistake as a clear error, and the
torch Dataset's tensors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pathstream.services.marrow.model import MarrowTask, resize_roi
from pathstream.services.marrow.training.augment import Augmentation
from pathstream.services.marrow.training.dataset import (
    RoiDataset,
    load_cohort,
    read_csv_records,
    read_folder_records,
    select_task,
)
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import MarrowClass


def _png(path: Path, seed: int = 0, size: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)
    return path


def _csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_paths_are_relative_to_the_csv_or_absolute_and_labels_any_case(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "1.png")
    absolute = _png(tmp_path / "elsewhere" / "2.png")
    csv_path = _csv(
        tmp_path / "rois.csv",
        ["\ufeffPath,Patient_ID,Label,comment", "a/1.png,P1,MDS,x", f"{absolute},P2,aml,", ""],
    )
    records = read_csv_records(csv_path)
    assert [r.path for r in records] == [tmp_path / "a" / "1.png", absolute]
    assert [(r.patient_id, r.label) for r in records] == [("P1", MarrowClass.MDS), ("P2", MarrowClass.AML)]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["path,patient,label", "a.png,P1,mds"], "no column(s) patient_id"),
        (
            ["path,patient_id,label", "a.png,P1,leukaemia"],
            "Unknown marrow label 'leukaemia' (rois.csv line 2)",
        ),
        (["path,patient_id,label", "a.png,,mds"], "rois.csv line 2 has no patient_id"),
        (["path,patient_id,label", "missing.png,P1,mds"], "rois.csv line 2: "),
        (["path,patient_id,label"], "lists no images"),
        (["path,patient_id,label", "a.png,P1,mds", "./a.png,P2,mds"], "is listed twice"),
    ],
)
def test_csv_mistakes_are_named_with_their_row(tmp_path: Path, lines: list[str], expected: str) -> None:
    _png(tmp_path / "a.png")
    with pytest.raises(PathStreamError) as caught:
        read_csv_records(_csv(tmp_path / "rois.csv", lines))
    assert caught.value.code == ErrorCode.INVALID_CONFIGURATION
    assert expected in caught.value.message
    assert caught.value.hint


def test_missing_csv_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PathStreamError, match="Cannot find the CSV"):
        read_csv_records(tmp_path / "nope.csv")


def test_folder_tree_with_patient_folders_and_loose_images(tmp_path: Path) -> None:
    _png(tmp_path / "mds" / "P1" / "roi0.png")
    _png(tmp_path / "mds" / "P1" / "roi1.jpg")
    _png(tmp_path / "AML" / "P2.png")
    (tmp_path / "AML" / "notes.txt").write_text("ignored")
    _png(tmp_path / "donor" / ".hidden" / "x.png")
    records = read_folder_records(tmp_path)
    assert sorted((r.patient_id, r.label.value, r.path.name) for r in records) == [
        ("P1", "mds", "roi0.png"),
        ("P1", "mds", "roi1.jpg"),
        ("P2", "aml", "P2.png"),
    ]


def test_folder_tree_mistakes(tmp_path: Path) -> None:
    with pytest.raises(PathStreamError, match="Cannot find the image folder"):
        read_folder_records(tmp_path / "nope")
    with pytest.raises(PathStreamError, match="No images found"):
        read_folder_records(tmp_path)
    _png(tmp_path / "healthy" / "P1.png")
    with pytest.raises(PathStreamError, match="Unknown marrow label 'healthy'"):
        read_folder_records(tmp_path)


def test_a_patient_with_two_labels_is_refused(tmp_path: Path) -> None:
    _png(tmp_path / "mds" / "P1" / "a.png")
    _png(tmp_path / "aml" / "P1" / "b.png")
    with pytest.raises(PathStreamError) as caught:
        load_cohort(read_folder_records(tmp_path), MarrowTask.MDS_VS_AML, 64)
    assert "Patient 'P1' is labelled" in caught.value.message
    assert "same label" in caught.value.hint


def test_task_selection_drops_other_classes_and_needs_both_of_its_own(tmp_path: Path) -> None:
    for name, label in (("P1", "mds"), ("P2", "aml"), ("P3", "donor"), ("P4", "donor")):
        _png(tmp_path / label / f"{name}.png")
    records = read_folder_records(tmp_path)
    kept, dropped = select_task(records, MarrowTask.MDS_VS_DONOR)
    assert {r.patient_id for r in kept} == {"P1", "P3", "P4"}
    assert dropped == {"aml": 1}
    with pytest.raises(PathStreamError, match="there are none of aml"):
        select_task([r for r in records if r.label != MarrowClass.AML], MarrowTask.MDS_VS_AML)


def test_an_unreadable_image_is_named(tmp_path: Path) -> None:
    _png(tmp_path / "mds" / "P1.png")
    (tmp_path / "aml").mkdir()
    (tmp_path / "aml" / "P2.png").write_bytes(b"not an image")
    with pytest.raises(PathStreamError) as caught:
        load_cohort(read_folder_records(tmp_path), MarrowTask.MDS_VS_AML, 64)
    assert "Cannot read the image" in caught.value.message
    assert "P2.png" in caught.value.message


def test_cohort_images_match_inference_resizing(tmp_path: Path) -> None:
    paths = [_png(tmp_path / "mds" / "P1.png", 1, 100), _png(tmp_path / "donor" / "P2.png", 2, 100)]
    cohort = load_cohort(read_folder_records(tmp_path), MarrowTask.MDS_VS_DONOR, 64)
    assert cohort.eval_images.shape == (2, 64, 64, 3)
    assert cohort.train_images.shape == (2, 80, 80, 3)
    assert cohort.labels.tolist() == [1, 0]  # sorted folders: donor, then mds; MDS is class 0
    for index, path in enumerate(sorted(paths)):
        bgr = cv2.imread(str(path))
        assert bgr is not None
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        assert np.array_equal(cohort.eval_images[index], resize_roi(rgb, 64))


def test_roi_dataset_yields_normalised_float_tensors_reproducibly() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 80, 80, 3), dtype=np.uint8)
    dataset = RoiDataset(images, np.array([0, 1, 1]), Augmentation(64, 0.5), seed=4)
    dataset.set_epoch(2, [2, 0, 0])
    assert len(dataset) == 3
    tensor, label = dataset[0]
    assert tensor.shape == (3, 64, 64)
    assert tensor.dtype == torch.float32
    assert label == 1
    assert float(tensor.min()) > -2.2 and float(tensor.max()) < 2.7  # ImageNet-normalised range
    again, _ = dataset[0]
    assert torch.equal(tensor, again)
    first, second = dataset[1][0], dataset[2][0]  # same image, other positions: other views
    assert not torch.equal(first, second)
