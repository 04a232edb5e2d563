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


def slices_through(image, points_lps, count: int = 4) -> list[int]:
    """Reoriented k indices of the axial slices through the first ``count`` distinct points (spread when none)."""
    picked: list[int] = []
    for point in points_lps:
        k = image.TransformPhysicalPointToIndex([float(v) for v in point])[2]
        if k not in picked and 0 <= k < image.GetSize()[2] and len(picked) < count:
            picked.append(k)
    if not picked:
        depth = image.GetSize()[2]
        picked = [int(k) for k in np.linspace(depth * 0.3, depth * 0.7, count)]
    return sorted(picked)


def write_overview(path: str | Path, result: DetectionResult, reference: np.ndarray | None = None) -> Path:
    """PNG of a few axial slices: image in grey, predictions outlined red, the reference (if given) green."""
    outlines = [] if reference is None else [(reference > 0, "lime", "solid")]
    outlines.append((result.label_map > 0, "red", "solid"))
    largest = sorted(result.lesions, key=lambda lesion: -lesion.voxel_count)[:4]
    legend = "red: detected" + (", green: reference" if reference is not None else "") + "; patient's right on the left"
    title = f"{result.volume.name}: {result.model_name}, {len(result.lesions)} lesion(s)\n{legend}"
    return write_outlines(path, result.volume, outlines, [lesion.centroid_lps for lesion in largest], title)


def write_outlines(path: str | Path, volume: Volume, outlines, points_lps, title: str, count: int = 4) -> Path:
    """PNG of the axial slices through the first ``count`` of ``points_lps`` (LPS mm), masks outlined.

    ``outlines`` are ``(mask on volume's grid, colour, line style)``, drawn in order.
    """
    from matplotlib.figure import Figure

    pixels, image = _axial_lps(volume, volume.array)
    slices = slices_through(image, points_lps, count)
    masks = [(_axial_lps(volume, np.asarray(mask, dtype=np.uint8))[0] > 0, colour, style) for mask, colour, style in outlines]
    figure = Figure(figsize=(max(3.2 * len(slices), 5.0), 3.8), dpi=100)  # wide enough for the title
    low, high = np.percentile(pixels, [1, 99.5])
    spacing = image.GetSpacing()
    for column, k in enumerate(slices, start=1):
        axes = figure.add_subplot(1, len(slices), column)
        axes.imshow(pixels[k], cmap="gray", vmin=low, vmax=high, aspect=spacing[1] / spacing[0])
        for mask, colour, style in masks:
            if mask[k].any():
                axes.contour(mask[k], levels=[0.5], colors=colour, linewidths=1.0, linestyles=style)
        axes.set_title(f"axial slice {k}", fontsize=9)
        axes.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.subplots_adjust(top=0.8)
    path = Path(path)
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png")
    return path
