"""Object-level copy-paste of annotated lesions (the TumorCP idea: Yang et al., MICCAI 2021).

A bank holds every training lesion (up to a few per case) as a crop of the prepared image (all its channels)
with its mask.
With probability p a training sample receives 1–2 lesions from the bank, each randomly flipped and
scaled (0.8–1.25×), pasted at a random place inside the target case's body/brain mask that overlaps no
existing lesion and keeps ≥ 90 % of the lesion inside the body; the image is blended with a Gaussian-
smoothed mask (soft boundary), the label takes the hard mask. Works on the model grid, after intensity
normalisation, so the pasted intensities are on the same scale as the target's. Imports MONAI at module
level: only training imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from monai.transforms import MapTransform, RandomizableTransform

from .keys import BODY, IMAGE, LABEL

MAX_LESIONS_PER_CASE = 8
MIN_LESION_VOXELS = 4
BODY_FRACTION = 0.9


@dataclass(frozen=True, eq=False)
class LesionCrop:
    """One annotated lesion on the model grid: image crop ``[C,x,y,z]`` and its mask ``[x,y,z]``."""

    image: np.ndarray
    mask: np.ndarray
    case: str


def lesion_bank(items: Iterable[dict[str, Any]], max_size: Sequence[int], margin: int = 2) -> list[LesionCrop]:
    """Lesions of prepared cases (dicts with ``image``/``label`` ``[1,x,y,z]``) that fit in ``max_size``."""
    import SimpleITK as sitk

    bank = []
    for item in items:
        label = _numpy(item[LABEL][0]) > 0
        if not label.any():
            continue
        image = _numpy(item[IMAGE]).astype(np.float32, copy=False)
        components = sitk.RelabelComponent(
            sitk.ConnectedComponent(sitk.GetImageFromArray(label.astype(np.uint8)), True),
            minimumObjectSize=MIN_LESION_VOXELS, sortByObjectSize=True,
        )
        labels = sitk.GetArrayFromImage(components)
        for value in range(1, min(int(labels.max()), MAX_LESIONS_PER_CASE) + 1):
            where = np.nonzero(labels == value)
            low = [max(0, int(axis.min()) - margin) for axis in where]
            high = [min(n, int(axis.max()) + 1 + margin) for axis, n in zip(where, labels.shape)]
            if any(h - lo > m for lo, h, m in zip(low, high, max_size)):
                continue
            box = tuple(slice(lo, h) for lo, h in zip(low, high))
            bank.append(LesionCrop(image[(slice(None), *box)].copy(), labels[box] == value, str(item.get("case", ""))))
    return bank


def _numpy(array) -> np.ndarray:
    return array.detach().cpu().numpy() if torch.is_tensor(array) else np.asarray(array)


def _smooth(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian smoothing of a 0/1 mask (the blending weight)."""
    radius = max(1, int(np.ceil(2 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    out = torch.from_numpy(mask.astype(np.float32))[None, None]
    for axis in range(3):
        shape, padding = [1, 1, 1], [0, 0, 0]
        shape[axis], padding[axis] = len(kernel), radius
        out = functional.conv3d(out, kernel.reshape(1, 1, *shape), padding=tuple(padding))
    return out[0, 0].numpy()


def _resize(array: np.ndarray, size: tuple[int, ...], mode: str) -> np.ndarray:
    """``[C,x,y,z]`` resized to ``size`` (x, y, z)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    return functional.interpolate(tensor, size=size, mode=mode, align_corners=False)[0].numpy()


class CopyPasted(RandomizableTransform, MapTransform):
    """Paste 1…``max_objects`` lesions from ``bank`` into a prepared case with probability ``prob``."""

    def __init__(self, bank: Sequence[LesionCrop], prob: float, max_objects: int = 2,
                 scale: tuple[float, float] = (0.8, 1.25), sigma: float = 1.0, tries: int = 10):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys=[IMAGE, LABEL])
        self.bank, self.max_objects, self.scale, self.sigma, self.tries = list(bank), max_objects, scale, sigma, tries

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        self.randomize(None)
        if not self._do_transform or not self.bank:
            return data
        image = _numpy(data[IMAGE]).astype(np.float32)
        label = _numpy(data[LABEL][0]).astype(np.uint8)
        body = _numpy(data[BODY][0]) > 0
        candidates = np.flatnonzero(body & (label == 0))  # on the [x,y,z] grid
        if candidates.size == 0:
            return data
        for _ in range(self.R.randint(1, self.max_objects + 1)):
            lesion, mask = self._augment(self.bank[self.R.randint(len(self.bank))])
            self._paste(image, label, body, candidates, lesion, mask)
        return {**data, IMAGE: torch.from_numpy(image), LABEL: torch.from_numpy(label[None])}

    def _augment(self, crop: LesionCrop) -> tuple[np.ndarray, np.ndarray]:
        image, mask = crop.image, crop.mask.astype(np.float32)
        for axis in range(3):
            if self.R.rand() < 0.5:
                image, mask = np.flip(image, axis + 1), np.flip(mask, axis)
        factor = self.R.uniform(*self.scale)
        size = tuple(max(1, int(round(n * factor))) for n in mask.shape)
        return _resize(image, size, "trilinear"), _resize(mask[None], size, "trilinear")[0] > 0.5

    def _paste(self, image, label, body, candidates, lesion, mask) -> bool:
        size = np.array(mask.shape)
        if not mask.any():
            return False
        for _ in range(self.tries):
            centre = np.array(np.unravel_index(candidates[self.R.randint(candidates.size)], label.shape))
            start = centre - size // 2
            if np.any(start < 0) or np.any(start + size > label.shape):
                continue
            box = tuple(slice(s, s + n) for s, n in zip(start, size))
            if label[box][mask].any() or body[box][mask].mean() < BODY_FRACTION:
                continue
            alpha = np.clip(_smooth(mask, self.sigma), 0.0, 1.0)
            channels = (slice(None), *box)
            image[channels] = alpha * lesion + (1.0 - alpha) * image[channels]
            label[box] |= mask.astype(np.uint8)
            return True
        return False
