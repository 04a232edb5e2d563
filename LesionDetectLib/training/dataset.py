"""Training datasets: reading a datalist or folder into cases (`checks` reads every file, `splits` divides them).

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
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..io import IMAGE_SUFFIXES, volume_stem
from .channel_layout import (
    AS_DECLARED,
    ChannelOptions,
    channel_names,
    datalist_path,
    image_paths,
    item_channels,
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
