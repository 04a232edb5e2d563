"""Lesions from the model-grid probability, resampling only the boxes where a lesion can be onto the input grid.

Linear interpolation never exceeds the largest of the (up to 8) model-grid values it mixes, so an input voxel
whose interpolated probability reaches the outline threshold lies among model voxels that are all within one
voxel of a model voxel at or above it: inside one connected component of the thresholded model grid dilated
by one voxel. Each such component's box (widened by one model voxel for ITK's clamping at the grid's edge),
mapped onto the input grid and widened by one input voxel (26-connectivity), is merged with every box it
overlaps until none overlap. Then every connected region of the full resampled map lies wholly inside one box,
so thresholding and labelling each box alone finds exactly the regions of the whole map. Boxes whose
model-grid probability stays below the detection threshold are dropped: no lesion can reach it there.
"""

from __future__ import annotations

from itertools import product

import numpy as np

from .lesions import Box, Lesion, from_probability
from .preprocess import Grid, grid_image, resample_onto
from .volume import LPS_TO_RAS, Volume

MAX_BOXES = 2000  # more candidate regions than this: one box, the whole volume (merging compares every pair)


def find_lesions(
    model_probability: np.ndarray,
    grid: Grid,
    volume: Volume,
    threshold: float,
    min_volume_mm3: float = 0.0,
    max_lesions: int | None = None,
    measure_surfaces: bool = True,
    outline_threshold: float | None = None,
    inside: np.ndarray | None = None,
) -> tuple[list[Lesion], np.ndarray]:
    """`lesions.from_probability` of the model-grid map ``[x, y, z]`` resampled onto ``volume``'s grid, computed
    from the candidate boxes only; with ``inside`` (a ``[k, j, i]`` mask on that grid) only inside it."""
    outline = threshold if outline_threshold is None else min(outline_threshold, threshold)
    image = grid_image(model_probability, grid)
    regions = ((box, masked(probability_in_box(image, volume, box), None if inside is None else inside[box]))
               for box in candidate_boxes(model_probability, grid, volume, outline, threshold))
    return from_probability(regions, volume, threshold, min_volume_mm3, max_lesions, measure_surfaces, outline)


def masked(probability: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """``probability`` zeroed outside ``inside`` in place (unchanged, and not copied, without a mask)."""
    if inside is not None:
        probability[~inside] = 0.0
    return probability


def probability_in_box(model_image, volume: Volume, box: Box) -> np.ndarray:
    """The model-grid probability (a SimpleITK image) linearly resampled onto ``box`` of ``volume``'s grid."""
    start_ijk = np.array([box[2].start, box[1].start, box[0].start], dtype=float)
    size_ijk = [box[2].stop - box[2].start, box[1].stop - box[1].start, box[0].stop - box[0].start]
    origin = volume.ijk_to_lps()[:3, :3] @ start_ijk + np.asarray(volume.origin, dtype=float)
    return resample_onto(model_image, size_ijk, origin, volume.spacing, volume.direction)


def candidate_boxes(model_probability: np.ndarray, grid: Grid, volume: Volume, outline_threshold: float,
                    threshold: float) -> list[Box]:
    """Disjoint ``[k, j, i]`` boxes of the input grid holding every region that can be a lesion (module docstring)."""
    whole = [tuple(slice(0, n) for n in volume.array.shape)]
    if outline_threshold <= 0:  # every voxel passes: one region, the whole volume
        return whole
    groups = _model_grid_components(model_probability, outline_threshold)
    if not groups:
        return []
    if len(groups) > MAX_BOXES:
        return whole
    model_to_input = np.linalg.inv(volume.ijk_to_lps()) @ _grid_index_to_lps(grid)
    shape_ijk = np.array(volume.shape_ijk)
    low, high, peak = [], [], []
    for (start, stop), largest in groups:
        corners = np.array(list(product(*zip(start - 1, stop))), dtype=float)  # stop is exclusive: +1 voxel
        ijk = corners @ model_to_input[:3, :3].T + model_to_input[:3, 3]
        low.append(np.clip(np.floor(ijk.min(axis=0)) - 1, 0, shape_ijk - 1))
        high.append(np.clip(np.ceil(ijk.max(axis=0)) + 1, 0, shape_ijk - 1))
        peak.append(largest)
    low, high, peak = _merge_overlapping(np.array(low, int), np.array(high, int), np.array(peak))
    keep = peak >= np.float32(threshold)
    return [tuple(slice(int(lo[axis]), int(hi[axis]) + 1) for axis in (2, 1, 0)) for lo, hi in zip(low[keep], high[keep])]


def _grid_index_to_lps(grid: Grid) -> np.ndarray:
    """4×4 matrix from a model grid's (x, y, z) voxel index to LPS mm."""
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ np.diag(grid.spacing)
    matrix[:3, 3] = grid.origin
    return matrix


def _model_grid_components(model_probability: np.ndarray, outline_threshold: float):
    """((start, stop) in (x, y, z), highest probability) of each 26-connected component of the thresholded
    model grid dilated by one voxel."""
    import SimpleITK as sitk

    mask = sitk.GetImageFromArray((model_probability >= outline_threshold).view(np.uint8).transpose(2, 1, 0))
    if not sitk.GetArrayViewFromImage(mask).any():
        return []
    dilated = sitk.BinaryDilate(mask, [1, 1, 1], sitk.sitkBox)
    components = sitk.ConnectedComponent(dilated, True)
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.ComputePerimeterOff()  # (on by default; not used)
    shapes.Execute(components)
    labels = sitk.GetArrayViewFromImage(components).transpose(2, 1, 0)  # back to [x, y, z]
    groups = []
    for label in shapes.GetLabels():
        x, y, z, size_x, size_y, size_z = shapes.GetBoundingBox(label)
        start, stop = np.array([x, y, z]), np.array([x + size_x, y + size_y, z + size_z])
        box = tuple(slice(a, b) for a, b in zip(start, stop))
        groups.append(((start, stop), float(model_probability[box][labels[box] == label].max())))
    return groups


def _merge_overlapping(low: np.ndarray, high: np.ndarray, peak: np.ndarray):
    """Merge inclusive boxes ``[low, high]`` that overlap, repeatedly, until none do; a merged box's peak is the
    highest of its members'."""
    while True:
        overlap = np.all((low[:, None, :] <= high[None, :, :]) & (low[None, :, :] <= high[:, None, :]), axis=2)
        group = _connected_groups(overlap)
        if group.max() + 1 == len(low):
            return low, high, peak
        count = group.max() + 1
        merged_low = np.full((count, 3), np.iinfo(int).max)
        merged_high = np.full((count, 3), np.iinfo(int).min)
        merged_peak = np.full(count, -np.inf)
        np.minimum.at(merged_low, group, low)
        np.maximum.at(merged_high, group, high)
        np.maximum.at(merged_peak, group, peak)
        low, high, peak = merged_low, merged_high, merged_peak


def _connected_groups(adjacent: np.ndarray) -> np.ndarray:
    """Group number (0, 1, …) of each node of a symmetric adjacency matrix."""
    group = np.full(len(adjacent), -1)
    for start in range(len(adjacent)):
        if group[start] >= 0:
            continue
        label, frontier = group.max() + 1, [start]
        group[start] = label
        while frontier:
            node = frontier.pop()
            for other in np.flatnonzero(adjacent[node] & (group < 0)):
                group[other] = label
                frontier.append(other)
    return group
