"""An overview picture: a few axial slices with predicted (and reference) lesion outlines.

Slices are shown in the radiological convention (patient's right on the viewer's left, anterior up): the
volumes are reoriented to LPS with SimpleITK first, whatever their direction matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .result import DetectionResult
from .volume import Volume
from .writers.atomic import atomic_output


def _axial_lps(volume: Volume, array: np.ndarray):
    """``array`` (on ``volume``'s grid) reoriented so that [k, j, i] runs S, P, L; returns (array, image)."""
    import SimpleITK as sitk

    image = sitk.DICOMOrient(volume.with_array(array).to_sitk(), "LPS")
    return sitk.GetArrayFromImage(image), image


def overview_slices(result: DetectionResult, image, count: int = 4) -> list[int]:
    """Reoriented k indices through the centroids of the largest lesions (spread slices when there are none)."""
    largest = sorted(result.lesions, key=lambda lesion: -lesion.voxel_count)[:count]
    picked = sorted({image.TransformPhysicalPointToIndex(lesion.centroid_lps)[2] for lesion in largest})
    if not picked:
        depth = image.GetSize()[2]
        picked = sorted({int(k) for k in np.linspace(depth * 0.3, depth * 0.7, count)})
    return picked


def write_overview(path: str | Path, result: DetectionResult, reference: np.ndarray | None = None) -> Path:
    """PNG of a few axial slices: image in grey, predictions outlined red, the reference (if given) green."""
    from matplotlib.figure import Figure

    pixels, image = _axial_lps(result.volume, result.volume.array)
    predicted = _axial_lps(result.volume, result.label_map)[0] > 0
    truth = None if reference is None else _axial_lps(result.volume, reference)[0] > 0
    slices = overview_slices(result, image)
    figure = Figure(figsize=(max(3.2 * len(slices), 5.0), 3.8), dpi=100)  # wide enough for the title
    low, high = np.percentile(pixels, [1, 99.5])
    spacing = image.GetSpacing()
    for column, k in enumerate(slices, start=1):
        axes = figure.add_subplot(1, len(slices), column)
        axes.imshow(pixels[k], cmap="gray", vmin=low, vmax=high, aspect=spacing[1] / spacing[0])
        for mask, colour in ((truth, "lime"), (predicted, "red")):
            if mask is not None and mask[k].any():
                axes.contour(mask[k], levels=[0.5], colors=colour, linewidths=1.0)
        axes.set_title(f"axial slice {k}", fontsize=9)
        axes.axis("off")
    legend = "red: detected" + (", green: reference" if reference is not None else "") + "; patient's right on the left"
    figure.suptitle(f"{result.volume.name}: {result.model_name}, {len(result.lesions)} lesion(s)\n{legend}", fontsize=9)
    figure.subplots_adjust(top=0.8)
    path = Path(path)
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png")
    return path
