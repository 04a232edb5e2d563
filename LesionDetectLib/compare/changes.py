"""Matching lesions across two aligned scans by overlap, and classifying what became of each.

Lesions overlap when they share a voxel once the prior's label map is carried onto the current grid (and
the current's onto the prior grid, so that no small lesion is lost between coarse voxels). Overlapping
lesions form groups: a lesion that split or merged is compared as a whole with what it overlaps. Each group is

- **new**: current lesions only (no prior lesion overlaps them);
- **resolved**: prior lesions only;
- **enlarging**: the current volume is at least ``1 + enlarge_fraction`` times the prior volume and grew by at
  least ``min_change_mm3``;
- **shrinking**: the mirror image (at most ``1 / (1 + enlarge_fraction)`` times, by at least ``min_change_mm3``);
- **stable**: otherwise;
- **outside**: less than half of it lies inside the other scan's field of view (nothing can be said).

Each group's ``certainty`` is ``low`` when one of its ``notes`` says why the class may be wrong: moving either
outline by half a voxel (half the volume of its outer voxel layer) would change the class, the other scan's
probability came close to its threshold there, a lesion of the other scan lies close by, a new lesion is
smaller than 3 mm, the lesion lies partly outside the other scan, or overlapping lesions barely touch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..preprocess import foreground_mask
from ..volume import Volume, apply_affine
from .registration import Registration
from .timepoints import Timepoint

CLASSES = ("new", "enlarging", "stable", "shrinking", "resolved", "outside")
SMALLEST_LESION_MM = 3.0  # McDonald 2017 (Thompson et al., Lancet Neurol 2018): a lesion is at least 3 mm long


@dataclass(frozen=True)
class ChangeRules:
    """The thresholds of the classification (see the module docstring and the README's follow-up section)."""

    enlarge_fraction: float = 0.5
    min_change_mm3: float = math.pi / 6.0 * SMALLEST_LESION_MM**3  # the volume of a 3 mm lesion, 14.1 mm³
    near_mm: float = 3.0
    probability_margin: float = 0.2
    min_touch_fraction: float = 0.1

    def classify(self, prior_mm3: float, current_mm3: float) -> str:
        """The class of a matched group from its two volumes."""
        growth = 1.0 + self.enlarge_fraction
        if current_mm3 >= growth * prior_mm3 and current_mm3 - prior_mm3 >= self.min_change_mm3:
            return "enlarging"
        if current_mm3 * growth <= prior_mm3 and prior_mm3 - current_mm3 >= self.min_change_mm3:
            return "shrinking"
        return "stable"

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class LesionChange:
    """One group of overlapping lesions: their ids in each scan, volumes, diameters and class."""

    change_id: int
    change: str
    certainty: str
    prior_ids: tuple[int, ...]
    current_ids: tuple[int, ...]
    prior_volume_mm3: float  # in the current scan's millimetres (equal to the prior's for a rigid alignment)
    current_volume_mm3: float
    prior_diameter_mm: float | None  # the longest axial diameter of the group's largest lesion
    current_diameter_mm: float | None
    centroid_lps: tuple[float, float, float]  # in the current scan's space (a resolved lesion: where it was)
    overlap_dice: float | None
    notes: tuple[str, ...] = field(default=())

    @property
    def volume_change_mm3(self) -> float:
        return self.current_volume_mm3 - self.prior_volume_mm3

    @property
    def volume_change_percent(self) -> float | None:
        return None if self.prior_volume_mm3 <= 0 else 100.0 * (self.volume_change_mm3 / self.prior_volume_mm3)

    def as_row(self) -> dict[str, object]:
        """A flat row of the change table."""
        left, posterior, superior = self.centroid_lps

        def rounded(value, digits=4):
            return None if value is None else round(float(value), digits)

        diameter_change = (None if self.prior_diameter_mm is None or self.current_diameter_mm is None
                           else self.current_diameter_mm - self.prior_diameter_mm)
        return {
            "change_id": self.change_id,
            "change": self.change,
            "certainty": self.certainty,
            "prior_lesions": ";".join(f"L{i}" for i in self.prior_ids),
            "current_lesions": ";".join(f"L{i}" for i in self.current_ids),
            "prior_volume_mm3": rounded(self.prior_volume_mm3),
            "current_volume_mm3": rounded(self.current_volume_mm3),
            "volume_change_mm3": rounded(self.volume_change_mm3),
            "volume_change_percent": rounded(self.volume_change_percent, 2),
            "prior_diameter_mm": rounded(self.prior_diameter_mm),
            "current_diameter_mm": rounded(self.current_diameter_mm),
            "diameter_change_mm": rounded(diameter_change),
            "overlap_dice": rounded(self.overlap_dice),
            "centroid_r": rounded(-left), "centroid_a": rounded(-posterior), "centroid_s": rounded(superior),
            "centroid_l": rounded(left), "centroid_p": rounded(posterior), "centroid_s_lps": rounded(superior),
            "notes": "; ".join(self.notes),
        }


CHANGE_COLUMNS: tuple[str, ...] = tuple(
    LesionChange(0, "", "", (), (), 0.0, 0.0, None, None, (0.0, 0.0, 0.0), None).as_row()
)


def find_changes(prior: Timepoint, current: Timepoint, registration: Registration,
                 rules: ChangeRules = ChangeRules()) -> list[LesionChange]:
    """Group overlapping lesions of the aligned scans and classify each group (current lesions first)."""
    transform = registration.to_sitk()
    on_current = _Grid(current, prior, transform)
    on_prior = _Grid(prior, current, transform.GetInverse())
    links = on_prior.links() | {(p, c) for c, p in on_current.links()}
    groups = _groups(links, set(on_prior.lesions), set(on_current.lesions))
    return [_change(number, prior_ids, current_ids, on_prior, on_current, registration, rules)
            for number, (prior_ids, current_ids) in enumerate(groups, start=1)]


def lesion_changes(changes: list[LesionChange]) -> tuple[dict[int, LesionChange], dict[int, LesionChange]]:
    """The group of each prior lesion id and of each current lesion id."""
    prior = {lesion_id: change for change in changes for lesion_id in change.prior_ids}
    current = {lesion_id: change for change in changes for lesion_id in change.current_ids}
    return prior, current


class _Grid:
    """One scan's grid with its own lesions and the other scan's lesions, field of view and probability on it."""

    def __init__(self, own: Timepoint, other: Timepoint, transform):
        self.own, self.other, self.transform = own, other, transform  # transform: this grid → the other scan
        self.labels = np.asarray(own.result.label_map)
        self.other_labels = resample_onto(np.asarray(other.result.label_map), other.volume, own.volume, transform)
        view = foreground_mask(other.volume.array).view(np.uint8)
        self.other_view = resample_onto(view, other.volume, own.volume, transform) > 0
        self.lesions = {lesion.id: lesion for lesion in own.result.lesions}
        self.boxes = _boxes(self.labels)
        self.other_boxes = _boxes(self.other_labels)
        self._distance: np.ndarray | None = None
        self._probability: np.ndarray | None = None

    def links(self) -> set[tuple[int, int]]:
        """(own id, other id) pairs of lesions sharing a voxel of this grid."""
        both = (self.labels > 0) & (self.other_labels > 0)
        return {(int(a), int(b)) for a, b in zip(self.labels[both], self.other_labels[both])}

    def box(self, own_ids, other_ids) -> tuple[slice, ...]:
        """The bounding box (one voxel wider) of these own lesions and aligned other lesions."""
        boxes = [self.boxes[i] for i in own_ids] + [self.other_boxes[i] for i in other_ids if i in self.other_boxes]
        low = np.min([[s.start for s in box] for box in boxes], axis=0)
        high = np.max([[s.stop for s in box] for box in boxes], axis=0)
        return tuple(slice(max(int(a) - 1, 0), min(int(b) + 1, n)) for a, b, n in zip(low, high, self.labels.shape))

    def distance_to_other(self) -> np.ndarray:
        """mm from each voxel to the nearest lesion of the other scan."""
        if self._distance is None:
            self._distance = _distance(self.other_labels > 0, self.own.volume)
        return self._distance

    def other_probability(self) -> np.ndarray | None:
        """The other scan's lesion probability on this grid (None when unknown)."""
        if self._probability is None and self.other.probability is not None:
            probability = self.other.probability.astype(np.float32, copy=False)
            self._probability = resample_onto(probability, self.other.volume, self.own.volume, self.transform, linear=True)
        return self._probability


def _groups(links, prior_ids, current_ids) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Connected groups of the overlap graph, ordered by their first current lesion, then prior-only by id."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def root(node):
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for p, c in links:
        parent[root(("p", p))] = root(("c", c))
    members: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for node in [("c", i) for i in sorted(current_ids)] + [("p", i) for i in sorted(prior_ids)]:
        members.setdefault(root(node), []).append(node)
    groups = [
        (tuple(sorted(i for kind, i in nodes if kind == "p")), tuple(sorted(i for kind, i in nodes if kind == "c")))
        for nodes in members.values()
    ]
    return sorted(groups, key=lambda group: (not group[1], group[1][:1] or group[0][:1]))


def _change(number, prior_ids, current_ids, on_prior: _Grid, on_current: _Grid, registration: Registration,
            rules: ChangeRules) -> LesionChange:
    """One group's change; ``doubts`` make its certainty low, ``remarks`` (merges, splits) only inform."""
    prior_lesions = [on_prior.lesions[i] for i in prior_ids]
    current_lesions = [on_current.lesions[i] for i in current_ids]
    prior_mm3 = sum(lesion.volume_mm3 for lesion in prior_lesions) / registration.volume_scale
    current_mm3 = sum(lesion.volume_mm3 for lesion in current_lesions)
    dice, remarks = None, []
    if current_ids and prior_ids:
        change = rules.classify(prior_mm3, current_mm3)
        dice, doubts = _matched(prior_ids, current_ids, on_prior, on_current, prior_mm3, current_mm3, change,
                                registration, rules)
        remarks = [f"{len(prior_ids)} prior lesions merged"] * (len(prior_ids) > 1)
        remarks += [f"split into {len(current_ids)} lesions"] * (len(current_ids) > 1)
    elif current_ids:
        change, doubts = _unmatched(on_current, current_ids, "new", "prior", rules)
        if change == "new" and max(lesion.equivalent_diameter_mm for lesion in current_lesions) < SMALLEST_LESION_MM:
            doubts.append(f"smaller than {SMALLEST_LESION_MM:g} mm")
    else:
        change, doubts = _unmatched(on_prior, prior_ids, "resolved", "current", rules)
    return LesionChange(
        change_id=number, change=change, certainty="low" if doubts else "high",
        prior_ids=tuple(prior_ids), current_ids=tuple(current_ids),
        prior_volume_mm3=prior_mm3, current_volume_mm3=current_mm3,
        prior_diameter_mm=_diameter(prior_lesions), current_diameter_mm=_diameter(current_lesions),
        centroid_lps=_centroid(current_lesions, prior_lesions, registration),
        overlap_dice=dice, notes=tuple(doubts + remarks),
    )


def _matched(prior_ids, current_ids, on_prior: _Grid, on_current: _Grid, prior_mm3: float, current_mm3: float,
             change: str, registration: Registration, rules: ChangeRules) -> tuple[float, list[str]]:
    """The overlap Dice of matched lesions and the doubts about their class."""
    box = on_current.box(current_ids, prior_ids)
    current_mask = np.isin(on_current.labels[box], current_ids)
    aligned_prior = np.isin(on_current.other_labels[box], prior_ids)
    prior_mask = np.isin(on_prior.labels[on_prior.box(prior_ids, ())], prior_ids)
    shared = np.count_nonzero(current_mask & aligned_prior)
    sizes = (np.count_nonzero(current_mask), np.count_nonzero(aligned_prior))
    doubts = []
    current_doubt = _outline_mm3(current_mask, on_current.own.volume) / 2.0
    prior_doubt = _outline_mm3(prior_mask, on_prior.own.volume) / registration.volume_scale / 2.0
    shifted = [(prior_mm3, current_mm3 + sign * current_doubt) for sign in (-1, 1)]
    shifted += [(prior_mm3 + sign * prior_doubt, current_mm3) for sign in (-1, 1)]
    if any(rules.classify(*volumes) != change for volumes in shifted):
        doubts.append(f"half a voxel of outline from another class: ±{current_doubt:.0f} mm3 now, "
                      f"±{prior_doubt:.0f} mm3 before")
    touching = shared / (min(sizes) or 1)
    if touching < rules.min_touch_fraction:
        doubts.append(f"the lesions barely touch ({touching:.0%} overlap)")
    return float(2.0 * shared / (sum(sizes) or 1)), doubts


def _unmatched(grid: _Grid, ids, found: str, other_side: str, rules: ChangeRules) -> tuple[str, list[str]]:
    """The class (``found``, or ``outside``) of lesions with no counterpart in the other scan, and the doubts."""
    box = grid.box(ids, ())
    mask = np.isin(grid.labels[box], ids)
    inside = float(np.mean(grid.other_view[box][mask]))
    if inside < 0.5:
        return "outside", [f"{1.0 - inside:.0%} outside the {other_side} scan's field of view"]
    doubts = []
    if inside < 1.0:
        doubts.append(f"partly outside the {other_side} scan ({1.0 - inside:.0%})")
    nearest = float(grid.distance_to_other()[box][mask].min())
    if nearest <= rules.near_mm + max(grid.own.volume.spacing):  # distances between voxel centres: one voxel more
        doubts.append(f"a {other_side} lesion lies {nearest:.1f} mm away")
    probability = grid.other_probability()
    if probability is not None:
        highest, threshold = float(probability[box][mask].max()), float(grid.other.result.threshold)
        if highest >= threshold - rules.probability_margin:
            doubts.append(f"the {other_side} scan's probability reaches {highest:.2f} here (threshold {threshold:.2f})")
    return found, doubts


def _outline_mm3(mask: np.ndarray, volume: Volume) -> float:
    """The volume of a mask's outer voxel layer (voxels with a 6-neighbour outside it)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for step in (1, -1):
            inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return float(np.count_nonzero(mask & ~inner) * volume.voxel_volume_mm3)


def _diameter(lesions) -> float | None:
    return max(lesions, key=lambda lesion: lesion.volume_mm3).longest_axial_diameter_mm if lesions else None


def _centroid(current_lesions, prior_lesions, registration: Registration) -> tuple[float, float, float]:
    """Volume-weighted centroid of the current lesions, else of the prior lesions carried into the current scan."""
    lesions = current_lesions or prior_lesions
    weights = np.array([lesion.volume_mm3 for lesion in lesions])
    centre = (np.array([lesion.centroid_lps for lesion in lesions]) * weights[:, None]).sum(0) / weights.sum()
    if not current_lesions:
        centre = apply_affine(np.linalg.inv(registration.matrix_lps), centre)
    return tuple(float(v) for v in centre)


def resample_onto(array: np.ndarray, source: Volume, target: Volume, transform, linear: bool = False) -> np.ndarray:
    """``array`` (on ``source``'s grid) sampled at ``target``'s voxels through ``transform`` (target → source)."""
    import SimpleITK as sitk

    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    image = source.with_array(np.ascontiguousarray(array)).to_sitk()
    resampled = sitk.Resample(image, [int(n) for n in target.shape_ijk], transform, interpolator,
                              [float(o) for o in target.origin], [float(s) for s in target.spacing],
                              [float(d) for d in np.asarray(target.direction).ravel()], 0.0, image.GetPixelID())
    return sitk.GetArrayFromImage(resampled)


def _boxes(labels: np.ndarray) -> dict[int, tuple[slice, slice, slice]]:
    """The ``[k, j, i]`` bounding box of every label."""
    import SimpleITK as sitk

    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(sitk.GetImageFromArray(np.ascontiguousarray(labels.astype(np.uint32, copy=False))))
    boxes = {}
    for label in shapes.GetLabels():
        i, j, k, size_i, size_j, size_k = shapes.GetBoundingBox(label)
        boxes[int(label)] = (slice(k, k + size_k), slice(j, j + size_j), slice(i, i + size_i))
    return boxes


def _distance(mask: np.ndarray, volume: Volume) -> np.ndarray:
    """mm from every voxel to the nearest voxel of ``mask`` (0 inside; infinite when the mask is empty)."""
    import SimpleITK as sitk

    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    image = volume.with_array(mask.astype(np.uint8)).to_sitk()
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return np.maximum(sitk.GetArrayFromImage(distance), 0.0)
