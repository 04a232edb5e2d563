"""MONAI dictionary transforms for training, and the cached datasets they run on.

Each case is prepared once, by exactly the code inference uses (`preprocess.to_model_grid` and
`preprocess.normalise_intensity`; the label with nearest-neighbour resampling), and cached in memory
(`monai.data.CacheDataset`) or on disk (`monai.data.PersistentDataset`). The random part then runs per
sample: optional lesion copy-paste, positive/negative patch sampling, flips, small rotations and scaling,
intensity augmentation. Imports torch and MONAI at module level: only training imports this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform

from .. import preprocess
from ..resources import available_memory_bytes
from .dataset import Case, read_image
from .recipe import Recipe

IMAGE, LABEL, BODY = "image", "label", "body"
BYTES_PER_CACHED_VOXEL = 4 + 1 + 1  # float32 image, uint8 label, uint8 body mask


def case_item(case: Case) -> dict[str, str]:
    """The datalist item MONAI datasets see for a case (plain strings, so it hashes for the disk cache)."""
    return {"case": case.id, IMAGE: str(case.image), LABEL: str(case.label)}


def prepare_case(image_path: str | Path, label_path: str | Path, spacing, intensity: dict):
    """(image ``[1,x,y,z]`` float32, label ``[1,x,y,z]`` uint8 0/1, body ``[1,x,y,z]`` uint8) on the model grid.

    The image goes through `preprocess.to_model_grid` + `preprocess.normalise_intensity`, i.e. what
    `preprocess.prepare` does at inference; the label through `to_model_grid(..., interpolate="nearest")`.
    """
    from ..evaluation.run import read_mask

    volume = read_image(image_path)
    resampled, grid = preprocess.to_model_grid(volume, spacing)
    image = preprocess.normalise_intensity(resampled, intensity)
    mask = volume.with_array(read_mask(label_path).array)  # same grid as the image (checked by the dataset)
    label, _ = preprocess.to_model_grid(mask, spacing, interpolate="nearest")
    body = preprocess.body_mask(resampled, intensity["kind"])
    return image[None], (label > 0.5).astype(np.uint8)[None], body.astype(np.uint8)[None]


class LoadPreprocessd(MapTransform):
    """Read a case's image and label and put them on the model grid (deterministic, so MONAI caches it)."""

    def __init__(self, spacing, intensity: dict):
        super().__init__(keys=[IMAGE, LABEL])
        self.spacing, self.intensity = tuple(spacing), dict(intensity)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        image, label, body = prepare_case(data[IMAGE], data[LABEL], self.spacing, self.intensity)
        return {"case": data["case"], IMAGE: torch.from_numpy(image), LABEL: torch.from_numpy(label),
                BODY: torch.from_numpy(body)}


def crop_size(recipe: Recipe) -> tuple[int, int, int]:
    """Patch side before the random affine: larger, so rotated/scaled patches need little padding."""
    if not recipe.affine:
        return tuple(recipe.patch_size)
    return tuple(int(math.ceil(p * 1.25 / 8) * 8) for p in recipe.patch_size)


def random_transforms(recipe: Recipe, bank: Sequence | None = None):
    """The per-sample random MONAI chain: copy-paste, pos/neg patches, flips, affine, intensity."""
    from monai.transforms import (
        Compose,
        EnsureTyped,
        RandAffined,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandGaussianNoised,
        RandScaleIntensityd,
        RandShiftIntensityd,
        SelectItemsd,
        SpatialPadd,
    )

    from .copy_paste import CopyPasted

    # a lesion-free case (--allow-empty-labels) has no foreground to centre on: MONAI then takes background
    # patches, as intended, and warns once per sample
    warnings.filterwarnings("ignore", message="Num foregrounds 0", category=UserWarning)
    keys = [IMAGE, LABEL]
    size = crop_size(recipe)
    steps: list = []
    if recipe.copy_paste > 0 and bank:
        steps.append(CopyPasted(bank, prob=recipe.copy_paste))
    steps += [
        SpatialPadd(keys=[IMAGE, LABEL, BODY], spatial_size=size),
        RandCropByPosNegLabeld(
            keys=[IMAGE, LABEL, BODY], label_key=LABEL, spatial_size=size, pos=recipe.positive_fraction,
            neg=1.0 - recipe.positive_fraction, num_samples=recipe.samples_per_case, image_key=BODY,
            image_threshold=0,
        ),
    ]
    if recipe.affine:
        angle = math.radians(recipe.rotate_degrees)
        steps.append(RandAffined(
            keys=keys, spatial_size=tuple(recipe.patch_size), prob=0.5, rotate_range=(angle,) * 3,
            scale_range=(recipe.scale_range,) * 3, mode=("bilinear", "nearest"), padding_mode="zeros",
        ))
    if recipe.flip:
        steps += [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(3)]
    if recipe.intensity_augment:
        steps += [
            RandScaleIntensityd(keys=IMAGE, factors=0.1, prob=0.3),
            RandShiftIntensityd(keys=IMAGE, offsets=0.1, prob=0.3),
            RandGaussianNoised(keys=IMAGE, prob=0.15, std=0.05),
        ]
    steps += [EnsureTyped(keys=keys, dtype=np.float32, data_type="tensor", track_meta=False),
              SelectItemsd(keys=keys)]
    return Compose(steps)


def preprocessing_key(recipe: Recipe, intensity: dict, modality: str) -> str:
    """A short hash of what the cached arrays depend on (a changed setting never reuses a stale cache)."""
    from .. import __version__

    settings = {"spacing": list(recipe.spacing), "intensity": intensity, "modality": modality, "version": __version__}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def cached_cases(
    cases: Sequence[Case],
    recipe: Recipe,
    intensity: dict,
    modality: str,
    cache_dir: Path,
    estimated_bytes: int,
    threads: int = 1,
):
    """The prepared cases as a MONAI dataset: in memory when they fit (half the free RAM), else on disk."""
    from monai.data import CacheDataset, Dataset, PersistentDataset
    from monai.transforms import Compose

    mode = recipe.cache
    if mode == "auto":
        available = available_memory_bytes()
        mode = "memory" if available is None or estimated_bytes < available // 2 else "disk"
    items = [case_item(case) for case in cases]
    transform = Compose([LoadPreprocessd(recipe.spacing, intensity)])
    if mode == "memory":
        return CacheDataset(items, transform, cache_rate=1.0, num_workers=threads, progress=False, copy_cache=False)
    if mode == "disk":
        folder = cache_dir / preprocessing_key(recipe, intensity, modality)
        folder.mkdir(parents=True, exist_ok=True)
        return PersistentDataset(items, transform, cache_dir=folder)
    return Dataset(items, transform)


class RepeatedCases(Sequence):
    """``length`` items cycling over ``cases`` (an epoch is a fixed number of iterations, not one pass)."""

    def __init__(self, cases: Sequence, length: int):
        self.cases, self.length = cases, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.cases[index % len(self.cases)]


def training_dataset(cases: Sequence, recipe: Recipe, length: int, bank: Sequence | None = None):
    """A MONAI dataset of ``length`` items: prepared cases (cycled) through the random transform chain."""
    from monai.data import Dataset

    return Dataset(RepeatedCases(cases, length), random_transforms(recipe, bank))
