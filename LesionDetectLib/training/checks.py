"""Checking a training dataset before training: every image and label read once, every problem listed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import DatasetError, InputImageError, LesionDetectError
from ..io import read_mask, read_volume
from .channel_layout import read_channels
from .dataset import Case, LabelledDataset


@dataclass(frozen=True)
class CaseInfo:
    """What the file checks learnt about a case (used to size caches and guess the modality)."""

    case: Case
    shape_ijk: tuple[int, int, int]
    spacing: tuple[float, float, float]
    modality_guess: str
    lesion_voxels: int



def validate_dataset(
    dataset: LabelledDataset,
    cases: Sequence[Case] | None = None,
    allow_empty_labels: bool = False,
    workers: int | None = None,
) -> list[CaseInfo]:
    """Read every image and label once; raise one `DatasetError` listing every problem found.

    Problems: structural ones from reading the dataset, missing or unreadable files, 2-D images, labels whose
    geometry (size, spacing, origin, direction) differs from their image, and labels without any lesion
    voxel (unless ``allow_empty_labels``: lesion-free cases then teach the network what is not a lesion).
    The error's ``problems`` attribute holds the list.
    """
    cases = dataset.cases if cases is None else tuple(cases)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda case: _check_case(case, allow_empty_labels), cases))
    problems = list(dataset.problems) + [problem for found, _ in results for problem in found]
    if problems:
        error = DatasetError(
            f"dataset {dataset.location} has {len(problems)} problem(s): " + "; ".join(problems)
        )
        error.problems = problems
        raise error
    return [info for _, info in results if info is not None]


def _check_case(case: Case, allow_empty: bool) -> tuple[list[str], CaseInfo | None]:
    files = [("image", case.image), ("label", case.label)] + [(f"channel {name}", path) for name, path in case.channels[1:]]
    missing = [f"case {case.id}: {kind} file {path} is missing" for kind, path in files if not path.exists()]
    if missing:
        return missing, None
    problems: list[str] = []
    image = label = None
    try:
        image = read_volume(case.image)
        if min(image.shape_ijk) < 2:
            problems.append(f"case {case.id}: image {case.image} is 2-D (size {image.shape_ijk}); a 3-D volume is needed")
            image = None
    except InputImageError as error:
        problems.append(f"case {case.id}: image {error}")
    try:
        label = read_mask(case.label)
    except LesionDetectError as error:
        problems.append(f"case {case.id}: label {error}")
    if image is None or label is None:
        return problems, None
    if case.channels:
        try:
            read_channels(case.channels, reference=image)
        except InputImageError as error:
            problems.append(f"case {case.id}: {error}")
    mismatch = geometry_mismatch(image, label)
    if mismatch:
        problems.append(f"case {case.id}: label geometry differs from the image ({mismatch})")
    lesion_voxels = int(np.count_nonzero(label.array))
    if lesion_voxels == 0 and not allow_empty:
        problems.append(f"case {case.id}: label {case.label} is empty (no lesion voxel)")
    info = CaseInfo(case, image.shape_ijk, tuple(image.spacing), image.modality or "MR", lesion_voxels)
    return problems, (None if problems else info)


def geometry_mismatch(image, label) -> str:
    """'' when two volumes share a voxel grid (within float precision of file headers), else what differs."""
    scale = max(float(np.max(image.spacing)), 1e-6)
    differences = []
    if image.shape_ijk != label.shape_ijk:
        differences.append(f"size {image.shape_ijk} vs {label.shape_ijk}")
    if not np.allclose(image.spacing, label.spacing, rtol=1e-4, atol=1e-5):
        differences.append(f"spacing {_round(image.spacing)} vs {_round(label.spacing)}")
    if not np.allclose(image.origin, label.origin, atol=1e-3 * scale):
        differences.append(f"origin {_round(image.origin)} vs {_round(label.origin)}")
    if not np.allclose(image.direction, label.direction, atol=1e-4):
        differences.append("direction")
    return ", ".join(differences)


def _round(values) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in values)
