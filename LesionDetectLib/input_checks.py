"""Does an input look like what the model was trained on? These checks warn; they never refuse.

A bundle lists its ``input_requirements`` in ``model.json``; `input_warnings` runs the check of each one.
``skull-stripped``: the brain models were trained on skull-stripped scans, whose tissue above an Otsu
threshold is the brain alone (0.95–1.7 L in the training scans). A head with skull and scalp, or a scan
of another body part, holds far more (3.2–3.5 L in two real unstripped head MRIs), so more than 2 L of
tissue means the input still has skull and scalp, and lesions outside the brain may be reported.
``extremity``: the CT model was trained on CTs of the arms and legs, and marks normal organs of the trunk.
Air enclosed by the body (lungs, bowel gas) tells the trunk apart: 0–69 mL in the 45 training sarcoma crops,
340 and 500 mL in a real aorta crop and a torso CT (a 4 cm chest/abdomen slab holds only 34 mL and passes).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .volume import Volume

SKULL_STRIPPED = "skull-stripped"
MAX_BRAIN_ML = 2000.0
EXTREMITY = "extremity"
AIR_HU = -400.0
MAX_LIMB_AIR_ML = 150.0
MAX_CHECK_VOXELS = 2_000_000  # larger inputs are shrunk first (the check needs no fine detail)


def _check_grid(volume: Volume):
    """``volume`` as a float SimpleITK image, shrunk to at most about ``MAX_CHECK_VOXELS``, on an axis-aligned grid."""
    import SimpleITK as sitk

    image = volume.to_sitk()
    factor = math.ceil((volume.array.size / MAX_CHECK_VOXELS) ** (1 / 3))
    if factor > 1:  # shrink first, in the input's own type (block means of integers rounded), then convert
        image = sitk.BinShrink(image, [factor] * 3)
    image = sitk.Cast(image, sitk.sitkFloat32)
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))  # only voxel counts matter here, and
    image.SetOrigin((0.0, 0.0, 0.0))  # JoinSeries needs the slices of an oblique grid to share one plane
    return image


def _largest_filled(mask):
    """The largest connected region of ``mask`` with its holes filled slice by slice (so a ring of scalp or a
    chest wall encloses what is inside it in each slice, even where the region is open at its ends)."""
    import SimpleITK as sitk

    filled = sitk.JoinSeries([sitk.BinaryFillhole(mask[:, :, k]) for k in range(mask.GetSize()[2])])
    filled.CopyInformation(mask)
    return sitk.RelabelComponent(sitk.ConnectedComponent(filled), sortByObjectSize=True) == 1


def _millilitres(mask) -> float:
    import SimpleITK as sitk

    spacing = mask.GetSpacing()
    return float(sitk.GetArrayViewFromImage(mask).sum()) * abs(spacing[0] * spacing[1] * spacing[2]) / 1000.0


def tissue_volume_ml(volume: Volume) -> float:
    """Volume (mL) of the largest region above the image's Otsu threshold, holes filled slice by slice."""
    import SimpleITK as sitk

    image = _check_grid(volume)
    return _millilitres(_largest_filled(sitk.OtsuThreshold(image, 0, 1)))


def internal_air_ml(volume: Volume) -> float:
    """Volume (mL) of air (< -400 HU) enclosed by the body in a CT: lungs and bowel gas in the trunk, next to
    nothing in an arm or a leg."""
    import SimpleITK as sitk

    image = _check_grid(volume)
    soft_tissue = image > AIR_HU
    body = _largest_filled(soft_tissue)
    return _millilitres(sitk.And(body, sitk.Not(soft_tissue)))


def skull_warning(volume: Volume) -> str | None:
    """A warning when ``volume`` holds more tissue than a skull-stripped brain can."""
    millilitres = tissue_volume_ml(volume)
    if millilitres <= MAX_BRAIN_ML:
        return None
    return (
        f"the input does not look skull-stripped ({millilitres / 1000:.1f} L of tissue; a brain alone is under "
        f"{MAX_BRAIN_ML / 1000:.0f} L): this model was trained on skull-stripped brain scans, so skull, scalp "
        "or other tissue may give false lesions; skull-strip the scan first (e.g. SynthStrip or HD-BET)"
    )


def trunk_warning(volume: Volume) -> str | None:
    """A warning when a CT holds the air of lungs or bowel, i.e. shows the trunk rather than a limb."""
    millilitres = internal_air_ml(volume)
    if millilitres <= MAX_LIMB_AIR_ML:
        return None
    return (
        f"the input looks like a CT of the trunk ({millilitres:.0f} mL of air inside the body: lungs or bowel): "
        "this model was trained on CTs of the arms and legs and marks normal organs (kidneys, liver, bowel) in "
        "the trunk as lesions; check every result there"
    )


REQUIREMENT_CHECKS: dict[str, Callable[[Volume], str | None]] = {
    SKULL_STRIPPED: skull_warning, EXTREMITY: trunk_warning,
}


def input_warnings(volume: Volume, requirements: list[str]) -> list[str]:
    """The warnings of every requirement that ``volume`` seems not to meet."""
    return [message for name in requirements if (message := REQUIREMENT_CHECKS[name](volume)) is not None]
