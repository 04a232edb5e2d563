"""Benchmark inputs: a synthetic CT-like volume of realistic size, and the real volumes in ``../shared/data``.

The synthetic CT is int16 Hounsfield units on a 0.7×0.7×1.25 mm grid (a typical chest/abdomen series): air
(-1000 HU) around an elliptical body with a fat rim, soft tissue, two lungs in the upper part, a spine, a
patient table below the body, CT-like noise, and a few hyper-dense spherical lesions (one in a lung). It is
written once as a compressed NIfTI into a cache folder, so that the benchmark times reading a real file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ``LESIONDETECT_SHARED_DATA`` points elsewhere (e.g. on a GPU machine that gets a copy of a few volumes)
SHARED_DATA = Path(os.environ.get("LESIONDETECT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CACHE = Path(__file__).resolve().parent / "out" / "cache"  # ignored by git
CT_SPACING = (0.7, 0.7, 1.25)
LESION_HU = 160  # hyper-dense: above soft tissue and below bone (what the benchmark's lesion head keys on)


@dataclass(frozen=True)
class Case:
    """One benchmark input: a file on disk and what it is."""

    name: str
    path: Path
    description: str
    modality: str


def _body_masks(shape_ji: tuple[int, int], spacing: float, scale: float) -> dict[str, np.ndarray]:
    """2-D masks of one axial slice (rows = posterior→, columns = left→) for a body of relative size ``scale``."""
    rows, columns = np.mgrid[: shape_ji[0], : shape_ji[1]].astype(np.float32) * spacing
    centre_y, centre_x = shape_ji[0] * spacing * 0.47, shape_ji[1] * spacing * 0.5
    dy, dx = rows - centre_y, columns - centre_x

    def ellipse(cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
        return ((dx - cx) / ax) ** 2 + ((dy - cy) / ay) ** 2 <= 1.0

    body = ellipse(0, 0, 160 * scale, 110 * scale)
    return {
        "body": body,
        "inner": ellipse(0, 0, 148 * scale, 98 * scale),
        "lungs": ellipse(-70 * scale, -10, 50 * scale, 70 * scale) | ellipse(70 * scale, -10, 50 * scale, 70 * scale),
        "spine": ellipse(0, 80 * scale, 18, 18),
        "table": (dy > 118) & (dy < 126) & (np.abs(dx) < 200),
    }


def synthetic_ct(shape_kji: tuple[int, int, int], spacing=CT_SPACING, seed: int = 0) -> np.ndarray:
    """An int16 CT-like volume ``[k, j, i]`` (see the module docstring); lungs in the upper 45 % of slices."""
    rng = np.random.default_rng(seed)
    slices, rows, columns = shape_kji
    array = np.empty(shape_kji, np.int16)
    for k in range(slices):
        scale = 0.92 + 0.08 * np.sin(np.pi * k / max(1, slices - 1))
        masks = _body_masks((rows, columns), spacing[0], scale)
        plane = np.full((rows, columns), -1000.0, np.float32)
        plane[masks["table"]] = 100.0
        plane[masks["body"]] = -100.0  # subcutaneous fat
        plane[masks["inner"]] = 40.0  # soft tissue
        if k >= 0.55 * slices:
            plane[masks["lungs"]] = -850.0
        plane[masks["spine"]] = 400.0
        plane += rng.normal(0.0, 15.0, size=plane.shape).astype(np.float32)
        array[k] = np.clip(plane, -1024, 3071).astype(np.int16)
    _add_lesions(array, spacing, rng)
    return array


def _add_lesions(array: np.ndarray, spacing, rng: np.random.Generator) -> None:
    """Spheres of ``LESION_HU`` (radius 5–15 mm): three in soft tissue, one in the right lung."""
    slices, rows, columns = array.shape
    centres_mm = [  # (i, j, k) as fractions of the extent, radius mm
        (0.40, 0.45, 0.25, 15.0), (0.62, 0.52, 0.35, 10.0), (0.50, 0.60, 0.15, 7.0), (0.30, 0.45, 0.75, 5.0),
    ]
    for fi, fj, fk, radius in centres_mm:
        centre = np.array([fk * (slices - 1), fj * (rows - 1), fi * (columns - 1)])
        half = np.ceil(radius / np.array(spacing[::-1])).astype(int)
        low, high = np.maximum(centre.astype(int) - half, 0), np.minimum(centre.astype(int) + half + 1, array.shape)
        kk, jj, ii = np.ogrid[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
        distance = np.sqrt(((kk - centre[0]) * spacing[2]) ** 2 + ((jj - centre[1]) * spacing[1]) ** 2
                           + ((ii - centre[2]) * spacing[0]) ** 2)
        box = array[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
        inside = distance <= radius
        box[inside] = (LESION_HU + rng.normal(0, 15, size=int(inside.sum()))).astype(np.int16)


def synthetic_ct_case(shape_kji: tuple[int, int, int]) -> Case:
    """The synthetic CT of ``shape_kji`` as a cached ``.nii.gz`` (written on first use)."""
    import SimpleITK as sitk

    slices, rows, columns = shape_kji
    path = CACHE / f"synthetic_ct_{columns}x{rows}x{slices}.nii.gz"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        image = sitk.GetImageFromArray(synthetic_ct(shape_kji))
        image.SetSpacing(CT_SPACING)
        image.SetOrigin((-0.5 * columns * CT_SPACING[0], -0.5 * rows * CT_SPACING[1], -600.0))
        temporary = path.with_name(f".{path.name}")
        sitk.WriteImage(image, str(temporary), useCompression=True)
        temporary.replace(path)
    size = f"{columns}×{rows}×{slices}"
    return Case(f"synthetic CT {size}", path, f"synthetic CT-like {size} at 0.7×0.7×1.25 mm, int16 HU", "CT")


def real_cases() -> list[Case]:
    """A real BraTS FLAIR (240×240×155) and a real whole-torso CT, when ``../shared/data`` is present."""
    found = []
    flairs = sorted((SHARED_DATA / "brain-tumour-mri").glob("*/flair.nii.gz"))
    if flairs:
        found.append(Case("BraTS FLAIR", flairs[0], f"real BraTS 2018 FLAIR {flairs[0].parent.name}, 240×240×155, 1 mm",
                          "MR"))
    torso = SHARED_DATA / "real-ct-nifti" / "ct_3mm.nii.gz"
    if torso.exists():
        found.append(Case("real torso CT", torso, "real whole-torso CT (TotalSegmentator example), 122×101×112, 3 mm",
                          "CT"))
    return found
