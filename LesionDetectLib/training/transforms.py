"""MONAI dictionary transforms for training, and the cached datasets they run on.

Each case is prepared once, by exactly the code inference uses (`channels.model_input_of`: every channel
resampled onto the model grid and normalised, stacked in the network's order; the label with nearest-neighbour
resampling), and cached in memory
(`monai.data.CacheDataset`) or on disk (`monai.data.PersistentDataset`). The random part then runs per
sample: optional lesion copy-paste, positive/negative patch sampling, flips, small rotations and scaling,
intensity augmentation. Imports torch and MONAI at module level: only training imports this module.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform, RandomizableTransform

from .. import preprocess
from ..resources import available_memory_bytes
from .channel_layout import read_channels
from .dataset import Case
from .keys import BODY, CENTRES, CHANNELS, IMAGE, LABEL
from .recipe import Recipe

BYTES_PER_CACHED_VOXEL = 4 + 1 + 1  # float32 image (one channel), uint8 label, uint8 body mask
# the patch-centre classes: outside the body (never a centre), normal body, mined hard negative, lesion
OUTSIDE, NORMAL, HARD_NEGATIVE, LESION = range(4)


def case_item(case: Case) -> dict[str, Any]:
    """The datalist item MONAI datasets see for a case (plain strings, so it hashes for the disk cache)."""
    item: dict[str, Any] = {"case": case.id, IMAGE: str(case.image), LABEL: str(case.label)}
    if case.channels:
        item[CHANNELS] = [[name, str(path)] for name, path in case.channels]
    return item


@dataclass(frozen=True)
class Preprocessing:
    """What `preprocess.prepare_input` reads of a model spec: the model grid's spacing and the intensity settings."""

    spacing: tuple[float, float, float]
    intensity: dict


def prepare_case(image_path: str | Path, label_path: str | Path, spacing, intensity: dict,
                 channels: Sequence[tuple[str, str | Path]] = ()):
    """(image ``[C,x,y,z]`` float32, label ``[1,x,y,z]`` uint8 0/1, body ``[1,x,y,z]`` uint8) on the model grid.

    The image is what `detect` gives the network (`channels.model_input_of`): with ``channels`` ((name, path) of
    each, the first being ``image_path``), every channel aligned onto the first's grid and normalised; the body
    is the first channel's. The label goes through `to_model_grid(..., interpolate="nearest")`.
    """
    from ..channels import model_input_of
    from ..io import read_mask

    volumes, volume = read_channels([(name, Path(path)) for name, path in channels] or [("image", Path(image_path))])
    model_input = model_input_of(volumes, Preprocessing(tuple(spacing), intensity))
    mask = volume.with_array(read_mask(label_path).array)  # same grid as the image (checked by the dataset)
    label, _ = preprocess.to_model_grid(mask, spacing, interpolate="nearest")
    body = model_input.foreground.astype(np.uint8)[None]
    return model_input.image, (label > 0.5).astype(np.uint8)[None], body


def cached_bytes_per_voxel(channels: int) -> int:
    """Bytes a prepared case holds per model-grid voxel with ``channels`` input channels."""
    return BYTES_PER_CACHED_VOXEL + 4 * (max(1, channels) - 1)


class LoadPreprocessd(MapTransform):
    """Read a case's channels and label and put them on the model grid (deterministic, so MONAI caches it)."""

    def __init__(self, spacing, intensity: dict):
        super().__init__(keys=[IMAGE, LABEL])
        self.spacing, self.intensity = tuple(spacing), dict(intensity)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        image, label, body = prepare_case(data[IMAGE], data[LABEL], self.spacing, self.intensity,
                                          [tuple(pair) for pair in data.get(CHANNELS, ())])
        return {"case": data["case"], IMAGE: torch.from_numpy(image), LABEL: torch.from_numpy(label),
                BODY: torch.from_numpy(body)}


def crop_size(recipe: Recipe) -> tuple[int, int, int]:
    """Patch side before the random affine: larger, so rotated/scaled patches need little padding."""
    if not recipe.affine:
        return tuple(recipe.patch_size)
    return tuple(int(math.ceil(p * 1.25 / 8) * 8) for p in recipe.patch_size)


def jitter_margin(recipe: Recipe) -> tuple[int, int, int]:
    """Voxels added to each side of the sampled crop, so that the patch cut from it at random places its
    sampled voxel up to ``centre_jitter`` half patch sides away from its centre."""
    return tuple(int(round(recipe.centre_jitter * p / 2)) for p in recipe.patch_size)


def random_transforms(recipe: Recipe, bank: Sequence | None = None):
    """The per-sample random MONAI chain on `RepeatedCases` items: copy-paste, patches by centre class, flips,
    affine, intensity."""
    from monai.transforms import (
        Compose,
        DeleteItemsd,
        EnsureTyped,
        RandAffined,
        RandCropByLabelClassesd,
        RandFlipd,
        RandGaussianNoised,
        RandScaleIntensityd,
        RandShiftIntensityd,
        RandSpatialCropd,
        SelectItemsd,
        SpatialPadd,
    )

    from .copy_paste import CopyPasted

    keys = [IMAGE, LABEL]
    size = crop_size(recipe)
    sampled = tuple(side + 2 * margin for side, margin in zip(size, jitter_margin(recipe)))
    steps: list = []
    if recipe.copy_paste > 0 and bank:
        steps += [CopyPasted(bank, prob=recipe.copy_paste), DeleteItemsd(keys=BODY)]
    steps += [
        # a class without voxels (a lesion-free case, nothing mined yet) gives its share to the others; the
        # crop keeps only image and label (MONAI deep-copies every other key once per sample)
        RandCropByLabelClassesd(
            keys=keys, label_key=LABEL, spatial_size=sampled, ratios=centre_ratios(recipe), num_classes=4,
            num_samples=recipe.samples_per_case, indices_key=CENTRES, allow_smaller=True, warn=False,
        ),
        SpatialPadd(keys=keys, spatial_size=sampled),
    ]
    if sampled != size:
        steps.append(RandSpatialCropd(keys=keys, roi_size=size, random_size=False))
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
    if recipe.heavy_augment:
        steps += heavy_intensity_transforms()
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
    """``length`` items cycling over ``cases`` (an epoch is a fixed number of iterations, not one pass).

    Each item carries, under ``CENTRES``, the voxel indices of each patch-centre class (`centre_classes`),
    computed once per case and again only when its mined hard negatives (``hard``: case id → ``[1,x,y,z]``
    uint8) change; `prepare` computes them in the main process so that data-loader workers inherit them.
    The cached item itself is never changed.
    """

    def __init__(self, cases: Sequence, length: int, hard: dict[str, torch.Tensor] | None = None,
                 keep_body: bool = False):
        self.cases, self.length = cases, length
        self.hard = {} if hard is None else hard
        self.keep_body = keep_body  # copy-paste needs the body mask
        self._centres: dict[str, tuple[int | None, list]] = {}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        item = self.cases[index % len(self.cases)]
        chosen = {"case": item["case"], IMAGE: item[IMAGE], LABEL: item[LABEL], CENTRES: self.centres(item)}
        if self.keep_body:
            chosen[BODY] = item[BODY]
        return chosen

    def centres(self, item: dict) -> list:
        hard = self.hard.get(item["case"])
        version = None if hard is None else id(hard)
        known = self._centres.get(item["case"])
        if known is None or known[0] != version:
            known = (version, centre_indices(item[LABEL], item[BODY], hard))
            self._centres[item["case"]] = known
        return known[1]

    def prepare(self) -> None:
        """Compute every case's patch-centre indices now (before data-loader workers start)."""
        for index in range(len(self.cases)):
            self.centres(self.cases[index])


def centre_classes(label, body, hard=None) -> torch.Tensor:
    """The class of every voxel as a patch centre: `OUTSIDE` the body, `NORMAL` body, `HARD_NEGATIVE`, `LESION`."""
    classes = (torch.as_tensor(body) > 0).to(torch.uint8)
    if hard is not None:
        classes[torch.as_tensor(hard) > 0] = HARD_NEGATIVE
    classes[torch.as_tensor(label) > 0] = LESION
    return classes


def centre_indices(label, body, hard=None) -> list:
    """Flat voxel indices of each patch-centre class (MONAI's ``map_classes_to_indices``)."""
    from monai.transforms.utils import map_classes_to_indices

    return map_classes_to_indices(centre_classes(label, body, hard), num_classes=4)


def training_dataset(cases: Sequence, recipe: Recipe, length: int, bank: Sequence | None = None,
                     hard: dict[str, torch.Tensor] | None = None):
    """A MONAI dataset of ``length`` items: prepared cases (cycled) through the random transform chain."""
    from monai.data import Dataset

    keep_body = recipe.copy_paste > 0 and bool(bank)
    return Dataset(RepeatedCases(cases, length, hard, keep_body), random_transforms(recipe, bank))


def centre_ratios(recipe: Recipe) -> list[float]:
    """How often a patch is centred on each class (`OUTSIDE`, `NORMAL`, `HARD_NEGATIVE`, `LESION`).

    A case without voxels of a class (no lesion, nothing mined yet) shares that class's ratio among the others.
    """
    normal = max(0.0, 1.0 - recipe.positive_fraction - recipe.hard_negative_fraction)
    return [0.0, normal, recipe.hard_negative_fraction, recipe.positive_fraction]


class RandThickSlicesd(RandomizableTransform, MapTransform):
    """Simulate a thick-slice acquisition: average the image over slabs of 1.5–``max_factor`` voxels along a
    random axis and interpolate back (the label is unchanged: the lesion is still there, only blurred)."""

    def __init__(self, keys, prob: float, max_factor: float = 4.0):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys)
        self.max_factor = max_factor

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        import torch.nn.functional as functional

        self.randomize(None)
        if not self._do_transform:
            return data
        axis = int(self.R.randint(3))
        factor = float(self.R.uniform(1.5, self.max_factor))
        out = dict(data)
        for key in self.key_iterator(out):
            image = torch.as_tensor(out[key])
            size = list(image.shape[1:])
            low = list(size)
            low[axis] = max(1, round(size[axis] / factor))
            blurred = functional.interpolate(image[None].float(), size=low, mode="area")
            out[key] = functional.interpolate(blurred, size=size, mode="trilinear", align_corners=False)[0]
        return out


def heavy_intensity_transforms() -> list:
    """MR appearance changes for small data sets: bias fields, gamma contrast, blur and sharpening, thick slices."""
    from monai.transforms import (
        RandAdjustContrastd,
        RandBiasFieldd,
        RandGaussianSharpend,
        RandGaussianSmoothd,
    )

    return [
        RandBiasFieldd(keys=IMAGE, prob=0.3, coeff_range=(0.0, 0.3)),
        RandAdjustContrastd(keys=IMAGE, prob=0.3, gamma=(0.7, 1.5)),
        RandGaussianSmoothd(keys=IMAGE, prob=0.15, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
        RandGaussianSharpend(keys=IMAGE, prob=0.1),
        RandThickSlicesd(keys=IMAGE, prob=0.2),
    ]
