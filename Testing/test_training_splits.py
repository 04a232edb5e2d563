"""`training.splits`: patient-level training/validation splits and cross-validation folds."""

from __future__ import annotations

from pathlib import Path

import pytest

from LesionDetectLib.errors import DatasetError, LesionDetectError
from LesionDetectLib.training import split_cases
from LesionDetectLib.training.dataset import Case, LabelledDataset
from LesionDetectLib.training.splits import fold_assignment


def test_split_is_case_level_deterministic_and_stratified():
    cases = tuple(Case(f"c{n:02d}", Path(f"i{n}"), Path(f"l{n}"), source="AAAAAAABBC"[n % 10]) for n in range(20))
    data = LabelledDataset("d", Path("."), cases)
    first, again = split_cases(data, val_fraction=0.25, seed=3), split_cases(data, val_fraction=0.25, seed=3)
    assert first == again
    assert {c.id for c in first.training} | {c.id for c in first.validation} == {c.id for c in cases}
    assert not {c.id for c in first.training} & {c.id for c in first.validation}
    for part in (first.training, first.validation):
        assert {case.source for case in part} == {"A", "B", "C"}
    assert split_cases(data, val_fraction=0.25, seed=4).validation != first.validation
    assert split_cases(data, val_fraction=0.0).validation == ()

    folds = [split_cases(data, folds=4, fold=f, seed=1) for f in range(4)]
    validated = [case.id for split in folds for case in split.validation]
    assert sorted(validated) == sorted(case.id for case in cases)  # every case validated exactly once
    assert all({"A", "B"} <= {case.source for case in split.validation} for split in folds)  # C has 2 cases
    assert fold_assignment(cases, 4, 1) == fold_assignment(tuple(reversed(cases)), 4, 1)
    with pytest.raises(LesionDetectError):
        split_cases(data, folds=4, val_fraction=0.2)


def test_scans_of_one_patient_always_share_a_fold():
    cases = [Case(f"p{p}_t{t}", Path("i"), Path("l"), source="AB"[p % 2], patient=f"p{p}")
             for p in range(6) for t in range(2)]
    cases += [Case("single", Path("i"), Path("l"), source="A")]
    for seed in range(5):
        folds = fold_assignment(cases, 3, seed)
        for p in range(6):
            assert folds[f"p{p}_t0"] == folds[f"p{p}_t1"]
        assert sorted(set(folds.values())) == [0, 1, 2]
    dataset = LabelledDataset("d", Path("d.json"), tuple(cases))
    split = split_cases(dataset, val_fraction=0.3, seed=1)
    validated = {case.patient_id for case in split.validation}
    assert validated and not validated & {case.patient_id for case in split.training}
    with pytest.raises(DatasetError, match="patients"):
        split_cases(LabelledDataset("d", Path("d.json"), tuple(cases[:4])), folds=3, fold=0)
