"""The ``evaluate`` entry: gather predictions and references for many cases, match them, summarize.

References (``ref``):
- a label folder: ``<case>.nii.gz`` / ``.nii`` / ``.nrrd`` / ``.seg.nrrd`` / ``.mha`` files, or
  ``<case>/label.nii.gz`` (also ``seg``, ``mask``, ``segmentation`` …) sub-folders;
- an MSD ``dataset.json`` / MONAI datalist (``training`` and ``validation`` lists of ``image``/``label``,
  paths relative to the json's folder or ``base_dir``); the case name is the item's ``case`` field, else
  the label's file stem, else (when stems repeat) the label's folder name;
- a LUNA16-style CSV (``case``/``seriesuid, coordX, coordY, coordZ, diameter_mm``, LPS mm).
Predictions (``pred_dir``): ``<case>.lesions.csv`` (preferred) or ``<case>.mrk.json`` and, for Dice,
``<case>.seg.nrrd``; also found under ``<case>/`` sub-folders or by the image's stem.
Cases named by ``lesion_free`` have no reference lesions: they only contribute false positives.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..volume import LPS_TO_RAS, Volume
from .froc import FrocCurve, Metrics, summarize
from .matching import CaseMatch, Prediction, dice_coefficient, match_case
from .reference import (
    LesionRule,
    ReferenceSet,
    read_sphere_csv,
    reference_lesions,
    resolve_rule,
    sphere_lesions,
)

LABEL_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
LABEL_NAMES = ("label", "labels", "seg", "segmentation", "mask", "reference", "gt")
PREDICTION_SUFFIXES = {".lesions.csv": "csv", ".mrk.json": "mrk", ".seg.nrrd": "seg"}
_CONFIDENCE = re.compile(r"confidence[\s:=]*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class CaseSource:
    """Where one case's reference comes from: a mask file, CSV spheres, or nothing (lesion-free)."""

    case: str
    label: Path | None = None
    spheres: tuple[tuple[tuple[float, float, float], float], ...] | None = None
    image_stem: str | None = None
    lesion_free: bool = False


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Matched cases, metrics and FROC of one evaluation, with the rule and criterion used."""

    cases: tuple[CaseMatch, ...]
    metrics: Metrics
    curve: FrocCurve
    rule: LesionRule
    criterion: str
    reference: str
    predictions: str
    warnings: tuple[str, ...] = ()


def evaluate(
    pred_dir: str | Path,
    ref: str | Path,
    *,
    rule: LesionRule | str | None = None,
    threshold: float = 0.0,
    base_dir: str | Path | None = None,
    split: str = "all",
    filters: Sequence[tuple[str, str]] = (),
    lesion_free: Iterable[str] = (),
    allow_missing: bool = False,
    n_resamples: int = 1000,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate the predictions in ``pred_dir`` against the reference ``ref`` (see the module docstring).

    ``rule`` defaults to ``glioma`` for masks and ``luna16`` for a CSV; ``threshold`` is the confidence of
    the operating point (the FROC uses every prediction). Raises ``DatasetError`` listing every problem.
    """
    pred_dir, ref = Path(pred_dir), Path(ref)
    if not pred_dir.is_dir():
        raise DatasetError(f"prediction folder not found: {pred_dir}")
    sources = reference_sources(ref, base_dir=base_dir, split=split, filters=filters)
    spheres = ref.suffix.lower() == ".csv"
    sources += _lesion_free_sources(lesion_free, {s.case for s in sources}, spheres)
    if not sources:
        chosen = "".join(f", {key}={value}" for key, value in filters)
        raise DatasetError(f"no cases found in {ref} (split {split}{chosen})")
    if rule is None or isinstance(rule, str):
        rule = resolve_rule(rule or ("luna16" if spheres else "glioma"))
    index = prediction_index(pred_dir)
    located, warnings = _locate_all(sources, index, pred_dir, allow_missing)
    cases = tuple(
        evaluate_case(source, files.get("csv") or files.get("mrk"), files.get("seg"), rule, threshold)
        for source, files in zip(sources, located, strict=True)
    )
    left_out = {s.case for s in reference_sources(ref, base_dir=base_dir)} if filters or split != "all" else set()
    warnings += _unused_predictions(index, located, left_out, pred_dir)
    metrics, curve = summarize(cases, threshold=threshold, n_resamples=n_resamples, seed=seed)
    return EvaluationResult(
        cases, metrics, curve, rule, rule.describe(spheres=spheres), str(ref), str(pred_dir), tuple(warnings)
    )


def evaluate_case(
    source: CaseSource, predictions_path: Path | None, seg_path: Path | None, rule: LesionRule, threshold: float
) -> CaseMatch:
    """Read one case's files and match them.

    Dice needs a predicted mask and a reference mask (a lesion-free case's is empty); none for CSV references.
    """
    predictions = read_predictions(predictions_path) if predictions_path else []
    mask = read_mask(source.label) if source.label else None
    if source.spheres is not None:
        reference = sphere_lesions(source.spheres, rule)
    elif mask is not None:
        reference = reference_lesions(mask, rule)
    else:
        reference = ReferenceSet((), rule.hit_distance_mm)
    dice = ref_volume = pred_volume = None
    if seg_path is not None and source.spheres is None and (mask is not None or source.lesion_free):
        labels = _keep_confident(read_mask(seg_path, keep_labels=True), predictions, threshold)
        predicted = labels.with_array((labels.array > 0).astype(np.uint8))
        if mask is None:
            reference_mask = np.zeros(predicted.array.shape, dtype=bool)
            ref_volume = 0.0
        else:
            predicted = _on_grid(predicted, mask)
            reference_mask = mask.array > 0
            ref_volume = float(reference_mask.sum() * mask.voxel_volume_mm3)
        pred_volume = float((predicted.array > 0).sum() * predicted.voxel_volume_mm3)
        dice = dice_coefficient(predicted.array > 0, reference_mask)
    return match_case(source.case, predictions, reference, dice, ref_volume, pred_volume)


# ---------------------------------------------------------------- references


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
            labels = [p for p in sorted(path.iterdir()) if p.is_file() and _label_stem(p.name) in LABEL_NAMES]
            if not labels:
                continue
            label = labels[0]
            case = path.name
        elif _label_stem(path.name) is not None:
            label, case = path, _label_stem(path.name)
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
    stems = [_label_stem(p.name) or p.name for p in labels]
    images = [_label_stem(Path(_first_image(item)).name) if _first_image(item) else None for item in items]
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


def _lesion_free_sources(values: Iterable[str], known: set[str], spheres: bool) -> list[CaseSource]:
    """Lesion-free cases from names, folders (their image stems) or .txt files (one name a line)."""
    names: list[str] = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            names += [_label_stem(p.name) or p.name for p in sorted(path.iterdir())
                      if p.is_dir() or _label_stem(p.name)]
        elif path.suffix == ".txt" and path.is_file():
            names += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            names.append(value)
    clash = sorted(set(names) & known)
    if clash:
        raise DatasetError(f"case(s) given as lesion-free also have a reference: {', '.join(clash)}")
    return [CaseSource(name, spheres=() if spheres else None, lesion_free=True) for name in dict.fromkeys(names)]


def _label_stem(name: str) -> str | None:
    """The file name without a known image suffix, or None when it is not an image file."""
    lower = name.lower()
    for suffix in LABEL_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


# ---------------------------------------------------------------- predictions


def prediction_index(pred_dir: Path) -> dict[str, dict[str, Path]]:
    """Prediction files by stem and kind (csv, mrk, seg): in the folder, and in one-case sub-folders."""
    index = _index_files(pred_dir)
    for sub in sorted(p for p in pred_dir.iterdir() if p.is_dir()):
        inner = _index_files(sub)
        if len(inner) == 1 and sub.name not in index:
            index[sub.name] = next(iter(inner.values()))
    return index


def _index_files(folder: Path) -> dict[str, dict[str, Path]]:
    index: dict[str, dict[str, Path]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        for suffix, kind in PREDICTION_SUFFIXES.items():
            if path.name.endswith(suffix):
                index.setdefault(path.name[: -len(suffix)], {})[kind] = path
    return index


def _locate_all(
    sources: Sequence[CaseSource], index: dict[str, dict[str, Path]], pred_dir: Path, allow_missing: bool
) -> tuple[list[dict[str, Path]], list[str]]:
    located, missing, problems = [], [], []
    for source in sources:
        if source.label is not None and not source.label.exists():
            problems.append(f"reference label not found for case {source.case}: {source.label}")
        names = [source.case, f"{source.case}_0000"] + ([source.image_stem] if source.image_stem else [])
        files = next((index[name] for name in names if name in index), {})
        if "csv" not in files and "mrk" not in files:
            missing.append(source.case)
        located.append(files)
    warnings = []
    if missing and allow_missing:
        warnings.append(f"no predictions for {len(missing)} case(s), counted as no detections: "
                        f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    elif missing:
        problems.append(f"no <case>.lesions.csv or <case>.mrk.json in {pred_dir} for case(s) "
                        f"{', '.join(missing)} (use --allow-missing to count them as no detections)")
    if problems:
        raise DatasetError("; ".join(problems))
    return located, warnings


def _unused_predictions(
    index: dict[str, dict[str, Path]], located: Sequence[dict[str, Path]], left_out: set[str], pred_dir: Path
) -> list[str]:
    """A warning naming prediction files that belong to no evaluated case (cases left out on purpose aside)."""
    used = {path for files in located for path in files.values()}
    unused = sorted(
        stem for stem, files in index.items() if not set(files.values()) & used and stem not in left_out
    )
    if not unused:
        return []
    return [f"{len(unused)} prediction(s) in {pred_dir} match no evaluated case and were not used (name "
            f"lesion-free cases with --lesion-free): {', '.join(unused[:5])}{' …' if len(unused) > 5 else ''}"]


def read_predictions(path: str | Path) -> list[Prediction]:
    """Predicted lesions from a ``.lesions.csv`` (LPS centroid, ``confidence_max``) or a ``.mrk.json``."""
    path = Path(path)
    try:
        if path.name.endswith(".json"):
            return _markup_predictions(path, json.loads(path.read_text(encoding="utf-8")))
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _table_predictions(path, list(csv.DictReader(handle)))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read predictions {path}: {exc}") from exc


def _table_predictions(path: Path, rows: list[dict[str, str]]) -> list[Prediction]:
    predictions = []
    for number, row in enumerate(rows, start=2):
        if not any((value or "").strip() for value in row.values()):
            continue
        try:
            if row.get("centroid_l") not in (None, ""):
                centre = (float(row["centroid_l"]), float(row["centroid_p"]), float(row["centroid_s_lps"]))
            else:
                centre = (-float(row["centroid_r"]), -float(row["centroid_a"]), float(row["centroid_s"]))
            confidence = float(row["confidence_max"])
            identifier = int(row["id"]) if row.get("id") not in (None, "") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{path} line {number}: needs numeric centroid_l, centroid_p, centroid_s_lps (or centroid_r, "
                f"centroid_a, centroid_s) and confidence_max ({exc})"
            ) from exc
        if not all(math.isfinite(v) for v in (*centre, confidence)):
            raise DatasetError(f"{path} line {number}: centroid and confidence must be finite")
        predictions.append(Prediction(centre, confidence, identifier))
    return predictions


def _markup_predictions(path: Path, document: dict) -> list[Prediction]:
    """Control points of a Slicer markups file; confidence from ``confidence 0.87`` in the description, else 1."""
    predictions = []
    for markup in document.get("markups", []):
        flip = np.diag(LPS_TO_RAS) if str(markup.get("coordinateSystem", "LPS")).upper() == "RAS" else np.ones(3)
        for number, point in enumerate(markup.get("controlPoints", []), start=1):
            position = point.get("position")
            if position is None or len(position) != 3 or not np.all(np.isfinite(np.asarray(position, float))):
                raise DatasetError(f"{path}: control point {number} has no finite 3-D position")
            found = _CONFIDENCE.search(str(point.get("description", "")))
            label = re.fullmatch(r"L(\d+)", str(point.get("label", "")))
            predictions.append(Prediction(
                tuple(float(v) for v in np.asarray(position, dtype=float) * flip),
                float(found.group(1)) if found else 1.0,
                int(label.group(1)) if label else None,
            ))
    return predictions


# ---------------------------------------------------------------- masks


def read_mask(path: str | Path, keep_labels: bool = False) -> Volume:
    """A label image (NIfTI, NRRD, MHA, seg.nrrd 3-D or layered) as a ``Volume``.

    Any value > 0 is lesion: the result holds 0/1 (uint8), or with ``keep_labels`` the label values of
    a 3-D label map (int32; layered and vector files are still reduced to 0/1).
    """
    from ..io import check_image_file

    path = Path(path)
    try:
        check_image_file(path)  # a FIFO, a truncated NIfTI or a header ITK would read wrong is refused first
        if path.name.lower().endswith((".nrrd", ".nhdr")):
            volume = _read_nrrd(path, keep_labels)
            if volume is not None:
                return volume
        return _read_sitk(path, keep_labels)
    except DatasetError:
        raise
    except Exception as exc:  # unreadable files of any kind become one clear message
        raise DatasetError(f"cannot read the mask {path}: {exc}") from exc


def _read_sitk(path: Path, keep_labels: bool) -> Volume:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    if image.GetDimension() != 3:
        raise DatasetError(f"{path}: a mask must be 3-D, this one is {image.GetDimension()}-D")
    array = sitk.GetArrayFromImage(image)
    if array.ndim == 4:  # vector pixels: lesion where any component is
        array = (array > 0).any(axis=-1)
    return Volume(
        array=_labels(array, keep_labels),
        spacing=tuple(float(s) for s in image.GetSpacing()),
        origin=tuple(float(o) for o in image.GetOrigin()),
        direction=np.asarray(image.GetDirection(), dtype=float).reshape(3, 3),
        name=path.name,
    )


def _read_nrrd(path: Path, keep_labels: bool) -> Volume | None:
    """A (seg.)nrrd through pynrrd: 3-D label maps and 4-D layered segmentations; None when not LPS/RAS."""
    import nrrd

    data, header = nrrd.read(str(path))  # axes in NRRD order: i, j, k (and a list axis for layers)
    space = str(header.get("space", "")).lower()
    if space not in ("left-posterior-superior", "lps", "right-anterior-superior", "ras"):
        return None
    directions = np.array(
        [[np.nan] * 3 if row is None else row for row in header["space directions"]], dtype=float
    )
    spatial = [axis for axis, row in enumerate(directions) if np.all(np.isfinite(row))]
    if len(spatial) != 3:
        raise DatasetError(f"{path}: a mask needs 3 spatial axes, found {len(spatial)}")
    other = tuple(axis for axis in range(data.ndim) if axis not in spatial)
    if other:  # layered segmentation: lesion wherever any layer has a segment
        data = (data > 0).any(axis=other)
    matrix = directions[spatial].T  # columns: physical step of i, j, k
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    if space in ("right-anterior-superior", "ras"):
        matrix, origin = LPS_TO_RAS @ matrix, LPS_TO_RAS @ origin
    spacing = np.linalg.norm(matrix, axis=0)
    return Volume(
        array=_labels(np.ascontiguousarray(data.transpose(2, 1, 0)), keep_labels),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in origin),
        direction=matrix / spacing,
        name=path.name,
    )


def _labels(array: np.ndarray, keep_labels: bool) -> np.ndarray:
    """Integer label values (int32, negatives as 0) when asked and available, else 0/1 uint8."""
    if keep_labels and np.issubdtype(array.dtype, np.integer):
        return np.where(array > 0, array, 0).astype(np.int32)
    return (array > 0).astype(np.uint8)


def _on_grid(moving: Volume, fixed: Volume) -> Volume:
    """``moving`` on ``fixed``'s voxel grid (nearest neighbour; outside is 0); unchanged if already there."""
    if moving.same_geometry(fixed, tolerance=1e-4):
        return moving
    import SimpleITK as sitk

    resampled = sitk.Resample(
        moving.to_sitk(), fixed.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )
    return fixed.with_array(sitk.GetArrayFromImage(resampled), name=moving.name)


def _keep_confident(mask: Volume, predictions: Sequence[Prediction], threshold: float) -> Volume:
    """Drop from a label map the lesions whose confidence is below ``threshold``.

    Works when the label values are the lesion ids of the table (our own writer); otherwise the mask
    is used whole.
    """
    dropped = {p.id for p in predictions if p.confidence < threshold and p.id is not None}
    values = set(np.unique(mask.array).tolist()) - {0}
    if not dropped or not values <= {p.id for p in predictions}:
        return mask
    return mask.with_array(np.where(np.isin(mask.array, sorted(dropped)), 0, mask.array))
