"""Scans of one sphere of lesion on grids of any spacing and direction, for multi-channel tests."""

from __future__ import annotations

import numpy as np

from LesionDetectLib.volume import Volume

CENTRE_LPS = np.array([12.0, -30.0, 48.0])
RADIUS_MM = 6.0


def rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    a, b = [i for i in range(3) if i != axis]
    matrix = np.eye(3)
    matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = c, -s, s, c
    return matrix


def sphere(shape_ijk, spacing, direction, centre=CENTRE_LPS, name="scan") -> Volume:
    """A volume centred on ``centre`` (LPS) holding 100 inside a sphere there, 0 elsewhere."""
    spacing, direction = np.asarray(spacing, float), np.asarray(direction, float)
    half = (np.asarray(shape_ijk) - 1) / 2
    origin = centre - direction @ (spacing * half) + np.array([1.3, -0.7, 0.9])  # not centred on a voxel
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape_ijk[::-1]], indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).astype(float)
    lps = ijk @ (direction @ np.diag(spacing)).T + origin
    inside = np.linalg.norm(lps - centre, axis=-1) <= RADIUS_MM
    array = np.where(inside, 100.0, 0.0).astype(np.float32)
    array[0, 0, 0] = 1.0  # not a constant-background skull-stripped scan
    return Volume(array, tuple(spacing), tuple(origin), direction, name=name, modality="CT")


FLAIR_DIRECTION = rotation(2, 90) @ np.diag([1.0, -1.0, 1.0])  # not identity, not RAS
