"""Masks, predictions and matched cases for the evaluation tests: a hand-computed example, random cases on
oblique anisotropic grids, and brute-force (scipy) lesions and hits to check against."""

from __future__ import annotations

import math

import numpy as np
import pytest

from LesionDetectLib.evaluation import Prediction, match_case, reference_lesions, resolve_rule
from LesionDetectLib.volume import Volume, apply_affine

GLIOMA = resolve_rule("glioma")
MS = resolve_rule("ms")


def rotation(degrees: float) -> np.ndarray:
    """A rotation about the S axis composed with a flip of L: a non-trivial direction matrix."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([-1.0, 1.0, 1.0])


def volume(shape_kji, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None) -> Volume:
    return Volume(np.zeros(shape_kji, np.uint8), spacing, origin, np.eye(3) if direction is None else direction)


def cube(mask: Volume, centre_ijk, half=1, value=1) -> None:
    i, j, k = centre_ijk
    mask.array[k - half:k + half + 1, j - half:j + half + 1, i - half:i + half + 1] = value


def lps(mask: Volume, ijk) -> tuple[float, float, float]:
    return tuple(float(v) for v in apply_affine(mask.ijk_to_lps(), np.asarray(ijk, dtype=float)))


def hand_cases():
    """Three cases on a 1 mm grid, ms rule (3×3×3 cubes = 27 mm³ count; 2 voxels = 2 mm³ are ignored).

    A: lesions L1 (at 5,5,5) and L2 (at 20,20,20); predictions 0.9 on L1, 0.6 on L1 (duplicate),
       0.8 far away (FP), 0.3 on L2.
    B: lesion L3 (at 5,5,5) and a 2-voxel lesion (ignored) at (20,5,20); predictions 0.95 on the ignored
       lesion (neither way), 0.7 FP, 0.5 on L3, 0.2 FP.
    C: no lesion (empty mask); prediction 0.4 (FP).
    """
    a, b, c = volume((30, 30, 30)), volume((30, 30, 30)), volume((30, 30, 30))
    cube(a, (5, 5, 5))
    cube(a, (20, 20, 20))
    cube(b, (5, 5, 5))
    b.array[20, 5, 20:22] = 1
    far = (25.0, 5.0, 25.0)
    cases = [
        match_case("A", [Prediction((5, 5, 5), 0.9, 1), Prediction((5.5, 5, 5), 0.6, 2),
                         Prediction(far, 0.8, 3), Prediction((20, 20, 21), 0.3, 4)], reference_lesions(a, MS)),
        match_case("B", [Prediction((20.5, 5, 20), 0.95, 1), Prediction(far, 0.7, 2),
                         Prediction((5, 6, 5), 0.5, 3), Prediction((12, 25, 3), 0.2, 4)], reference_lesions(b, MS)),
        match_case("C", [Prediction(far, 0.4, 1)], reference_lesions(c, MS)),
    ]
    return cases


def random_case(rng: np.random.Generator, spacing, direction, shape=(10, 14, 16), density=0.02):
    """A random mask (blobs of random voxels) and predictions near lesions and anywhere, with tied confidences."""
    mask = volume(shape, spacing=spacing, origin=tuple(rng.uniform(-50, 50, 3)), direction=direction)
    seeds = rng.random(mask.array.shape) < density
    grown = seeds.copy()
    grown[:, :, 1:] |= seeds[:, :, :-1]
    grown[:, 1:, :] |= seeds[:, :-1, :]
    grown &= rng.random(mask.array.shape) < 0.8
    mask.array[grown] = 1
    points = []
    kji = np.argwhere(mask.array > 0)
    for index in rng.choice(len(kji), size=min(len(kji), 8), replace=False) if len(kji) else []:
        k, j, i = kji[index]
        jitter = rng.normal(0, 1.5, 3) / np.asarray(spacing)  # ~1.5 mm, some beyond 3 mm
        points.append(lps(mask, (i, j, k) + jitter))
    for _ in range(rng.integers(0, 6)):
        points.append(lps(mask, rng.uniform(0, 1, 3) * np.array(mask.shape_ijk)))
    predictions = [Prediction(p, float(np.round(rng.uniform(0.05, 1.0), 1))) for p in points]
    return mask, predictions


def brute_force_lesions(mask: Volume, rule):
    """Lesion voxel sets with scipy (independent of SimpleITK): 26-components of the mm-dilated mask."""
    ndimage = pytest.importorskip("scipy.ndimage")
    binary = mask.array > 0
    radius = rule.merge_distance_mm / 2
    grown = binary
    if radius > 0:
        grown = ndimage.distance_transform_edt(~binary, sampling=mask.spacing[::-1]) <= radius + 1e-6
    labels, count = ndimage.label(grown, structure=np.ones((3, 3, 3)))
    lesions = []
    for value in range(1, count + 1):
        kji = np.argwhere((labels == value) & binary)
        if len(kji):
            lesions.append(kji)
    return lesions


def brute_force_hits(mask: Volume, lesions, rule, point) -> list[bool]:
    """For each lesion: is the point inside one of its voxels, or within the hit distance of a voxel centre?"""
    matrix = mask.ijk_to_lps()
    index = np.rint(np.linalg.solve(matrix[:3, :3], np.asarray(point) - matrix[:3, 3])).astype(int)[::-1]
    hits = []
    for kji in lesions:
        centres = apply_affine(matrix, kji[:, ::-1].astype(float))
        inside = bool(np.any(np.all(kji == index, axis=1)))
        hits.append(inside or np.min(np.linalg.norm(centres - point, axis=1)) <= rule.hit_distance_mm)
    return hits


def bootstrap_cases():
    rng = np.random.default_rng(11)
    cases = []
    for number in range(15):
        mask, predictions = random_case(rng, (1.0, 1.0, 1.5), np.eye(3))
        cases.append(match_case(str(number), predictions, reference_lesions(mask, MS), dice=float(rng.uniform())))
    return cases
