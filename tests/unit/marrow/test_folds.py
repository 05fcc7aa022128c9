"""Patient-level stratified folds: no patient is ever split, classes are spread evenly, and the
assignment is reproducible."""

from __future__ import annotations

from collections import Counter

import pytest

from pathstream.services.marrow.training.folds import Fold, check_folds, patient_folds, split_images
from pathstream.shared.errors import ErrorCode, PathStreamError


def _patients(counts: dict[str, int]) -> dict[str, str]:
    return {f"{label}-{i:02d}": label for label, n in counts.items() for i in range(n)}


def test_every_patient_is_tested_exactly_once_and_never_trained_on_in_its_fold() -> None:
    patients = _patients({"mds": 10, "aml": 10, "donor": 10})
    folds = patient_folds(patients, k=5, seed=3)
    assert len(folds) == 5
    tested = Counter(p for fold in folds for p in fold.test_patients)
    assert set(tested) == set(patients)
    assert set(tested.values()) == {1}
    for fold in folds:
        assert not fold.train_patients & fold.test_patients
        assert fold.train_patients | fold.test_patients == set(patients)


def test_each_fold_gets_its_share_of_every_class() -> None:
    patients = _patients({"mds": 13, "aml": 7, "donor": 5})
    for fold in patient_folds(patients, k=5, seed=1):
        per_class = Counter(patients[p] for p in fold.test_patients)
        assert per_class["mds"] in (2, 3)
        assert per_class["aml"] in (1, 2)
        assert per_class["donor"] == 1


def test_folds_are_reproducible_by_seed() -> None:
    patients = _patients({"mds": 10, "aml": 10})
    first = patient_folds(patients, k=5, seed=7)
    assert first == patient_folds(patients, k=5, seed=7)
    assert first != patient_folds(patients, k=5, seed=8)
    # The order the patients are given in does not matter, only who they are.
    assert first == patient_folds(dict(reversed(list(patients.items()))), k=5, seed=7)


def test_a_class_with_fewer_patients_than_folds_is_a_clear_error() -> None:
    with pytest.raises(PathStreamError) as caught:
        patient_folds(_patients({"mds": 10, "aml": 3}), k=5)
    assert caught.value.code == ErrorCode.INVALID_CONFIGURATION
    assert "aml has 3 patient(s), fewer than the 5 folds" in caught.value.message
    assert "--folds" in caught.value.hint


def test_fewer_than_two_folds_is_refused() -> None:
    with pytest.raises(PathStreamError, match="at least 2 folds"):
        patient_folds(_patients({"mds": 4, "aml": 4}), k=1)


def test_check_folds_catches_a_patient_in_two_test_sets() -> None:
    everyone = frozenset({"a", "b", "c", "d"})
    folds = [
        Fold(0, frozenset({"c", "d"}), frozenset({"a", "b"})),
        Fold(1, frozenset({"a", "c"}), frozenset({"b", "d"})),
    ]
    with pytest.raises(PathStreamError, match="'b' is in the test sets of folds 1 and 2"):
        check_folds(folds, everyone)


def test_check_folds_catches_a_patient_in_training_and_test_of_one_fold() -> None:
    everyone = frozenset({"a", "b", "c", "d"})
    folds = [
        Fold(0, frozenset({"a", "c", "d"}), frozenset({"a", "b"})),
        Fold(1, frozenset({"a", "b"}), frozenset({"c", "d"})),
    ]
    with pytest.raises(PathStreamError, match="in training and test"):
        check_folds(folds, everyone)


def test_check_folds_catches_an_untested_patient() -> None:
    folds = [Fold(0, frozenset({"b"}), frozenset({"a"})), Fold(1, frozenset({"a"}), frozenset({"b"}))]
    with pytest.raises(PathStreamError, match="in no fold's test set"):
        check_folds(folds, frozenset({"a", "b", "c"}))


def test_split_images_keeps_all_rois_of_a_patient_on_one_side() -> None:
    patients = _patients({"mds": 5, "aml": 5})
    image_patients = [p for p in sorted(patients) for _ in range(4)]
    for fold in patient_folds(patients, k=5):
        train, test = split_images(image_patients, fold)
        assert len(train) + len(test) == len(image_patients)
        assert {image_patients[i] for i in test} == fold.test_patients
        assert not {image_patients[i] for i in train} & fold.test_patients
