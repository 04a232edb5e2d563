"""A synthetic head followed up over time: known lesions that stay, grow, shrink, appear and go, on oblique grids.

The head is an analytic function of the patient's position (mm), sampled at each grid's voxel centres, so a
prior and a current scan on different grids, with the patient moved by a known rigid motion between them, show
exactly the same anatomy: the registration's answer and every lesion's change are known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from LesionDetectLib.volume import Volume

CENTRE = np.array([5.0, -10.0, 20.0])  # the head's centre, patient LPS mm
AXES = np.array([32.0, 40.0, 28.0])
VENTRICLES = (((-6.0, 0.0, 0.0), (4.0, 9.0, 5.0)), ((7.0, 1.0, 1.0), (3.0, 8.0, 5.0)))  # (offset, semi-axes)
PATIENTS = (  # per patient: texture frequencies (x, y, z), the ventricles' shift (mm) and the head's scale
    ((0.21, 0.17, 0.19), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    ((0.31, 0.11, 0.27), (3.0, -8.0, 4.0), (1.2, 0.8, 1.1)),
)


@dataclass(frozen=True)
class Sphere:
    """A lesion: centre (offset from the head's centre, mm) and radius (mm)."""

    offset: tuple[float, float, float]
    radius: float

    @property
    def centre(self) -> np.ndarray:
        return CENTRE + np.asarray(self.offset)


STABLE_A = Sphere((-12.0, 10.0, 5.0), 4.0)
STABLE_B = Sphere((14.0, -12.0, -4.0), 3.5)
GROWING = (Sphere((-15.0, -15.0, 8.0), 4.0), Sphere((-15.0, -15.0, 8.0), 5.5))  # (prior, current): ×2.6 in volume
SHRINKING = (Sphere((0.0, -22.0, -8.0), 5.0), Sphere((0.0, -22.0, -8.0), 3.5))  # ×0.34
RESOLVED = Sphere((10.0, 15.0, 10.0), 4.5)
NEW = Sphere((12.0, 2.0, -12.0), 4.0)
PRIOR_LESIONS = (STABLE_A, STABLE_B, GROWING[0], SHRINKING[0], RESOLVED)
CURRENT_LESIONS = (STABLE_A, STABLE_B, GROWING[1], SHRINKING[1], NEW)


def rotation(axis, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.deg2rad(degrees)
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def rigid(axis=(1.0, 1.0, 2.0), degrees: float = 0.0, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A 4×4 rigid motion about the head's centre: patient position → scanner position (LPS mm)."""
    motion = np.eye(4)
    motion[:3, :3] = rotation(axis, degrees)
    motion[:3, 3] = CENTRE - motion[:3, :3] @ CENTRE + np.asarray(shift, dtype=float)
    return motion


def _smooth_inside(distance_outside: np.ndarray, width_mm: float = 0.7) -> np.ndarray:
    """≈1 inside, ≈0 outside, a smooth edge of about ``width_mm`` (so every grid samples the same image)."""
    return 1.0 / (1.0 + np.exp(np.clip(distance_outside / width_mm, -50, 50)))


def intensity(points: np.ndarray, lesions, modality: str = "MR", patient: int = 0) -> np.ndarray:
    """The head's intensity at patient positions (N, 3): MR (background 0) or CT (air −1000 HU, lesions 100 HU)."""
    (fx, fy, fz), shift, scale = PATIENTS[patient]
    offset = points - CENTRE
    radius = np.sqrt(((offset / (AXES * scale)) ** 2).sum(1))
    head = _smooth_inside((radius - 1.0) * AXES.min())
    x, y, z = offset.T
    tissue = 50.0 + 18.0 * np.sin(fx * x + 0.4) * np.cos(fy * y) + 12.0 * np.sin(fz * z + 0.13 * x)
    for centre, axes in VENTRICLES:
        inside = np.sqrt((((offset - np.asarray(centre) - shift) / axes) ** 2).sum(1))
        tissue *= 1.0 - 0.7 * _smooth_inside((inside - 1.0) * min(axes))
    lesion = np.zeros(len(points))
    for sphere in lesions:
        lesion = np.maximum(lesion, _smooth_inside(np.linalg.norm(points - sphere.centre, axis=1) - sphere.radius))
    if modality == "CT":  # body 10–45 HU (below the threshold model's 50), lesions 100 HU, air outside
        body = 27.0 + 0.25 * (tissue - 50.0) + (100.0 - 27.0) * lesion
        return -1000.0 + head * (body + 1000.0)
    return head * (tissue * (1.0 - lesion) + 150.0 * lesion)


def grid_points(shape_kji, spacing, origin, direction) -> np.ndarray:
    """Physical (LPS) centres of a grid's voxels, in ``[k, j, i]`` C order, as (N, 3)."""
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape_kji], indexing="ij")
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel()], 1).astype(float)
    return ijk @ (np.asarray(direction) @ np.diag(spacing)).T + np.asarray(origin)


def scan(lesions, motion: np.ndarray, spacing, direction, modality: str = "MR", patient: int = 0,
         field_of_view: float = 1.0, name: str = "scan") -> tuple[Volume, Volume]:
    """The head (moved by ``motion``) on a grid with ``spacing`` and ``direction`` around it, and its lesion mask.

    ``field_of_view`` < 1 keeps only that fraction of the grid's k axis (its upper part): a scan of another region.
    """
    spacing, direction = np.asarray(spacing, dtype=float), np.asarray(direction, dtype=float)
    extent = 2.0 * AXES.max() + 14.0
    shape_ijk = np.ceil(extent / spacing).astype(int)
    start = motion[:3, :3] @ CENTRE + motion[:3, 3] - direction @ (spacing * (shape_ijk - 1) / 2.0)
    if field_of_view < 1.0:
        skipped = int(shape_ijk[2] * (1.0 - field_of_view))
        start, shape_ijk[2] = start + direction[:, 2] * spacing[2] * skipped, shape_ijk[2] - skipped
    shape_kji = tuple(int(n) for n in shape_ijk[::-1])
    points = grid_points(shape_kji, spacing, start, direction)
    position = (points - motion[:3, 3]) @ np.linalg.inv(motion[:3, :3]).T  # in the patient
    values = intensity(position, lesions, modality, patient).reshape(shape_kji).astype(np.float32)
    inside = np.zeros(len(position), bool)
    for sphere in lesions:
        inside |= np.linalg.norm(position - sphere.centre, axis=1) <= sphere.radius
    geometry = dict(spacing=tuple(float(s) for s in spacing), origin=tuple(float(o) for o in start), direction=direction)
    if modality == "MR":
        values[values < 0.5] = 0.0  # a skull-stripped scan's constant background
    image = Volume(values, name=name, modality=modality, **geometry)
    mask = Volume(inside.reshape(shape_kji).astype(np.uint8), name=f"{name} lesions", **geometry)
    return image, mask


def scanner_point(motion: np.ndarray, patient_point) -> np.ndarray:
    return motion[:3, :3] @ np.asarray(patient_point, dtype=float) + motion[:3, 3]
