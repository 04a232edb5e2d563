"""From an input volume to the network's grid and intensities, and from the network's grid back.

Spatial work uses SimpleITK's multithreaded resampler through physical space, so a prediction maps back
onto the input grid exactly whatever the input's direction, spacing and origin. The model grid is
RAS-aligned (MONAI's ``Orientation("RAS")`` convention) at the model's spacing; arrays handed to the
network are channel-first ``[C, x, y, z]`` (R→L… i.e. MONAI's layout), as in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .volume import LPS_TO_RAS, Volume

RAS_DIRECTION_IN_LPS = LPS_TO_RAS  # unit R, A, S axes written in LPS coordinates
CT_AIR_HU = -500.0  # CT voxels at or below this are air (outside the body, or in the lungs and bowel)


@dataclass(frozen=True)
class Grid:
    """A RAS-aligned voxel grid in LPS physical space (size in x, y, z voxels)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def reference_image(self):
        import SimpleITK as sitk

        image = sitk.Image([int(s) for s in self.size], sitk.sitkUInt8)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(RAS_DIRECTION_IN_LPS.ravel().tolist())
        return image


def model_grid(volume: Volume, spacing: tuple[float, float, float]) -> Grid:
    """The RAS-aligned grid at ``spacing`` covering the input's voxel centres."""
    i, j, k = (n - 1 for n in volume.shape_ijk)
    corners_ijk = np.array([[a, b, c] for a in (0, i) for b in (0, j) for c in (0, k)], dtype=float)
    matrix = volume.ijk_to_lps()
    corners_ras = (corners_ijk @ matrix[:3, :3].T + matrix[:3, 3]) @ LPS_TO_RAS.T
    low, high = corners_ras.min(axis=0), corners_ras.max(axis=0)
    size = tuple(int(np.floor((h - lo) / s + 1e-6)) + 1 for lo, h, s in zip(low, high, spacing))
    origin_lps = tuple(float(v) for v in LPS_TO_RAS @ low)
    return Grid(size=size, spacing=tuple(float(s) for s in spacing), origin=origin_lps)


def _resample(image, reference, interpolator, default_value: float):
    import SimpleITK as sitk

    return sitk.Resample(image, reference, sitk.Transform(), interpolator, default_value, sitk.sitkFloat32)


def to_model_grid(volume: Volume, spacing, interpolate: str = "linear") -> tuple[np.ndarray, Grid]:
    """Resample ``volume`` onto its model grid; returns a float32 array ``[x, y, z]`` and the grid."""
    import SimpleITK as sitk

    grid = model_grid(volume, tuple(spacing))
    image = volume.to_sitk()
    interpolator = sitk.sitkLinear if interpolate == "linear" else sitk.sitkNearestNeighbor
    background = background_value(volume.array)
    background = float(volume.array.min()) if background is None else background
    resampled = _resample(image, grid.reference_image(), interpolator, background)
    return sitk.GetArrayViewFromImage(resampled).transpose(2, 1, 0).copy(), grid


def to_input_grid(array_xyz: np.ndarray, grid: Grid, volume: Volume, interpolate: str = "linear") -> np.ndarray:
    """Resample a model-grid array ``[x, y, z]`` back onto the input's exact grid (``[k, j, i]`` float32)."""
    return resample_onto(grid_image(array_xyz, grid), volume.shape_ijk, volume.origin, volume.spacing,
                         volume.direction, interpolate)


def grid_image(array_xyz: np.ndarray, grid: Grid):
    """A model-grid array ``[x, y, z]`` as a float32 SimpleITK image on ``grid``."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz.transpose(2, 1, 0), dtype=np.float32))
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(RAS_DIRECTION_IN_LPS.ravel().tolist())
    return image


def resample_onto(image, size_ijk, origin, spacing, direction, interpolate: str = "linear") -> np.ndarray:
    """``image`` resampled onto the grid of ``size_ijk`` voxels with that geometry (LPS), as ``[k, j, i]`` float32
    (0 outside ``image``), without building a reference image."""
    import SimpleITK as sitk

    interpolator = sitk.sitkLinear if interpolate == "linear" else sitk.sitkNearestNeighbor
    resampled = sitk.Resample(
        image, [int(n) for n in size_ijk], sitk.Transform(), interpolator, [float(o) for o in origin],
        [float(s) for s in spacing], [float(d) for d in np.asarray(direction).ravel()], 0.0, sitk.sitkFloat32,
    )
    return sitk.GetArrayFromImage(resampled)


def background_value(array: np.ndarray, min_fraction: float = 0.1) -> float | None:
    """The constant filling a skull-stripped scan's background (0, or another value after rescaling), if any.

    It is the value shared by all eight corner voxels when at least ``min_fraction`` of the volume holds it;
    invariant to ``a·x + b`` rescaling, unlike "zero" or "the minimum".
    """
    corners = array[np.ix_(*[[0, n - 1] for n in array.shape])].ravel()
    if not np.all(corners == corners[0]):
        return None
    return float(corners[0]) if np.count_nonzero(array == corners[0]) >= min_fraction * array.size else None


def foreground_mask(array: np.ndarray) -> np.ndarray:
    """Voxels that are not the constant background (all voxels when there is none).

    After linear resampling a background of ``c`` ≠ 0 comes back as ``c`` ± float rounding, so "not the
    background" means further from it than 1e-5 of the intensity range (the same voxels whatever the scale).
    """
    background = background_value(array)
    if background is None:
        return np.ones(array.shape, bool)
    return np.abs(array - background) > 1e-5 * float(np.ptp(array))


def body_mask(resampled: np.ndarray, kind: str, scanned: np.ndarray | None = None) -> np.ndarray:
    """Body (CT: above ``CT_AIR_HU``) or brain (MR: not the constant background) voxels of a model-grid image.

    ``kind`` is the bundle's intensity kind (``"ct"`` or ``"mr"``); ``resampled`` holds the raw intensities
    (Hounsfield units for CT) before normalisation. A scan without a constant background is all foreground.
    ``scanned`` is ``foreground_mask(resampled)`` when already computed.
    """
    mask = foreground_mask(resampled) if scanned is None else scanned
    return mask & (resampled > CT_AIR_HU) if kind == "ct" else mask


def normalise_intensity(array: np.ndarray, intensity: dict[str, Any]) -> np.ndarray:
    """Intensity normalisation from the bundle: CT window → [0, 1]; MR foreground percentile clip + z-score.

    Both are invariant to how the scanner scaled the values where they must be: the MR transform gives the same
    output for ``a·x + b`` (a > 0), so raw, rescaled and z-scored scans are treated alike. The arithmetic is
    MONAI's ``ScaleIntensityRange`` and ``NormalizeIntensity`` done in place on one float32 copy (no torch
    threads, no float64 temporaries); ``array`` itself is left unchanged.
    """
    if intensity["kind"] == "ct":
        low, high = (float(v) for v in intensity["window"])
        out = np.subtract(array, np.float32(low), dtype=np.float32)
        out /= np.float32(high - low)
        return np.clip(out, 0.0, 1.0, out=out)
    mask = foreground_mask(array)
    if not mask.any():
        return np.zeros_like(array, dtype=np.float32)
    low, high = np.percentile(array[mask], intensity.get("percentiles", [0.5, 99.5]))
    out = np.clip(array, np.float32(low), np.float32(high), dtype=np.float32)
    mean, std = _mean_and_std(out[mask])
    out -= np.float32(mean)
    out /= np.float32(std if std > 0 else 1.0)
    out[~mask] = 0.0
    return out


def _mean_and_std(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std())


@dataclass(frozen=True)
class ModelInput:
    """What the network runs on: the normalised image ``[C, x, y, z]`` and its grid; ``foreground``, the
    body/brain whose windows are run; ``scanned``, the voxels that are not constant padding (a skull-stripped
    scan's background), where no lesion can be."""

    image: np.ndarray
    grid: Grid
    foreground: np.ndarray
    scanned: np.ndarray


def prepare_input(volume: Volume, spec) -> ModelInput:
    """Resample ``volume`` onto the model grid of a `model_spec.ModelSpec`, normalise it and find its foreground."""
    resampled, grid = to_model_grid(volume, spec.spacing)
    scanned = foreground_mask(resampled)
    foreground = body_mask(resampled, spec.intensity["kind"], scanned)
    return ModelInput(normalise_intensity(resampled, spec.intensity)[None], grid, foreground, scanned)

