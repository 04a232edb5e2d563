"""Boxes a box detector could give, on an oblique, mirrored, anisotropic grid with a non-zero origin."""

from __future__ import annotations

import numpy as np
from conftest import oblique_direction

from LesionDetectLib.detected_box import DetectedBox
from LesionDetectLib.volume import Volume

RAS_AXES_LPS = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))


def make_volume() -> Volume:
    direction = oblique_direction() @ np.diag([1.0, 1.0, -1.0])
    return Volume(np.zeros((18, 40, 36), np.float32), (0.8, 0.7, 2.5), (-40.0, 12.5, -90.0), direction, name="chest")


def voxel_centres_lps(volume: Volume) -> np.ndarray:
    """``[k, j, i, 3]`` LPS centres of every voxel."""
    k, j, i = np.indices(volume.array.shape)
    ijk = np.stack([i, j, k], axis=-1).astype(float)
    return ijk @ volume.ijk_to_lps()[:3, :3].T + volume.ijk_to_lps()[:3, 3]


def centre_of(volume: Volume, ijk) -> tuple[float, float, float]:
    return tuple(float(v) for v in volume.ijk_to_lps()[:3, :3] @ np.asarray(ijk, float) + volume.ijk_to_lps()[:3, 3])


def boxes_on(volume: Volume) -> list[DetectedBox]:
    """A RAS-aligned box, a box along the volume's own (oblique) axes overlapping it, one below threshold."""
    own_axes = tuple(tuple(float(v) for v in np.asarray(volume.direction)[:, axis]) for axis in range(3))
    return [
        DetectedBox(0.6, centre_of(volume, (14, 18, 8)), (9.0, 7.5, 10.0), own_axes),
        DetectedBox(0.9, centre_of(volume, (10, 16, 7)), (8.0, 6.0, 12.0), RAS_AXES_LPS),
        DetectedBox(0.2, centre_of(volume, (28, 30, 12)), (6.0, 6.0, 6.0), RAS_AXES_LPS),
    ]
