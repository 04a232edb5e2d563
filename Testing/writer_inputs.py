"""The detection result the writer tests write: two lesions (a ball and a box) on an oblique, mirrored (det −1),
anisotropic, off-origin grid; and what a folder of outputs holds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from conftest import oblique_direction

from LesionDetectLib.lesions import Lesion
from LesionDetectLib.result import DetectionResult
from LesionDetectLib.volume import Volume, apply_affine

SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "schemas"
MARKUPS_SCHEMA = SCHEMAS / "markups-schema-v1.0.3.json"
SPACING = (0.7, 0.9, 2.5)
ORIGIN = (-31.25, 17.5, -102.0)
SHAPE_KJI = (16, 30, 34)


def make_volume() -> Volume:
    """Oblique and mirrored (det −1), anisotropic, off-origin grid."""
    direction = oblique_direction() @ np.diag([1.0, 1.0, -1.0])
    return Volume(np.zeros(SHAPE_KJI, np.float32), SPACING, ORIGIN, direction, name="case")


def make_lesion(lesion_id: int, mask: np.ndarray, volume: Volume, confidence: float, area=None) -> Lesion:
    """A lesion record computed from its voxels (centroid through ``volume.ijk_to_lps()``)."""
    k, j, i = np.nonzero(mask)
    ijk = np.stack([i, j, k], axis=1).astype(float)
    centroid_ijk = ijk.mean(axis=0)
    count = int(mask.sum())
    volume_mm3 = count * volume.voxel_volume_mm3
    return Lesion(
        id=lesion_id, confidence_max=confidence, confidence_mean=confidence - 0.05, voxel_count=count,
        volume_mm3=volume_mm3, centroid_ijk=tuple(float(v) for v in centroid_ijk),
        centroid_lps=tuple(float(v) for v in apply_affine(volume.ijk_to_lps(), centroid_ijk)),
        bbox_ijk_min=(int(i.min()), int(j.min()), int(k.min())), bbox_ijk_max=(int(i.max()), int(j.max()), int(k.max())),
        equivalent_diameter_mm=(6 * volume_mm3 / math.pi) ** (1 / 3), longest_axial_diameter_mm=7.25,
        surface_area_mm2=area, sphericity=None if area is None else 0.8123456789,
    )


def make_result(volume: Volume | None = None) -> DetectionResult:
    """Two lesions at known voxels: a ball (lesion 1) and a box (lesion 2)."""
    volume = volume or make_volume()
    kk, jj, ii = np.indices(SHAPE_KJI)
    ball = ((ii - 9) * SPACING[0]) ** 2 + ((jj - 11) * SPACING[1]) ** 2 + ((kk - 5) * SPACING[2]) ** 2 <= 4.5**2
    box = np.zeros(SHAPE_KJI, bool)
    box[9:12, 18:24, 22:28] = True
    label_map = np.zeros(SHAPE_KJI, np.uint16)
    label_map[ball], label_map[box] = 1, 2
    probability = np.random.default_rng(1).uniform(0, 0.3, SHAPE_KJI).astype(np.float32)
    probability[ball], probability[box] = 0.9, 0.7
    lesions = [make_lesion(1, ball, volume, 0.9, area=123.456789), make_lesion(2, box, volume, 0.7)]
    return DetectionResult(
        volume, lesions, label_map, probability, threshold=0.5, model_name="test-model",
        settings={"device": "cpu", "bundle": Path("/models/test"), "patch": (32, 32, 32)}, warnings=["a warning"],
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".")]
