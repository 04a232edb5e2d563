"""`detect`'s path for an imported MONAI bundle: a lesion probability on the reference grid, and for a box
detector its boxes (the probability is then each box's score inside the box: what a box model can give)."""

from __future__ import annotations

import numpy as np

from ..detected_box import DetectedBox
from ..volume import Volume
from . import run


def bundle_probability(model, channels: list[Volume], threshold: float, device: str, overlap: float | None = None,
                       batch_size: int | None = None) -> tuple[np.ndarray, list[DetectedBox] | None]:
    """(lesion probability ``[k, j, i]`` on the reference grid, the boxes of a detection bundle or None)."""
    pipeline = model.spec.pipeline
    network = model.network(device)
    if pipeline["task"] == "segmentation":
        return run.segmentation_probability(network, channels, pipeline, threshold, device, overlap, batch_size), None
    from .detection import detect_boxes

    bundle_input = run.prepare(channels, pipeline)
    voxel_boxes, scores = detect_boxes(network, bundle_input.image, pipeline, device)
    if bundle_input.crop is not None:  # boxes of the foreground crop → of the whole bundle grid
        voxel_boxes = voxel_boxes + np.tile([part.start for part in bundle_input.crop], 2)
    score_map = box_score_map(voxel_boxes, scores, bundle_input.full_shape or bundle_input.image.shape[1:])
    probability = run.to_reference_grid(score_map, bundle_input.grid, channels[0], interpolate="nearest")
    grid = bundle_input.grid
    boxes = [physical_box(box, score, grid, channels[0]) for box, score in zip(voxel_boxes, scores)
             if score >= threshold]
    return probability, sorted(boxes, key=lambda box: -box.score)


def box_score_map(boxes: np.ndarray, scores: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``[x, y, z]``: each voxel whose centre lies in a box holds the highest score of those boxes, else 0."""
    found = np.zeros(shape, np.float32)
    for box, score in zip(boxes, scores):
        low = np.ceil(box[:3]).astype(int)
        high = np.floor(box[3:]).astype(int) + 1
        region = tuple(slice(max(0, lo), min(n, hi)) for lo, hi, n in zip(low, high, shape))
        found[region] = np.maximum(found[region], np.float32(score))
    return found


def physical_box(box: np.ndarray, score: float, grid, reference: Volume) -> DetectedBox:
    """A model-grid voxel box ``x1 y1 z1 x2 y2 z2`` in LPS mm: its centre, edge lengths and axes (the grid's)."""
    if grid is None:
        direction, spacing, origin = np.asarray(reference.direction, float), np.asarray(reference.spacing, float), \
            np.asarray(reference.origin, float)
    else:
        from ..preprocess import RAS_DIRECTION_IN_LPS

        direction, spacing, origin = RAS_DIRECTION_IN_LPS, np.asarray(grid.spacing, float), np.asarray(grid.origin)
    centre_lps = direction @ (spacing * (box[:3] + box[3:]) / 2) + origin
    size = (box[3:] - box[:3]) * spacing
    axes = tuple(tuple(float(v) for v in direction[:, axis]) for axis in range(3))
    return DetectedBox(float(score), tuple(float(v) for v in centre_lps), tuple(float(v) for v in size), axes)
