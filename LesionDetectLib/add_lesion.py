"""A lesion the reader points at ("add a missed lesion"): the model's probability on a local window around the
point, outlined at a threshold adapted to that lesion.

The model runs on a cube around the point only: one patch of the model (its field of view, ``patch_size`` ×
``spacing``; at least `WINDOW_MM`), so that it sees the lesion with the context it was trained with, its intensities normalised with the statistics of
the whole scan (`window_probability`): MR normalisation (foreground percentiles and z-score) computed on the
window alone would make normal tissue look like lesion. The lesion's peak is the highest probability within
`SEARCH_RADIUS_MM` of the point (a click is rarely on the centre). It is lesion-like when that peak reaches
``min_peak`` (by default half the model's detection threshold: the reader says a lesion is there, so a less
confident one than detection would report is accepted, but not the background). The lesion is then the
26-connected region around the peak where the probability is at least ``relative_level`` × the peak: the model's
own outline-to-detection threshold ratio applied to this lesion's peak (`RELATIVE_LEVEL` for a model without an
outline threshold), an outline adapted to that lesion's contrast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .lesions import from_probability
from .progress import ProgressCallback, silent
from .result import DetectionResult
from .volume import Volume

WINDOW_MM = 64.0
SEARCH_RADIUS_MM = 5.0
RELATIVE_LEVEL = 0.5


def window_around(volume: Volume, point_lps: Sequence[float], window_mm: float = WINDOW_MM
                  ) -> tuple[Volume, tuple[slice, slice, slice]]:
    """The sub-volume (same spacing and direction) of about ``window_mm`` around ``point_lps``, and its
    ``[k, j, i]`` slices in ``volume``; ValueError if the point is outside the volume."""
    ijk = np.linalg.solve(volume.ijk_to_lps()[:3, :3], np.asarray(point_lps, float) - np.asarray(volume.origin))
    centre = np.round(ijk).astype(int)
    size = np.array(volume.shape_ijk)
    if np.any(centre < 0) or np.any(centre >= size):
        raise ValueError(f"the point {tuple(round(float(v), 2) for v in point_lps)} (LPS mm) is outside the volume")
    half = np.ceil(window_mm / 2.0 / np.asarray(volume.spacing, float)).astype(int)
    start, stop = np.maximum(centre - half, 0), np.minimum(centre + half + 1, size)
    box = tuple(slice(int(start[axis]), int(stop[axis])) for axis in (2, 1, 0))
    origin = volume.ijk_to_lps() @ np.array([*start, 1.0])
    window = Volume(np.ascontiguousarray(volume.array[box]), volume.spacing, tuple(float(v) for v in origin[:3]),
                    volume.direction, volume.name, volume.modality)
    return window, box


def model_window_mm(model) -> float:
    """The edge of the window for ``model``: one patch of its grid, at least `WINDOW_MM`."""
    spec = model.spec
    return max(WINDOW_MM, *(float(size) * float(step) for size, step in zip(spec.patch_size, spec.spacing)))


def _normalised_like(array: np.ndarray, mask: np.ndarray, reference: np.ndarray, reference_mask: np.ndarray,
                     intensity: dict) -> np.ndarray:
    """`preprocess.normalise_intensity` of ``array`` with the statistics of ``reference`` (the whole scan)."""
    from .preprocess import normalise_intensity

    if intensity["kind"] == "ct" or not reference_mask.any():
        return normalise_intensity(array, intensity)
    low, high = np.percentile(reference[reference_mask], intensity.get("percentiles", [0.5, 99.5]))
    clipped = np.clip(reference[reference_mask], low, high)
    mean, std = float(clipped.mean()), float(clipped.std())
    out = (np.clip(array, low, high).astype(np.float32) - np.float32(mean)) / np.float32(std if std > 0 else 1.0)
    out[~mask] = 0.0
    return out


def window_probability(volume: Volume, window: Volume, model, device: str = "auto",
                       progress: ProgressCallback = silent) -> np.ndarray:
    """The model's lesion probability on ``window`` (a sub-volume of ``volume``), ``[k, j, i]`` on its grid, as
    `detect` computes it but normalised with the whole scan's statistics."""
    from . import infer, preprocess

    spec = model.spec
    progress("preprocess", 0.1, "intensity statistics of the whole scan")
    whole, _ = preprocess.to_model_grid(volume, spec.spacing)
    whole_scanned = preprocess.foreground_mask(whole)
    resampled, grid = preprocess.to_model_grid(window, spec.spacing)
    background = preprocess.background_value(whole)
    scanned = np.ones(resampled.shape, bool) if background is None else resampled != np.float32(background)
    model_input = preprocess.ModelInput(
        _normalised_like(resampled, scanned, whole, whole_scanned, spec.intensity)[None], grid,
        preprocess.body_mask(resampled, spec.intensity["kind"], scanned), scanned)
    device = infer.resolve_device(device)
    progress("inference", 0.3, f"{spec.network['name']} on {device}, a local window")
    probability, _ = infer.model_grid_probability(
        model.network, model_input, tuple(spec.patch_size), spec.overlap,
        infer.default_batch_size(spec.batch_size, device), device, warn=lambda message: progress("warning", 0.3, message),
        flip_axes=spec.flip_axes)
    return preprocess.to_input_grid(probability, grid, window)


def outline_at(probability: np.ndarray, window: Volume, point_lps: Sequence[float], min_peak: float,
               relative_level: float = RELATIVE_LEVEL, search_radius_mm: float = SEARCH_RADIUS_MM
               ) -> tuple[np.ndarray, float, float] | None:
    """``(mask, peak, level)`` of the lesion at ``point_lps`` on ``window``'s grid, or None when the peak near the
    point is below ``min_peak``."""
    import SimpleITK as sitk

    k, j, i = np.indices(probability.shape)
    lps = window.ijk_to_lps() @ np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    near = (np.linalg.norm(lps[:3].T - np.asarray(point_lps, float), axis=1) <= search_radius_mm).reshape(
        probability.shape)
    if not near.any():  # a window coarser than the search radius: the voxel of the point itself
        near[tuple(int(v) for v in np.unravel_index(np.argmin(np.linalg.norm(
            lps[:3].T - np.asarray(point_lps, float), axis=1)), probability.shape))] = True
    candidates = np.where(near, probability, -np.inf)
    peak_index = np.unravel_index(int(np.argmax(candidates)), probability.shape)
    peak = float(probability[peak_index])
    if not peak >= min_peak:
        return None
    level = relative_level * peak
    components = sitk.ConnectedComponent(sitk.GetImageFromArray((probability >= level).astype(np.uint8)), True)
    labels = sitk.GetArrayViewFromImage(components)
    return labels == labels[peak_index], peak, level


def lesion_at(volume: Volume, probability_of: Callable[[Volume], np.ndarray], point_lps: Sequence[float],
              min_peak: float, model_name: str, window_mm: float = WINDOW_MM,
              relative_level: float = RELATIVE_LEVEL) -> DetectionResult | None:
    """The lesion at ``point_lps`` as a one-lesion `DetectionResult` on ``volume``'s grid (None if nothing
    lesion-like is there); ``probability_of(window)`` is the model's probability on a sub-volume."""
    window, box = window_around(volume, point_lps, window_mm)
    probability = np.asarray(probability_of(window), np.float32)
    found = outline_at(probability, window, point_lps, min_peak, relative_level)
    if found is None:
        return None
    mask, peak, level = found
    full = np.zeros(volume.array.shape, np.float32)
    full[box] = np.where(mask, probability, 0.0)
    lesions, labels = from_probability(full, volume, level)
    if len(lesions) != 1:  # cannot happen: one connected region of probability ≥ level, peak included
        raise RuntimeError(f"outlining the lesion at the point gave {len(lesions)} regions")
    settings = {"added_at_lps": [float(v) for v in point_lps], "peak": peak, "local_threshold": level,
                "min_peak": min_peak, "window_mm": window_mm}
    return DetectionResult(volume, lesions, labels, full, level, model_name, settings=settings)

