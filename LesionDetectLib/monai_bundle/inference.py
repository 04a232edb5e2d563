"""`detect`'s path for an imported MONAI bundle: a segmentation bundle's lesion probability on the reference grid,
or a detection bundle's boxes in physical space (`detector_boxes` turns them into lesions)."""

from __future__ import annotations

import numpy as np

from ..detected_box import DetectedBox
from ..volume import Volume
from . import run


def bundle_probability(model, channels: list[Volume], threshold: float, device: str, overlap: float | None = None,
                       batch_size: int | None = None) -> np.ndarray:
    """A segmentation bundle's lesion probability ``[k, j, i]`` on the reference grid."""
    pipeline = model.spec.pipeline
    return run.segmentation_probability(model.network(device), channels, pipeline, threshold, device, overlap,
                                        batch_size)


def bundle_boxes(model, channels: list[Volume], device: str) -> list[DetectedBox]:
    """A detection bundle's boxes (all its box selector keeps), in LPS mm, highest score first."""
    from .detection import detect_boxes

    pipeline = model.spec.pipeline
    bundle_input = run.prepare(channels, pipeline)
    voxel_boxes, scores = detect_boxes(model.network(device), bundle_input.image, pipeline, device)
    if bundle_input.crop is not None:  # boxes of the foreground crop → of the whole bundle grid
        voxel_boxes = voxel_boxes + np.tile([part.start for part in bundle_input.crop], 2)
    boxes = [physical_box(box, score, bundle_input.grid, channels[0]) for box, score in zip(voxel_boxes, scores)]
    return sorted(boxes, key=lambda box: -box.score)


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
