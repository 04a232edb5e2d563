"""Case-level training/validation splits: by patient, stratified by source, the same for the same seed."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DatasetError, LesionDetectError
from .dataset import Case, LabelledDataset


@dataclass(frozen=True)
class Split:
    """Training and validation cases, and how they were chosen."""

    training: tuple[Case, ...]
    validation: tuple[Case, ...]
    method: str
    details: dict[str, Any] = field(default_factory=dict)



def split_cases(
    dataset: LabelledDataset,
    folds: int | None = None,
    fold: int | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
) -> Split:
    """Case-level training/validation split, the same for the same seed.

    - ``folds=K, fold=F``: K-fold cross-validation over all cases (training and validation lists); fold F
      validates. Every case is validated in exactly one fold.
    - ``val_fraction=f``: a fraction f of the cases validates (0: no validation, train on everything).
    - neither: the dataset's own ``validation`` list when it has one, else ``val_fraction=0.2``.
    The unit is the patient (``patient`` tag, else the case): scans of one patient never straddle training
    and validation. Patients are stratified by their ``source`` tag, so each source appears in every part
    when it has enough patients (a source with one patient goes to training; with ``val_fraction`` each source
    with ≥ 2 patients gives at least one validation patient).
    """
    if folds is not None and val_fraction is not None:
        raise LesionDetectError("give either --folds/--fold or --val-fraction, not both")
    if folds is None and fold is not None:
        raise LesionDetectError("--fold needs --folds")
    cases = sorted(dataset.cases, key=lambda case: case.id)
    if folds is not None:
        return _fold_split(cases, folds, 0 if fold is None else fold, seed)
    if val_fraction is None and dataset.validation:
        return Split(dataset.training, dataset.validation, "the dataset's validation list")
    fraction = 0.2 if val_fraction is None else float(val_fraction)
    if not 0 <= fraction < 1:
        raise LesionDetectError(f"--val-fraction must be in [0, 1), not {fraction}")
    if fraction == 0:
        return Split(tuple(cases), (), "none (all cases train)", {"val_fraction": 0.0})
    chosen: set[str] = set()
    for group in _shuffled_groups(cases, seed):
        if len(group) >= 2:
            count = min(len(group) - 1, max(1, round(fraction * len(group))))
            chosen.update(case.id for patient in group[:count] for case in patient)
    patients = {case.patient_id for case in cases}
    if not chosen and len(patients) >= 2:
        chosen.update(case.id for case in _shuffled_groups(cases, seed)[0][0])
    training = tuple(case for case in cases if case.id not in chosen)
    validation = tuple(case for case in cases if case.id in chosen)
    return Split(training, validation, f"validation fraction {fraction:g}, seed {seed}",
                 {"val_fraction": fraction, "seed": seed})


def _shuffled_groups(cases: Sequence[Case], seed: int) -> list[list[tuple[Case, ...]]]:
    """Patients (tuples of their cases) grouped by source (groups in name order), each group shuffled with ``seed``."""
    groups: dict[str, dict[str, list[Case]]] = {}
    for case in cases:
        groups.setdefault(case.source or "", {}).setdefault(case.patient_id, []).append(case)
    rng = random.Random(seed)
    shuffled = []
    for name in sorted(groups):
        patients = [tuple(sorted(scans, key=lambda case: case.id)) for _, scans in sorted(groups[name].items())]
        rng.shuffle(patients)
        shuffled.append(patients)
    return shuffled


def fold_assignment(cases: Sequence[Case], folds: int, seed: int) -> dict[str, int]:
    """Case id → fold: each source's shuffled patients are dealt round-robin, continuing across sources.

    All scans of one patient land in the same fold.
    """
    assignment: dict[str, int] = {}
    position = 0
    for group in _shuffled_groups(cases, seed):
        for patient in group:
            for case in patient:
                assignment[case.id] = position % folds
            position += 1
    return assignment


def _fold_split(cases: list[Case], folds: int, fold: int, seed: int) -> Split:
    if folds < 2:
        raise LesionDetectError(f"--folds must be ≥ 2, not {folds}")
    if not 0 <= fold < folds:
        raise LesionDetectError(f"--fold must be in 0…{folds - 1}, not {fold}")
    patients = len({case.patient_id for case in cases})
    if folds > patients:
        raise DatasetError(f"{folds} folds need at least {folds} patients; the dataset has {patients}")
    assignment = fold_assignment(cases, folds, seed)
    training = tuple(case for case in cases if assignment[case.id] != fold)
    validation = tuple(case for case in cases if assignment[case.id] == fold)
    return Split(training, validation, f"{folds}-fold cross-validation, fold {fold}, seed {seed}",
                 {"folds": folds, "fold": fold, "seed": seed})
