"""Patient-level stratified k-fold cross-validation (Eckardt et al.: "Cases that were used for model
training were strictly separated from cases that were used for testing").

Patients, not images, are dealt into folds, so all ROIs of a patient land in the same test fold.
Within each class the patients are shuffled (seeded) and dealt one at a time to the fold that has
the fewest patients of that class, ties going to the fold with the fewest patients overall: every
fold gets floor(n/k) or ceil(n/k) patients of each class, and fold sizes differ by at most one
per class. The same patients, labels, k and seed always give the same folds.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pathstream.shared.errors import ErrorCode, PathStreamError


@dataclass(frozen=True)
class Fold:
    """Fold `index` (0-based): its test patients, and everyone else as training patients."""

    index: int
    train_patients: frozenset[str]
    test_patients: frozenset[str]


def patient_folds(patient_labels: Mapping[str, Hashable], k: int = 5, seed: int = 0) -> list[Fold]:
    """`k` stratified folds of {patient_id: label} (see the module docstring), checked with
    `check_folds` before they are returned.

    Raises `PathStreamError(INVALID_CONFIGURATION)` when k < 2 or a class has fewer than k
    patients (some test fold would then have none of that class, and no AUC).
    """
    if k < 2:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"Cross-validation needs at least 2 folds, got {k}.",
            hint="Use --folds 5 (as Eckardt et al.) or any number from 2 up.",
        )
    by_class: dict[Hashable, list[str]] = {}
    for patient, label in patient_labels.items():
        by_class.setdefault(label, []).append(patient)
    for label, patients in sorted(by_class.items(), key=lambda item: str(item[0])):
        if len(patients) < k:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"Class {label} has {len(patients)} patient(s), fewer than the {k} folds: some test "
                f"folds would have no {label} patient.",
                hint=f"Add {label} patients, or lower --folds to at most {len(patients)} (at least 2).",
            )
    rng = np.random.default_rng(seed)
    tests: list[set[str]] = [set() for _ in range(k)]
    for label in sorted(by_class, key=str):
        patients = sorted(by_class[label])
        per_class = [0] * k
        for position in rng.permutation(len(patients)):
            fold = min(range(k), key=lambda f: (per_class[f], len(tests[f]), f))
            tests[fold].add(patients[int(position)])
            per_class[fold] += 1
    everyone = frozenset(patient_labels)
    folds = [Fold(i, everyone - frozenset(test), frozenset(test)) for i, test in enumerate(tests)]
    check_folds(folds, everyone)
    return folds


def check_folds(folds: Sequence[Fold], patients: frozenset[str] | set[str]) -> None:
    """Raise `PathStreamError(INTERNAL)` unless every patient is in exactly one fold's test set and
    no fold has a patient in both its training and its test set (a leak would inflate every metric).
    """
    seen: dict[str, int] = {}
    for fold in folds:
        both = fold.train_patients & fold.test_patients
        if both:
            raise PathStreamError(
                ErrorCode.INTERNAL,
                f"Fold {fold.index + 1} has patient(s) {sorted(both)[:5]} in training and test.",
                hint="This is a bug in the fold assignment; report it.",
            )
        for patient in fold.test_patients:
            if patient in seen:
                raise PathStreamError(
                    ErrorCode.INTERNAL,
                    f"Patient {patient!r} is in the test sets of folds {seen[patient] + 1} and "
                    f"{fold.index + 1}.",
                    hint="This is a bug in the fold assignment; report it.",
                )
            seen[patient] = fold.index
        unknown = (fold.train_patients | fold.test_patients) - set(patients)
        if unknown:
            raise PathStreamError(
                ErrorCode.INTERNAL,
                f"Fold {fold.index + 1} names unknown patient(s) {sorted(unknown)[:5]}.",
                hint="This is a bug in the fold assignment; report it.",
            )
    untested = set(patients) - set(seen)
    if untested:
        raise PathStreamError(
            ErrorCode.INTERNAL,
            f"Patient(s) {sorted(untested)[:5]} are in no fold's test set.",
            hint="This is a bug in the fold assignment; report it.",
        )


def split_images(patient_ids: Sequence[str], fold: Fold) -> tuple[np.ndarray, np.ndarray]:
    """(training image indices, test image indices), int64, for images whose patients are
    `patient_ids` (one per image). Every image is on exactly one side."""
    test = np.array([p in fold.test_patients for p in patient_ids], bool)
    train = np.array([p in fold.train_patients for p in patient_ids], bool)
    if (test == train).any():
        raise PathStreamError(
            ErrorCode.INTERNAL,
            f"Fold {fold.index + 1}: some images' patients are on neither or both sides.",
            hint="This is a bug in the fold assignment; report it.",
        )
    return np.flatnonzero(train), np.flatnonzero(test)
