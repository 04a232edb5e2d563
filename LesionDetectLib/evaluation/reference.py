"""Reference lesions from masks (or a LUNA16-style CSV of spheres) under a field's lesion rule.

A *rule* says what one reference lesion is, which lesions are too small to count, and how close a
predicted centroid must be to hit one:

- ``glioma`` (BraTS 2023 lesion-wise convention) and ``ct-tumour``: parts of the mask closer than
  6 mm form one lesion (26-connected components of the mask dilated by 3 mm in physical mm; each
  lesion is the original mask voxels inside one dilated component); lesions under 50 mm³ are
  ignored; a hit is a predicted centroid within 3 mm of the lesion.
- ``ms``: each 26-connected component of the mask is a lesion; lesions under 10 mm³ are ignored;
  hit within 3 mm.
- ``luna16``: for CSV references (centre + diameter): a hit is a centroid inside the sphere.

"Within d mm of a lesion" is the distance from the centroid to the centre of the lesion's nearest
voxel, and 0 when the centroid lies inside one of its voxels. For spheres it is the distance to
the sphere's surface (0 inside).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..volume import Volume, apply_affine

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class LesionRule:
    """What a reference lesion is: merge distance, minimum volume, hit distance (all in mm)."""

    merge_distance_mm: float
    min_volume_mm3: float
    hit_distance_mm: float
    name: str = "custom"

    def __post_init__(self) -> None:
        for field_name in ("merge_distance_mm", "min_volume_mm3", "hit_distance_mm"):
            value = getattr(self, field_name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{field_name} must be a finite number >= 0, not {value!r}")

    def describe(self, spheres: bool = False) -> str:
        """The matching criterion in one paragraph (printed in every report)."""
        if spheres:
            lesion = "reference lesions are the spheres of the CSV (centre, diameter)"
            hit = "a prediction hits a lesion when its centroid lies inside the sphere"
            if self.hit_distance_mm > 0:
                hit += f" or within {self.hit_distance_mm:g} mm of its surface"
        else:
            if self.merge_distance_mm > 0:
                lesion = (
                    f"reference lesions are the parts of the mask (label > 0) closer than "
                    f"{self.merge_distance_mm:g} mm to each other (26-connected components of the mask "
                    f"dilated by {self.merge_distance_mm / 2:g} mm)"
                )
            else:
                lesion = "reference lesions are the 26-connected components of the mask (label > 0)"
            hit = (
                f"a prediction hits a lesion when its centroid lies within {self.hit_distance_mm:g} mm of "
                "the lesion's nearest voxel (0 mm inside it)"
            )
        small = (
            f"lesions under {self.min_volume_mm3:g} mm³ are ignored" if self.min_volume_mm3 > 0
            else "no lesion is ignored for its size"
        )
        return (
            f"Rule {self.name}: {lesion}; {small}; {hit}. Each reference lesion counts once: the "
            "highest-confidence prediction hitting it is its true positive, further predictions hitting an "
            "already-hit lesion are neither true nor false positives (LUNA16/BraTS convention); a "
            "prediction hitting only ignored lesions counts neither way; every other prediction is a "
            "false positive."
        )


RULES: dict[str, LesionRule] = {
    "glioma": LesionRule(6.0, 50.0, 3.0, "glioma"),
    "ms": LesionRule(0.0, 10.0, 3.0, "ms"),
    "ct-tumour": LesionRule(6.0, 50.0, 3.0, "ct-tumour"),
    "luna16": LesionRule(0.0, 0.0, 0.0, "luna16"),
}


def resolve_rule(
    name: str = "glioma",
    merge_mm: float | None = None,
    min_volume_mm3: float | None = None,
    hit_mm: float | None = None,
) -> LesionRule:
    """A preset rule by name, with any of its numbers replaced (the name then says ``(modified)``)."""
    if name not in RULES:
        raise ValueError(f"unknown lesion rule {name!r}; choose one of {', '.join(RULES)}")
    rule = RULES[name]
    changes = {
        key: float(value)
        for key, value in (
            ("merge_distance_mm", merge_mm), ("min_volume_mm3", min_volume_mm3), ("hit_distance_mm", hit_mm)
        )
        if value is not None and float(value) != getattr(rule, key)
    }
    return replace(rule, name=f"{name} (modified)", **changes) if changes else rule


@dataclass(frozen=True, eq=False)
class ReferenceLesion:
    """One reference lesion: a set of mask voxels, or a sphere (``radius_mm``) from a CSV."""

    id: int
    volume_mm3: float
    centroid_lps: Triple
    ignored: bool
    voxel_count: int | None = None
    radius_mm: float | None = None
    surface_lps: np.ndarray | None = None  # centres of the lesion's boundary voxels (mask lesions)

    def distance_mm(self, points_lps: np.ndarray) -> np.ndarray:
        """Distance of each (N, 3) LPS point to the lesion, ignoring the inside test (see ReferenceSet).

        For a point outside the lesion's voxels the nearest voxel centre is a boundary voxel, so only
        those are searched.
        """
        points = np.asarray(points_lps, dtype=float).reshape(-1, 3)
        if self.radius_mm is not None:
            centre = np.asarray(self.centroid_lps, dtype=float)
            return np.maximum(np.linalg.norm(points - centre, axis=1) - self.radius_mm, 0.0)
        surface = self.surface_lps
        return np.array([np.sqrt(((surface - p) ** 2).sum(axis=1).min()) for p in points])


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """The reference lesions of one case and the tolerance for a hit.

    ``label_map`` (mask references) holds lesion ``id`` on each original mask voxel, so that a point
    inside a lesion voxel is at distance 0.
    """

    lesions: tuple[ReferenceLesion, ...]
    hit_distance_mm: float
    label_map: Volume | None = None

    def distances(self, points_lps: np.ndarray) -> np.ndarray:
        """(points, lesions) distances in mm from each predicted centroid to each lesion."""
        points = np.asarray(points_lps, dtype=float).reshape(-1, 3)
        result = np.empty((len(points), len(self.lesions)))
        inside = self._label_at(points)
        for column, lesion in enumerate(self.lesions):
            result[:, column] = lesion.distance_mm(points)
            result[inside == lesion.id, column] = 0.0
        return result

    def _label_at(self, points: np.ndarray) -> np.ndarray:
        """Lesion id of the voxel holding each point (0 outside every lesion or without a label map)."""
        labels = np.zeros(len(points), dtype=np.int64)
        if self.label_map is None or not len(points):
            return labels
        ijk = np.rint(apply_affine(np.linalg.inv(self.label_map.ijk_to_lps()), points)).astype(np.int64)
        shape_ijk = np.array(self.label_map.shape_ijk)
        valid = np.all((ijk >= 0) & (ijk < shape_ijk), axis=1)
        i, j, k = ijk[valid].T
        labels[valid] = self.label_map.array[k, j, i]
        return labels


def reference_lesions(mask: Volume, rule: LesionRule) -> ReferenceSet:
    """The reference lesions of a mask (any value > 0 is lesion) under ``rule``; ids 1…N by volume."""
    binary = np.asarray(mask.array) > 0
    labels = _lesion_labels(binary, mask.spacing, rule.merge_distance_mm / 2.0)
    label_map = mask.with_array(labels, name=f"{mask.name} lesions")
    count = int(labels.max()) if labels.size else 0
    if count == 0:
        return ReferenceSet((), rule.hit_distance_mm, label_map)
    voxel_volume = mask.voxel_volume_mm3
    ijk_to_lps = mask.ijk_to_lps()
    kji = np.nonzero(labels)
    values = labels[kji]
    boundary = _boundary(labels)[kji]
    order = np.argsort(values, kind="stable")
    starts = np.searchsorted(values[order], np.arange(1, count + 1))
    ends = np.append(starts[1:], len(order))
    lesions = []
    for lesion_id, (start, end) in enumerate(zip(starts, ends, strict=True), start=1):
        members = order[start:end]
        ijk = np.stack([kji[2][members], kji[1][members], kji[0][members]], axis=1).astype(float)
        volume = len(members) * voxel_volume
        lesions.append(ReferenceLesion(
            id=lesion_id,
            volume_mm3=volume,
            centroid_lps=tuple(float(v) for v in apply_affine(ijk_to_lps, ijk.mean(axis=0))),
            ignored=volume < rule.min_volume_mm3,
            voxel_count=len(members),
            surface_lps=apply_affine(ijk_to_lps, ijk[boundary[members]]),
        ))
    return ReferenceSet(tuple(lesions), rule.hit_distance_mm, label_map)


def sphere_lesions(spheres: Iterable[tuple[Triple, float]], rule: LesionRule) -> ReferenceSet:
    """Reference lesions from (centre LPS mm, diameter mm) pairs, largest first."""
    items = sorted(spheres, key=lambda item: -item[1])
    lesions = []
    for lesion_id, (centre, diameter) in enumerate(items, start=1):
        radius = float(diameter) / 2.0
        volume = 4.0 / 3.0 * math.pi * radius**3
        lesions.append(ReferenceLesion(
            id=lesion_id, volume_mm3=volume, centroid_lps=tuple(float(c) for c in centre),
            ignored=volume < rule.min_volume_mm3, radius_mm=radius,
        ))
    return ReferenceSet(tuple(lesions), rule.hit_distance_mm)


def read_sphere_csv(path: str | Path) -> dict[str, list[tuple[Triple, float]]]:
    """A LUNA16-style CSV: ``case`` (or ``seriesuid``), ``coordX, coordY, coordZ`` (LPS mm), ``diameter_mm``."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DatasetError(f"cannot read the reference CSV {path}: {exc.strerror or exc}") from exc
    columns = set(rows[0]) if rows else set()
    case_column = "case" if "case" in columns else "seriesuid"
    missing = {case_column, "coordX", "coordY", "coordZ", "diameter_mm"} - columns
    if rows and missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    spheres: dict[str, list[tuple[Triple, float]]] = {}
    problems = []
    for number, row in enumerate(rows, start=2):
        try:
            centre = (float(row["coordX"]), float(row["coordY"]), float(row["coordZ"]))
            diameter = float(row["diameter_mm"])
        except (TypeError, ValueError):
            problems.append(f"line {number}: coordinates and diameter must be numbers")
            continue
        if not (all(map(math.isfinite, centre)) and math.isfinite(diameter) and diameter >= 0):
            problems.append(f"line {number}: coordinates must be finite and the diameter >= 0")
            continue
        spheres.setdefault(row[case_column].strip(), []).append((centre, diameter))
    if problems:
        raise DatasetError(f"{path}: " + "; ".join(problems))
    return spheres


def _lesion_labels(binary: np.ndarray, spacing: Iterable[float], radius_mm: float) -> np.ndarray:
    """Lesion ids (1…N, largest first) on the mask voxels: components of the mask dilated by ``radius_mm``."""
    import SimpleITK as sitk

    labels = np.zeros(binary.shape, dtype=np.int32)
    if not binary.any():
        return labels
    spacing_kji = np.asarray(tuple(spacing), dtype=float)[::-1]
    margin = np.ceil(radius_mm / spacing_kji).astype(int) + 1
    nonzero = np.nonzero(binary)
    low = np.maximum(np.array([axis.min() for axis in nonzero]) - margin, 0)
    high = np.minimum(np.array([axis.max() for axis in nonzero]) + margin + 1, binary.shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
    crop = binary[box]
    grown = crop
    if radius_mm > 0 and not crop.all():
        image = sitk.GetImageFromArray(crop.astype(np.uint8))
        image.SetSpacing([float(s) for s in spacing_kji[::-1]])
        distance = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
            image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        ))
        grown = (distance <= radius_mm + 1e-6) | crop
    components = sitk.GetArrayFromImage(
        sitk.ConnectedComponent(sitk.GetImageFromArray(grown.astype(np.uint8)), True)
    )
    components = np.where(crop, components, 0)
    ids, counts = np.unique(components[crop], return_counts=True)
    order = np.lexsort((ids, -counts))
    lookup = np.zeros(int(ids.max()) + 1, dtype=np.int32)
    lookup[ids[order]] = np.arange(1, len(ids) + 1, dtype=np.int32)
    labels[box] = lookup[components]
    return labels


def _boundary(labels: np.ndarray) -> np.ndarray:
    """Lesion voxels whose id differs from one of their 6 face neighbours (outside the grid counts as 0)."""
    boundary = np.zeros(labels.shape, dtype=bool)
    nonzero = np.nonzero(labels)
    if not len(nonzero[0]):
        return boundary
    box = tuple(slice(axis.min(), axis.max() + 1) for axis in nonzero)
    crop = labels[box]
    padded = np.pad(crop, 1)
    edge = np.zeros(crop.shape, dtype=bool)
    for axis in range(3):
        for shift in (-1, 1):
            edge |= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1] != crop
    boundary[box] = edge & (crop > 0)
    return boundary
