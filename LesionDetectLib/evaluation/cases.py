"""The cases of an evaluation and where each one's reference lies (the lesions themselves: `reference`).

- a label folder: ``<case>.nii.gz`` / ``.nii`` / ``.nrrd`` / ``.seg.nrrd`` / ``.mha`` files, or
  ``<case>/label.nii.gz`` (also ``seg``, ``mask``, ``segmentation`` …) sub-folders;
- an MSD ``dataset.json`` / MONAI datalist (``training`` and ``validation`` lists of ``image``/``label``,
  paths relative to the json's folder or ``base_dir``); the case name is the item's ``case`` field, else
  the label's file stem, else (when stems repeat) the label's folder name;
- a LUNA16-style CSV (``case``/``seriesuid, coordX, coordY, coordZ, diameter_mm``, LPS mm);
- lesion-free cases, named one by one, by a folder of their images or by a .txt file: no reference lesions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError
from ..io import image_stem
from .reference import read_sphere_csv

LABEL_NAMES = ("label", "labels", "seg", "segmentation", "mask", "reference", "gt")


@dataclass(frozen=True)
class CaseSource:
    """Where one case's reference comes from: a mask file, CSV spheres, or nothing (lesion-free)."""

    case: str
    label: Path | None = None
    spheres: tuple[tuple[tuple[float, float, float], float], ...] | None = None
    image_stem: str | None = None
    lesion_free: bool = False


def reference_sources(
    ref: Path, base_dir: str | Path | None = None, split: str = "all", filters: Sequence[tuple[str, str]] = ()
) -> list[CaseSource]:
    """The cases of a label folder, a datalist json or a LUNA16-style CSV."""
    if not ref.exists():
        raise DatasetError(f"reference not found: {ref}")
    if ref.is_dir():
        return _folder_sources(ref)
    if ref.suffix.lower() == ".json":
        return _datalist_sources(ref, Path(base_dir) if base_dir else ref.parent, split, filters)
    if ref.suffix.lower() == ".csv":
        return [
            CaseSource(case, spheres=tuple(items)) for case, items in sorted(read_sphere_csv(ref).items())
        ]
    raise DatasetError(f"unsupported reference {ref}: give a label folder, a dataset.json/datalist or a CSV")


def _folder_sources(folder: Path) -> list[CaseSource]:
    sources: dict[str, CaseSource] = {}
    problems = []
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            labels = [p for p in sorted(path.iterdir()) if p.is_file() and image_stem(p.name) in LABEL_NAMES]
            if not labels:
                continue
            label = labels[0]
            case = path.name
        elif image_stem(path.name) is not None:
            label, case = path, image_stem(path.name)
        else:
            continue
        if case in sources:
            problems.append(f"two references for case {case!r}: {sources[case].label} and {label}")
        sources[case] = CaseSource(case, label=label)
    if problems:
        raise DatasetError("; ".join(problems))
    return list(sources.values())


def _datalist_sources(
    path: Path, base: Path, split: str, filters: Sequence[tuple[str, str]]
) -> list[CaseSource]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read the datalist {path}: {exc}") from exc
    keys = ("training", "validation") if split == "all" else (split,)
    items = [item for key in keys for item in (data.get(key) or [])] if isinstance(data, dict) else []
    problems = [f"{path}: an item has no 'label': {item!r}" for item in items if not item.get("label")]
    if problems:
        raise DatasetError("; ".join(problems))
    labels = [base / item["label"] for item in items]
    stems = [image_stem(p.name) or p.name for p in labels]
    images = [image_stem(Path(_first_image(item)).name) if _first_image(item) else None for item in items]
    names = [
        str(item["case"]) if item.get("case")
        else stem if stems.count(stem) == 1 and stem.lower() not in LABEL_NAMES else label.parent.name
        for item, stem, label in zip(items, stems, labels, strict=True)
    ]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(f"{path}: several items share the case name(s) {', '.join(repeated)}")
    return [
        CaseSource(name, label=label, image_stem=image if images.count(image) == 1 else None)
        for item, name, label, image in zip(items, names, labels, images, strict=True)
        if all(str(item.get(key)) == value for key, value in filters)
    ]


def _first_image(item: dict) -> str | None:
    """A datalist item's image path; of a multi-channel ``image`` list, the first (the grid predictions lie on)."""
    image = item.get("image")
    return (image[0] if image and isinstance(image[0], str) else None) if isinstance(image, list) else image


def lesion_free_sources(values: Iterable[str], known: set[str], spheres: bool) -> list[CaseSource]:
    """Lesion-free cases from names, folders (their image stems) or .txt files (one name a line)."""
    names: list[str] = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            names += [image_stem(p.name) or p.name for p in sorted(path.iterdir())
                      if p.is_dir() or image_stem(p.name)]
        elif path.suffix == ".txt" and path.is_file():
            names += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            names.append(value)
    clash = sorted(set(names) & known)
    if clash:
        raise DatasetError(f"case(s) given as lesion-free also have a reference: {', '.join(clash)}")
    return [CaseSource(name, spheres=() if spheres else None, lesion_free=True) for name in dict.fromkeys(names)]


def missing_labels(sources: Iterable[CaseSource]) -> list[str]:
    """A problem for each case whose reference label file does not exist."""
    return [f"reference label not found for case {source.case}: {source.label}"
            for source in sources if source.label is not None and not source.label.exists()]
