"""Does an input look like what the model was trained on? These checks warn; they never refuse.

A bundle lists its ``input_requirements`` in ``model.json``; `input_warnings` runs the check of each one.
``skull-stripped``: the brain models were trained on skull-stripped scans, whose tissue above an Otsu
threshold is the brain alone (0.95–1.7 L in the training scans). A head with skull and scalp, or a scan
of another body part, holds far more (3.2–3.5 L in two real unstripped head MRIs), so more than 2 L of
tissue means the input still has skull and scalp, and lesions outside the brain may be reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .volume import Volume

SKULL_STRIPPED = "skull-stripped"
MAX_BRAIN_ML = 2000.0
MAX_CHECK_VOXELS = 2_000_000  # larger inputs are shrunk first (the check needs no fine detail)


def tissue_volume_ml(volume: Volume) -> float:
    """Volume (mL) of the largest connected region above the image's Otsu threshold, holes filled slice by
    slice (so a ring of scalp encloses the head in each slice even where the head is open at the neck)."""
    import SimpleITK as sitk

    image = sitk.Cast(volume.to_sitk(), sitk.sitkFloat32)
    factor = math.ceil((volume.array.size / MAX_CHECK_VOXELS) ** (1 / 3))
    if factor > 1:
        image = sitk.BinShrink(image, [factor] * 3)
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))  # only voxel counts matter here, and
    image.SetOrigin((0.0, 0.0, 0.0))  # JoinSeries needs the slices of an oblique grid to share one plane
    tissue = sitk.OtsuThreshold(image, 0, 1)
    filled = sitk.JoinSeries([sitk.BinaryFillhole(tissue[:, :, k]) for k in range(tissue.GetSize()[2])])
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(filled), sortByObjectSize=True) == 1
    voxel_ml = float(abs(image.GetSpacing()[0] * image.GetSpacing()[1] * image.GetSpacing()[2])) / 1000.0
    return float(sitk.GetArrayViewFromImage(largest).sum()) * voxel_ml


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


REQUIREMENT_CHECKS: dict[str, Callable[[Volume], str | None]] = {SKULL_STRIPPED: skull_warning}


def input_warnings(volume: Volume, requirements: list[str]) -> list[str]:
    """The warnings of every requirement that ``volume`` seems not to meet."""
    return [message for name in requirements if (message := REQUIREMENT_CHECKS[name](volume)) is not None]
