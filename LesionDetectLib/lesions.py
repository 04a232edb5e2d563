"""Post-processing: probability map → thresholded 26-connected lesions with measurements."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from .detected_box import DetectedBox, Triple
from .volume import Volume, apply_affine, lps_to_ras


@dataclass(frozen=True)
class Lesion:
    """One detected lesion; ``id`` is its value in the label map (1 = most confident)."""

    id: int
    confidence_max: float
    confidence_mean: float
    voxel_count: int
    volume_mm3: float
    centroid_ijk: Triple
    centroid_lps: Triple
    bbox_ijk_min: tuple[int, int, int]
    bbox_ijk_max: tuple[int, int, int]
    equivalent_diameter_mm: float
    longest_axial_diameter_mm: float
    surface_area_mm2: float | None = None
    sphericity: float | None = None
    detector_box: DetectedBox | None = None  # a box detector's lesion: its box (`detector_boxes`)

    @property
    def name(self) -> str:
        """Segment name, e.g. ``Lesion 1``."""
        return f"Lesion {self.id}"

    @property
    def label(self) -> str:
        """Control point label, e.g. ``L1``."""
        return f"L{self.id}"

    @property
    def centroid_ras(self) -> Triple:
        return tuple(float(v) for v in lps_to_ras(self.centroid_lps))

    @property
    def marker_lps(self) -> Triple:
        """Where its control point goes: the detector box's centre, else the centroid."""
        return self.centroid_lps if self.detector_box is None else self.detector_box.centre_lps

    def with_detector_box(self, box: DetectedBox) -> Lesion:
        return replace(self, detector_box=box)

    def description(self) -> str:
        """One line for a control point: confidence, volume and diameter."""
        return (
            f"confidence {self.confidence_max:.2f}, volume {self.volume_mm3:.0f} mm3, "
            f"diameter {self.longest_axial_diameter_mm:.1f} mm"
        )

    def as_row(self) -> dict[str, object]:
        """Flat table row (the `.lesions.csv` columns, in order)."""
        (i, j, k), (r, a, s), (left, posterior, s_lps) = self.centroid_ijk, self.centroid_ras, self.centroid_lps
        return {
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "confidence_max": round(self.confidence_max, 6),
            "confidence_mean": round(self.confidence_mean, 6),
            "voxel_count": self.voxel_count,
            "volume_mm3": round(self.volume_mm3, 4),
            "centroid_i": round(i, 4), "centroid_j": round(j, 4), "centroid_k": round(k, 4),
            "centroid_r": round(r, 4), "centroid_a": round(a, 4), "centroid_s": round(s, 4),
            "centroid_l": round(left, 4), "centroid_p": round(posterior, 4), "centroid_s_lps": round(s_lps, 4),
            "bbox_i_min": self.bbox_ijk_min[0], "bbox_j_min": self.bbox_ijk_min[1], "bbox_k_min": self.bbox_ijk_min[2],
            "bbox_i_max": self.bbox_ijk_max[0], "bbox_j_max": self.bbox_ijk_max[1], "bbox_k_max": self.bbox_ijk_max[2],
            "equivalent_diameter_mm": round(self.equivalent_diameter_mm, 4),
            "longest_axial_diameter_mm": round(self.longest_axial_diameter_mm, 4),
            "surface_area_mm2": None if self.surface_area_mm2 is None else round(self.surface_area_mm2, 4),
            "sphericity": None if self.sphericity is None else round(self.sphericity, 6),
        }

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


TABLE_COLUMNS: tuple[str, ...] = tuple(
    Lesion(0, 0, 0, 0, 0, (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), 0, 0).as_row()
)


Box = tuple[slice, slice, slice]  # ``[k, j, i]`` slices of the input grid


@dataclass(frozen=True)
class _Region:
    """One thresholded connected region: its tight box on the input grid and its voxels inside that box."""

    box: Box
    mask: np.ndarray
    count: int
    confidence: tuple[float, float]
    centroid_lps: Triple

    @property
    def order_key(self) -> tuple[float, int, tuple[int, ...]]:
        """Most confident first, then largest, then first in raster order (``[k, j, i]``)."""
        first = np.unravel_index(int(np.argmax(self.mask)), self.mask.shape)
        return (-self.confidence[0], -self.count, tuple(int(f) + b.start for f, b in zip(first, self.box)))


def from_probability(
    probability: np.ndarray | Iterable[tuple[Box, np.ndarray]],
    volume: Volume,
    threshold: float,
    min_volume_mm3: float = 0.0,
    max_lesions: int | None = None,
    measure_surfaces: bool = True,
    outline_threshold: float | None = None,
) -> tuple[list[Lesion], np.ndarray]:
    """Lesions (sorted by confidence) and their label map ``[k, j, i]`` (lesion n has value n).

    A lesion is a 26-connected region of probability ≥ ``outline_threshold`` (default: ``threshold``) whose
    highest probability reaches ``threshold`` and whose volume reaches ``min_volume_mm3``: the threshold decides
    which regions are lesions, the outline threshold how far each extends (hysteresis thresholding).

    ``probability`` is the map on the input grid, or ``(box, probability in box)`` pairs: then each box must hold
    every thresholded region that touches it whole, boxes must not overlap (what `lesion_boxes.candidate_boxes`
    gives), and outside them the probability is taken to be below the outline threshold.
    """
    if isinstance(probability, np.ndarray):
        probability = [(tuple(slice(0, n) for n in probability.shape), probability)]
    outline_threshold = effective_outline_threshold(threshold, outline_threshold)
    min_voxels = _min_voxels(volume, min_volume_mm3)
    found = [region for box, values in probability
             for region in _regions_in_box(values, volume, box, outline_threshold, min_voxels)]
    confident = [region for region in found if region.confidence[0] >= np.float32(threshold)]  # as the mask compares
    return _numbered(sorted(confident, key=lambda region: region.order_key)[:max_lesions], volume, measure_surfaces)


def from_labels(
    labels: np.ndarray,
    volume: Volume,
    confidences: Sequence[float],
    min_volume_mm3: float = 0.0,
    max_lesions: int | None = None,
    measure_surfaces: bool = True,
) -> tuple[list[tuple[Lesion, int]], np.ndarray]:
    """Lesions of a ``[k, j, i]`` label map whose label n (1, 2, … in order of rank) is one lesion of confidence
    ``confidences[n - 1]`` (connected or not), each with its label n, and their label map renumbered 1, 2, …
    (labels with no voxel or under ``min_volume_mm3`` are dropped, then all but the first ``max_lesions``)."""
    import SimpleITK as sitk

    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.ComputePerimeterOff()
    shapes.Execute(replace(volume, array=labels).to_sitk())
    min_voxels = _min_voxels(volume, min_volume_mm3)
    kept = [label for label in sorted(shapes.GetLabels()) if shapes.GetNumberOfPixels(label) >= min_voxels]
    kept = kept[:max_lesions]
    regions = []
    for label in kept:
        local = _bounding_box_kji(shapes, label)
        confidence = float(confidences[label - 1])
        regions.append(_Region(box=local, mask=labels[local] == label, count=int(shapes.GetNumberOfPixels(label)),
                               confidence=(confidence, confidence),
                               centroid_lps=tuple(float(v) for v in shapes.GetCentroid(label))))
    lesions, label_map = _numbered(regions, volume, measure_surfaces)
    return list(zip(lesions, kept)), label_map


def _numbered(order: Sequence[_Region], volume: Volume, measure_surfaces: bool) -> tuple[list[Lesion], np.ndarray]:
    """The regions as lesions 1, 2, … in the given order, and their label map."""
    label_map = np.zeros(volume.array.shape, dtype=np.uint16)
    for new_id, region in enumerate(order, start=1):
        label_map[region.box][region.mask] = new_id
    lesions = [_measure(new_id, region, label_map, volume, measure_surfaces) for new_id, region in enumerate(order, 1)]
    return lesions, label_map


def _min_voxels(volume: Volume, min_volume_mm3: float) -> int:
    return int(math.ceil(min_volume_mm3 / volume.voxel_volume_mm3 - 1e-9)) if min_volume_mm3 > 0 else 0


def box_volume(volume: Volume, box: Box, array: np.ndarray) -> Volume:
    """``array`` (the shape of ``box``) as a volume on the part of ``volume``'s grid that ``box`` covers."""
    start_ijk = [box[2].start, box[1].start, box[0].start]
    origin = tuple(float(v) for v in apply_affine(volume.ijk_to_lps(), start_ijk))
    return replace(volume, array=array, origin=origin)


def _regions_in_box(probability: np.ndarray, volume: Volume, box: Box, outline_threshold: float,
                    min_voxels: int) -> list[_Region]:
    """The 26-connected regions of ``probability ≥ outline_threshold`` in ``box`` with at least ``min_voxels``."""
    import SimpleITK as sitk

    probability = probability.astype(np.float32, copy=False)
    mask = (probability >= outline_threshold).view(np.uint8)
    if not mask.any():
        return []
    components = sitk.ConnectedComponent(box_volume(volume, box, mask).to_sitk(), True)
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.ComputePerimeterOff()  # (on by default; not used)
    shapes.Execute(components)
    labels = sitk.GetArrayViewFromImage(components)
    regions = []
    for label in shapes.GetLabels():
        if shapes.GetNumberOfPixels(label) < min_voxels:
            continue
        local = _bounding_box_kji(shapes, label)
        voxels = labels[local] == label
        regions.append(_Region(
            box=tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, local)),
            mask=voxels, count=int(shapes.GetNumberOfPixels(label)), confidence=_max_and_mean(probability[local][voxels]),
            centroid_lps=tuple(float(v) for v in shapes.GetCentroid(label)),
        ))
    return regions


def effective_outline_threshold(threshold: float, outline_threshold: float | None) -> float:
    """The outline threshold in force: never above the detection threshold (a lower threshold lowers both)."""
    return threshold if outline_threshold is None else min(outline_threshold, threshold)


def _bounding_box_kji(shapes, label: int) -> Box:
    """The ``[k, j, i]`` slices of a label's bounding box in a ``LabelShapeStatisticsImageFilter``."""
    i, j, k, size_i, size_j, size_k = shapes.GetBoundingBox(label)
    return slice(k, k + size_k), slice(j, j + size_j), slice(i, i + size_i)


def _max_and_mean(values: np.ndarray) -> tuple[float, float]:
    return float(values.max()), float(values.mean(dtype=np.float64))


def _measure(new_id: int, region: _Region, label_map: np.ndarray, volume: Volume, measure_surfaces: bool) -> Lesion:
    bbox_min = tuple(int(region.box[axis].start) for axis in (2, 1, 0))
    bbox_max = tuple(int(region.box[axis].stop) - 1 for axis in (2, 1, 0))
    volume_mm3 = region.count * volume.voxel_volume_mm3
    centroid_ijk = tuple(float(v) for v in apply_affine(np.linalg.inv(volume.ijk_to_lps()), region.centroid_lps))
    area, sphericity = (None, None)
    if measure_surfaces:
        from .surface import lesion_surface_measures

        area, sphericity = lesion_surface_measures(label_map, volume, new_id, bbox_min, bbox_max, volume_mm3)
    return Lesion(
        id=new_id,
        confidence_max=region.confidence[0],
        confidence_mean=region.confidence[1],
        voxel_count=region.count,
        volume_mm3=float(volume_mm3),
        centroid_ijk=centroid_ijk,
        centroid_lps=region.centroid_lps,
        bbox_ijk_min=bbox_min,
        bbox_ijk_max=bbox_max,
        equivalent_diameter_mm=float((6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0)),
        longest_axial_diameter_mm=longest_axial_diameter(region.mask, bbox_min, volume),
        surface_area_mm2=area,
        sphericity=sphericity,
    )


def axial_axis(volume: Volume) -> int:
    """The voxel axis (0=i, 1=j, 2=k) closest to the patient's superior direction."""
    return int(np.argmax(np.abs(np.asarray(volume.direction)[2, :])))


def longest_axial_diameter(crop_kji: np.ndarray, bbox_min: tuple[int, int, int], volume: Volume) -> float:
    """Longest in-plane distance (mm, between voxel centres) within any axial slice of a lesion.

    'Axial' is the voxel plane most perpendicular to superior; distances are measured in that plane's
    physical coordinates (the superior component is dropped), as a radiologist measures on axial slices.
    """
    axis_kji = 2 - axial_axis(volume)
    stack = np.moveaxis(crop_kji, axis_kji, 0)  # (axial slices, rows, columns): the other two axes in order
    filled = stack.any(axis=2)
    first = stack.argmax(axis=2)
    last = stack.shape[2] - 1 - stack[:, :, ::-1].argmax(axis=2)
    matrix = volume.ijk_to_lps()
    longest = 0.0
    for index in np.flatnonzero(filled.any(axis=1)):
        rows = np.flatnonzero(filled[index])
        edge_2d = np.concatenate([np.stack([rows, first[index, rows]], 1), np.stack([rows, last[index, rows]], 1)])
        kji = np.insert(edge_2d, axis_kji, index, axis=1) + np.array(bbox_min[::-1])
        longest = max(longest, _farthest_pair_distance(apply_affine(matrix, kji[:, ::-1].astype(float))[:, :2]))
    return longest


def _farthest_pair_distance(points: np.ndarray) -> float:
    """The largest distance between two of ``points`` (N, 2): found from a Gram matrix of the centred points,
    then measured exactly between that pair."""
    centred = points - points.mean(axis=0)
    squares = (centred**2).sum(axis=1)
    first, second = np.unravel_index(int(np.argmax(squares[:, None] + squares[None, :] - 2 * centred @ centred.T)),
                                     (len(points), len(points)))
    return float(np.hypot(*(points[first] - points[second])))
