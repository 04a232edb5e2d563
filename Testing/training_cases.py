"""Synthetic training cases written as NIfTI with an oblique direction, anisotropic spacing and a non-zero origin:
an ellipsoid "body" of noisy tissue on a zero background holding one bright sphere (the lesion); a datalist of them,
and a recipe that trains in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from conftest import oblique_direction

from LesionDetectLib.training import Recipe
from LesionDetectLib.training import transforms as T
from LesionDetectLib.training.recipe import unet_kwargs

SPACING = (1.2, 0.9, 2.0)
ORIGIN = (12.5, -40.25, 30.0)
SHAPE_KJI = (16, 36, 32)
LESION_RADIUS_MM = 4.5


def synthetic_case(seed: int, shape_kji=SHAPE_KJI, spacing=SPACING, lesion: bool = True):
    """(image, label, lesion centre in (i, j, k) voxels): noisy ellipsoid body, one bright sphere inside it."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in shape_kji], indexing="ij")
    mm = [axis * step for axis, step in zip((i, j, k), spacing)]
    half = [(n - 1) * step / 2 for n, step in zip(shape_kji[::-1], spacing)]
    body = sum(((m - h) / (0.95 * h)) ** 2 for m, h in zip(mm, half)) <= 1.0
    image = np.where(body, rng.normal(40.0, 6.0, shape_kji), 0.0).astype(np.float32)
    label = np.zeros(shape_kji, np.uint8)
    centre_ijk = None
    if lesion:
        centre_mm = [h + rng.uniform(-0.3, 0.3) * h for h in half]
        inside = sum((m - c) ** 2 for m, c in zip(mm, centre_mm)) <= LESION_RADIUS_MM**2
        image[inside] += 80.0
        label[inside] = 1
        centre_ijk = np.array([c / step for c, step in zip(centre_mm, spacing)])
    return image, label, centre_ijk


def write_image(array: np.ndarray, path: Path, spacing=SPACING, origin=ORIGIN, direction=None) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection((oblique_direction() if direction is None else direction).ravel().tolist())
    sitk.WriteImage(image, str(path))
    return path


def write_dataset(root: Path, count: int = 6, seed: int = 0, validation: int = 0) -> Path:
    """A dataset.json (MONAI datalist with case/source/lesion_type tags) of ``count`` synthetic cases."""
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    items = []
    for number in range(count):
        image, label, _ = synthetic_case(seed * 100 + number)
        write_image(image, root / "imagesTr" / f"case{number}_0000.nii.gz")
        write_image(label, root / "labelsTr" / f"case{number}.nii.gz")
        items.append({"image": f"imagesTr/case{number}_0000.nii.gz", "label": f"./labelsTr/case{number}.nii.gz",
                      "case": f"case{number}", "source": "AB"[number % 2], "lesion_type": "multiple sclerosis"})
    datalist = {"name": "synthetic lesions", "modality": {"0": "FLAIR"}, "training": items[: count - validation]}
    if validation:
        datalist["validation"] = items[count - validation:]
    path = root / "dataset.json"
    path.write_text(json.dumps(datalist, indent=1))
    return path


def tiny_recipe(**changes) -> Recipe:
    """A recipe that runs in seconds on 2 CPU cores."""
    values = dict(
        spacing=(1.5, 1.5, 1.5), patch_size=(24, 24, 24), network_kwargs=unet_kwargs((8, 16, 32), 1),
        epochs=2, iterations_per_epoch=3, batch_size=2, samples_per_case=2, val_interval=1, warmup_epochs=1,
        lr=3e-3, sw_batch_size=4, cache="memory", num_workers=0,
    )
    return Recipe(**{**values, **changes})


MINED_SHAPE = (40, 40, 40)  # of `mined_case`


def mined_case(hard: bool = True) -> dict:
    """A prepared 40³ case: image = 1 on the hard-negative block, 2 on the lesion block, 0 elsewhere in the body
    (the hard-negative mask under "hard", as mining would give it)."""
    image = torch.zeros((1, *MINED_SHAPE))
    label = torch.zeros((1, *MINED_SHAPE), dtype=torch.uint8)
    body = torch.zeros((1, *MINED_SHAPE), dtype=torch.uint8)
    body[:, 2:38, 2:38, 2:38] = 1
    label[:, 5:9, 5:9, 5:9] = 1
    image[label > 0] = 2.0
    item = {"case": "c", T.IMAGE: image, T.LABEL: label, T.BODY: body}
    if hard:
        mask = torch.zeros((1, *MINED_SHAPE), dtype=torch.uint8)
        mask[:, 28:34, 28:34, 28:34] = 1
        image[mask > 0] = 1.0
        item["hard"] = mask
    return item
