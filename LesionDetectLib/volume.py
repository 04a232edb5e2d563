"""The `Volume` type: voxels plus their exact physical geometry, and coordinate conversions.

Conventions (the same as SimpleITK and ITK files):
- ``array`` is indexed ``[k, j, i]`` (slice, row, column), as ``sitk.GetArrayFromImage`` and Slicer's
  ``arrayFromVolume`` return it;
- ``spacing`` is ``(i, j, k)`` in mm; ``origin`` is the centre of voxel (0, 0, 0) in **LPS** mm;
- ``direction`` is a 3×3 matrix whose columns are the i, j, k axis directions in LPS.
Slicer's world is RAS: RAS = diag(-1, -1, 1) · LPS.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D scalar image on a physical grid (see module docstring for the conventions)."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    name: str = "volume"
    modality: str | None = None

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        """Grid size as (i, j, k)."""
        k, j, i = self.array.shape
        return (i, j, k)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing) * abs(np.linalg.det(self.direction)))

    def ijk_to_lps(self) -> np.ndarray:
        """4×4 matrix mapping homogeneous (i, j, k, 1) voxel indices to LPS mm."""
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(self.direction, dtype=float) @ np.diag(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix

    def ijk_to_ras(self) -> np.ndarray:
        """4×4 matrix mapping voxel indices to RAS mm (Slicer's IJKToRAS)."""
        flip = np.eye(4)
        flip[:3, :3] = LPS_TO_RAS
        return flip @ self.ijk_to_lps()

    def with_array(self, array: np.ndarray, name: str | None = None) -> Volume:
        """The same geometry holding other voxels (must have the same shape)."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from the volume's {self.array.shape}")
        return replace(self, array=array, name=name or self.name)

    def same_geometry(self, other: Volume, tolerance: float = 1e-5) -> bool:
        """True when both volumes lie on the same voxel grid in physical space."""
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.spacing, other.spacing, atol=tolerance)
            and np.allclose(self.origin, other.origin, atol=tolerance)
            and np.allclose(self.direction, other.direction, atol=tolerance)
        )

    def to_sitk(self):
        """A SimpleITK image with this volume's voxels and geometry."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        image.SetSpacing([float(s) for s in self.spacing])
        image.SetOrigin([float(o) for o in self.origin])
        image.SetDirection([float(d) for d in np.asarray(self.direction).ravel()])
        return image

    @classmethod
    def from_sitk(cls, image, name: str = "volume", modality: str | None = None) -> Volume:
        """Wrap a 3-D scalar SimpleITK image, keeping its geometry exactly."""
        import SimpleITK as sitk

        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=tuple(float(s) for s in image.GetSpacing()),
            origin=tuple(float(o) for o in image.GetOrigin()),
            direction=np.asarray(image.GetDirection(), dtype=float).reshape(3, 3),
            name=name,
            modality=modality,
        )


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4×4 affine to an (N, 3) or (3,) array of points."""
    points = np.asarray(points, dtype=float)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """Flip LPS coordinates to RAS (and back: the map is its own inverse)."""
    return np.asarray(points, dtype=float) * np.array([-1.0, -1.0, 1.0])


ras_to_lps = lps_to_ras
