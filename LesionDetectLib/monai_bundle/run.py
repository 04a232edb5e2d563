"""Run an imported MONAI bundle's pipeline: channels → model grid → intensity steps → sliding window →
lesion probability on the reference channel's grid (or detection boxes).

Geometry is LesionDetect's (SimpleITK through physical space, as in `preprocess`): ``Orientationd`` +
``Spacingd`` become the RAS-aligned grid at ``pixdim`` covering the input; ``Orientationd`` alone the RAS grid
at the input's own spacing; neither, the input's own voxel grid ``[i, j, k]`` (what MONAI's loader gives).
Intensities are MONAI's own array transforms, built from the allow-listed names with their literal settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import preprocess
from ..volume import LPS_TO_RAS, Volume


@dataclass(frozen=True)
class BundleInput:
    """The network's input ``[C, x, y, z]`` and the grid it lies on (None: the reference's own voxels)."""

    image: np.ndarray
    grid: preprocess.Grid | None
    crop: tuple[slice, slice, slice] | None = None
    full_shape: tuple[int, int, int] | None = None


def bundle_grid(reference: Volume, pipeline: dict[str, Any]) -> preprocess.Grid | None:
    grid = pipeline["grid"]
    if grid["spacing"]:
        return preprocess.model_grid(reference, tuple(grid["spacing"]))
    if grid["orientation"]:
        return preprocess.model_grid(reference, ras_spacing(reference))
    return None


def ras_spacing(volume: Volume) -> tuple[float, float, float]:
    """The input's spacing along the R, A, S axes (each from the voxel axis closest to it)."""
    axes = np.abs(LPS_TO_RAS @ np.asarray(volume.direction, float))  # rows: R, A, S; columns: i, j, k
    return tuple(float(volume.spacing[int(np.argmax(row))]) for row in axes)


def to_grid(volume: Volume, grid: preprocess.Grid | None) -> np.ndarray:
    """``volume`` as ``[x, y, z]`` float32 on ``grid`` (linear, border values beyond the input, as Spacingd)."""
    if grid is None:
        return np.ascontiguousarray(volume.array.transpose(2, 1, 0), dtype=np.float32)
    import SimpleITK as sitk

    resampled = sitk.Resample(volume.to_sitk(), grid.reference_image(), sitk.Transform(), sitk.sitkLinear, 0.0,
                              sitk.sitkFloat32, True)
    return sitk.GetArrayViewFromImage(resampled).transpose(2, 1, 0).copy()


def intensity_transform(step: dict[str, Any]):
    """MONAI's array transform for one allow-listed intensity step (literal settings only)."""
    from monai import transforms

    settings = {key: value for key, value in step.items() if key != "transform"}
    return {"ScaleIntensityRanged": transforms.ScaleIntensityRange, "NormalizeIntensityd": transforms.NormalizeIntensity,
            "ScaleIntensityd": transforms.ScaleIntensity}[step["transform"]](**settings)


def prepare(channels: list[Volume], pipeline: dict[str, Any]) -> BundleInput:
    """The channels (on one grid, network order) resampled, normalised and cropped as the bundle does."""
    import torch

    grid = bundle_grid(channels[0], pipeline)
    image = torch.from_numpy(np.stack([to_grid(channel, grid) for channel in channels]))
    for step in pipeline["intensity"]:
        image = torch.as_tensor(intensity_transform(step)(image), dtype=torch.float32)
    array = np.asarray(image.numpy() if hasattr(image, "numpy") else image, np.float32)
    if pipeline.get("crop_foreground") is None:
        return BundleInput(array, grid)
    crop = foreground_box(array, int(pipeline["crop_foreground"].get("margin", 0) or 0))
    return BundleInput(np.ascontiguousarray(array[(slice(None), *crop)]), grid, crop, array.shape[1:])


def foreground_box(image: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """The bounding box of voxels > 0 in any channel, grown by ``margin`` (``CropForegroundd``'s default)."""
    found = np.argwhere((image > 0).any(axis=0))
    if found.size == 0:
        return tuple(slice(0, n) for n in image.shape[1:])
    low, high = found.min(axis=0) - margin, found.max(axis=0) + 1 + margin
    return tuple(slice(max(0, int(lo)), min(n, int(hi))) for lo, hi, n in zip(low, high, image.shape[1:]))


def lesion_probability(network, bundle_input: BundleInput, pipeline: dict[str, Any], device: str,
                       overlap: float | None = None, batch_size: int | None = None) -> np.ndarray:
    """The lesion probability ``[x, y, z]`` on the bundle grid: softmax classes summed, or sigmoid channels'
    union (their maximum), over the lesion labels; outside a foreground crop 0."""
    import torch
    from monai.inferers import sliding_window_inference

    window = pipeline["inferer"]
    inputs = torch.from_numpy(bundle_input.image)[None]
    with torch.inference_mode():
        logits = sliding_window_inference(
            inputs, roi_size=window["roi_size"], sw_batch_size=batch_size or window["sw_batch_size"],
            predictor=network, overlap=window["overlap"] if overlap is None else overlap, mode=window["mode"],
            sigma_scale=window["sigma_scale"], padding_mode=window["padding_mode"], cval=window["cval"],
            sw_device=device, device="cpu")
        labels = list(pipeline["lesion_labels"])
        if pipeline["activation"] == "softmax":
            probability = torch.softmax(logits.float(), dim=1)[0, labels].sum(dim=0)
        else:
            probability = torch.sigmoid(logits.float()[0, labels]).amax(dim=0)
    probability = probability.clamp(0, 1).numpy().astype(np.float32)
    if bundle_input.crop is None:
        return probability
    full = np.zeros(bundle_input.full_shape, np.float32)
    full[bundle_input.crop] = probability
    return full


def keep_largest(probability: np.ndarray, threshold: float) -> np.ndarray:
    """``KeepLargestConnectedComponentd``: the probability outside the largest region above ``threshold`` is 0."""
    import SimpleITK as sitk

    mask = sitk.GetImageFromArray((probability >= threshold).astype(np.uint8))
    largest = sitk.GetArrayFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(mask, True))) == 1
    return np.where(largest, probability, 0.0).astype(np.float32)


def to_reference_grid(array_xyz: np.ndarray, grid: preprocess.Grid | None, reference: Volume,
                      interpolate: str = "linear") -> np.ndarray:
    """A bundle-grid array back on the reference channel's grid (``[k, j, i]`` float32)."""
    if grid is None:
        return np.ascontiguousarray(array_xyz.transpose(2, 1, 0), dtype=np.float32)
    return preprocess.to_input_grid(array_xyz, grid, reference, interpolate)


def segmentation_probability(network, channels: list[Volume], pipeline: dict[str, Any], threshold: float,
                             device: str, overlap: float | None = None, batch_size: int | None = None) -> np.ndarray:
    """The whole segmentation pipeline: lesion probability on the reference channel's grid."""
    bundle_input = prepare(channels, pipeline)
    probability = lesion_probability(network, bundle_input, pipeline, device, overlap, batch_size)
    if pipeline.get("keep_largest"):
        probability = keep_largest(probability, threshold)
    return to_reference_grid(probability, bundle_input.grid, channels[0])
