"""Training datasets: reading them, checking every file before training, and case-level splits.

Layouts:
- a Medical Segmentation Decathlon ``dataset.json`` or a MONAI datalist: ``training`` (and optionally
  ``validation``) lists of ``{"image": ..., "label": ...}`` with paths relative to the JSON's folder;
  extra keys such as ``case``, ``source`` and ``lesion_type`` are kept; ``image`` may list one path per
  channel, and other keys may hold further channels (`channel_layout`);
- an nnU-Net-style folder: ``imagesTr/<case>_0000.nii.gz`` (``_0001``… for further channels) with
  ``labelsTr/<case>.nii.gz``.
Any label value > 0 is lesion.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, InputImageError, LesionDetectError
from ..io import IMAGE_SUFFIXES, read_mask, read_volume, volume_stem
from .channel_layout import (
    AS_DECLARED,
    ChannelOptions,
    channel_names,
    datalist_path,
    image_paths,
    item_channels,
    read_channels,
    usual_image_count,
)

MR_CHANNELS = ("MR", "MRI", "FLAIR", "T1", "T1W", "T1C", "T1CE", "T1GD", "T2", "T2W", "PD", "DWI", "ADC", "SWI")
CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class Case:
    """One annotated scan: an image, its lesion mask, and optional ``source`` / ``lesion_type`` / ``patient`` tags.

    Scans sharing a ``patient`` (e.g. two time points) are always split together. ``channels``: for a
    multi-channel dataset, (name, path) of every input channel in network order; the first is ``image``, whose
    grid the others are resampled onto and on which ``label`` lies.
    """

    id: str
    image: Path
    label: Path
    source: str | None = None
    lesion_type: str | None = None
    patient: str | None = None
    channels: tuple[tuple[str, Path], ...] = ()

    @property
    def patient_id(self) -> str:
        """The unit of splitting: the ``patient`` tag, else the case itself."""
        return self.patient or self.id


@dataclass(frozen=True)
class LabelledDataset:
    """The cases of a dataset, its own validation list (may be empty), and what its JSON says."""

    name: str
    location: Path
    training: tuple[Case, ...]
    validation: tuple[Case, ...] = ()
    modality: str | None = None
    channels: tuple[str, ...] = ()  # the network's input channels in order (empty: one, named by the modality)
    problems: tuple[str, ...] = ()  # structural problems found while reading (reported with the file checks)

    @property
    def cases(self) -> tuple[Case, ...]:
        return self.training + self.validation


@dataclass(frozen=True)
class CaseInfo:
    """What the file checks learnt about a case (used to size caches and guess the modality)."""

    case: Case
    shape_ijk: tuple[int, int, int]
    spacing: tuple[float, float, float]
    modality_guess: str
    lesion_voxels: int


@dataclass(frozen=True)
class Split:
    """Training and validation cases, and how they were chosen."""

    training: tuple[Case, ...]
    validation: tuple[Case, ...]
    method: str
    details: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ reading


def load_dataset(path: str | Path, filters: Sequence[tuple[str, str]] = (),
                 channels: ChannelOptions = AS_DECLARED) -> LabelledDataset:
    """A dataset from a ``dataset.json``/datalist file, a folder holding one, or an ``imagesTr/labelsTr`` folder.

    ``filters``: (key, value) pairs; only datalist items whose field ``key`` equals ``value`` are kept.
    ``channels``: names of the ``image`` channels and datalist keys of further ones (`channel_layout`).
    """
    path = Path(path).expanduser().absolute()
    if path.is_file():
        return _from_datalist(path, filters, channels)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such dataset (a dataset.json / datalist file or a folder)")
    json_file = path / "dataset.json"
    if json_file.is_file() and _has_training_list(json_file):
        return _from_datalist(json_file, filters, channels)
    if filters or channels.keys:
        raise DatasetError(f"{path}: {'filters need' if filters else '--channel-key needs'} a datalist with fields to match")
    if (path / "imagesTr").is_dir():
        return _from_folder(path, json_file if json_file.is_file() else None, channels)
    raise DatasetError(f"{path}: neither a dataset.json with a 'training' list nor an imagesTr/labelsTr folder")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: not a readable JSON file ({error})") from None


def _has_training_list(path: Path) -> bool:
    data = _read_json(path)
    return isinstance(data, dict) and isinstance(data.get("training"), list) and len(data["training"]) > 0


def _channels(data: dict[str, Any]) -> tuple[str, ...]:
    """Channel names from MSD ``modality`` or nnU-Net ``channel_names`` ({"0": "FLAIR"})."""
    names = data.get("modality", data.get("channel_names"))
    if isinstance(names, dict):
        return tuple(str(names[key]) for key in sorted(names, key=lambda k: int(k) if str(k).isdigit() else 0))
    if isinstance(names, str):
        return (names,)
    return ()


def modality_of_channels(channels: Sequence[str]) -> str | None:
    """'CT' or 'MR' when the channel names say so, else None."""
    names = {name.strip().upper().replace("-", "") for name in channels}
    if names and names <= {"CT"}:
        return "CT"
    if names and all(name.startswith(MR_CHANNELS) for name in names):
        return "MR"
    return None


def _from_datalist(path: Path, filters: Sequence[tuple[str, str]], options: ChannelOptions) -> LabelledDataset:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: must hold a JSON object with a 'training' list")
    base = path.parent
    problems: list[str] = []
    chosen_items: dict[str, list] = {}
    for key in ("training", "validation"):
        items = data.get(key) or []
        if not isinstance(items, list):
            problems.append(f"'{key}' must be a list")
            items = []
        chosen_items[key] = [item for item in items if _matches(item, filters)]
    declared = _channels(data)
    names, naming_problems = channel_names(declared, usual_image_count(sum(chosen_items.values(), [])), options)
    problems += naming_problems
    lists: dict[str, list[Case]] = {
        key: [case for number, item in enumerate(items) if (case := _case(item, base, key, number, problems, names, options))]
        for key, items in chosen_items.items()
    }
    if not lists["training"] and not lists["validation"] and not problems:
        chosen = "".join(f" with {key}={value}" for key, value in filters)
        problems.append(f"the 'training' list holds no item{chosen}")
    problems += _duplicate_ids(lists["training"] + lists["validation"])
    return LabelledDataset(
        name=str(data.get("name") or path.parent.name), location=path, training=tuple(lists["training"]),
        validation=tuple(lists["validation"]), modality=modality_of_channels(names or declared), channels=names,
        problems=tuple(f"{path}: {problem}" for problem in problems),
    )


def _matches(item: Any, filters: Sequence[tuple[str, str]]) -> bool:
    """Whether a datalist item has every (key, value) of ``filters`` (non-dict items are kept, to be reported)."""
    return not isinstance(item, dict) or all(str(item.get(key)) == value for key, value in filters)


def _case(item: Any, base: Path, key: str, number: int, problems: list[str], names: Sequence[str],
          options: ChannelOptions) -> Case | None:
    where = f"{key}[{number}]"
    if not isinstance(item, dict) or not item.get("image") or not item.get("label"):
        problems.append(f"{where} needs an 'image' and a 'label'")
        return None
    paths = image_paths(item)
    if paths is None or not isinstance(item["label"], str):
        problems.append(f"{where}: 'image' must be a path or a list of paths (one per channel), 'label' one path")
        return None
    image, label = datalist_path(paths[0], base), datalist_path(item["label"], base)
    case_id = str(item.get("case") or _case_id_from_image(image))
    channels: tuple[tuple[str, Path], ...] = ()
    if len(names) > 1 or len(paths) > 1:
        channels, problem = item_channels(item, case_id, base, names, options)
        if problem:
            problems.append(problem)
            return None
    tags = {key: (str(item[key]) if item.get(key) is not None else None) for key in ("source", "lesion_type", "patient")}
    return Case(case_id, image, label, **tags, channels=channels)


def _case_id_from_image(image: Path) -> str:
    stem = volume_stem(image)
    match = CHANNEL_SUFFIX.match(stem)
    stem = match["case"] if match else stem
    generic = stem.lower() in ("image", "img", "flair", "t1", "t2", "ct", "volume", "scan")
    return f"{image.parent.name}" if generic else stem


def _duplicate_ids(cases: list[Case]) -> list[str]:
    ids = [case.id for case in cases]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    return [f"several items share the case id(s) {', '.join(repeated)} (give each a unique 'case')"] if repeated else []


def _image_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    files = [p for p in sorted(folder.iterdir()) if p.name.lower().endswith(IMAGE_SUFFIXES) and not p.name.startswith(".")]
    return {volume_stem(p): p for p in files}


def _from_folder(root: Path, json_file: Path | None, options: ChannelOptions) -> LabelledDataset:
    """``imagesTr/<case>_0000…`` (one file per channel, ``_0000`` first) with ``labelsTr/<case>``."""
    images, labels = _image_files(root / "imagesTr"), _image_files(root / "labelsTr")
    problems: list[str] = []
    by_case: dict[str, dict[str, Path]] = {}
    for stem, path in images.items():
        match = CHANNEL_SUFFIX.match(stem)
        case, channel = (match["case"], match["channel"]) if match else (stem, "0000")
        by_case.setdefault(case, {})[channel] = path
    data = _read_json(json_file) if json_file else {}
    declared = _channels(data) if isinstance(data, dict) else ()
    count = Counter(len(channels) for channels in by_case.values()).most_common(1)[0][0] if by_case else 1
    names, naming_problems = channel_names(declared, count, options)
    problems += naming_problems
    expected = [f"{number:04d}" for number in range(count)]
    cases = []
    for case, channels in sorted(by_case.items()):
        if sorted(channels) != expected:
            problems.append(f"case {case}: channel files {', '.join(sorted(channels))}; the dataset's cases have "
                            f"{', '.join(expected)}")
            continue
        label = labels.get(case)
        if label is None:
            problems.append(f"case {case}: image {channels['0000']} has no label labelsTr/{case}.nii.gz")
            continue
        paths = tuple(zip(names, (channels[number] for number in expected))) if count > 1 else ()
        cases.append(Case(case, channels["0000"], label, channels=paths))
    problems += [f"label {path} has no image in imagesTr" for stem, path in labels.items() if stem not in by_case]
    if not images:
        problems.append(f"{root / 'imagesTr'} holds no images")
    name = str(data.get("name") if isinstance(data, dict) and data.get("name") else root.name)
    return LabelledDataset(
        name=name, location=root, training=tuple(cases), modality=modality_of_channels(names or declared),
        channels=names, problems=tuple(f"{root}: {problem}" for problem in problems),
    )


# ------------------------------------------------------------------------------------------ checking


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


# ------------------------------------------------------------------------------------------ splitting


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
