"""`detect`'s path for an imported MONAI bundle: a lesion probability on the reference grid, and for a box
detector its boxes (the probability is then each box's score inside the box: what a box model can give)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..volume import Volume
from . import run


@dataclass(frozen=True)
class Box:
    """A detected box: its score and its eight corners' extent as centre and size along the model-grid axes
    (RAS-aligned), in LPS mm (centre) and mm (size)."""

    score: float
    centre_lps: tuple[float, float, float]
    size_mm: tuple[float, float, float]

    def to_dict(self) -> dict[str, object]:
        return {"score": round(self.score, 6), "centre_lps": [round(v, 4) for v in self.centre_lps],
                "size_mm": [round(v, 4) for v in self.size_mm]}


def bundle_probability(model, channels: list[Volume], threshold: float, device: str, overlap: float | None = None,
                       batch_size: int | None = None) -> tuple[np.ndarray, list[Box] | None]:
    """(lesion probability ``[k, j, i]`` on the reference grid, the boxes of a detection bundle or None)."""
    pipeline = model.spec.pipeline
    network = model.network(device)
    if pipeline["task"] == "segmentation":
        return run.segmentation_probability(network, channels, pipeline, threshold, device, overlap, batch_size), None
    from .detection import detect_boxes

    bundle_input = run.prepare(channels, pipeline)
    voxel_boxes, scores = detect_boxes(network, bundle_input.image, pipeline, device)
    score_map = box_score_map(voxel_boxes, scores, bundle_input.image.shape[1:])
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


def physical_box(box: np.ndarray, score: float, grid, reference: Volume) -> Box:
    """A model-grid voxel box as a centre in LPS and a size in mm (along the grid's axes)."""
    if grid is None:
        matrix, spacing = reference.ijk_to_lps(), np.asarray(reference.spacing, float)
    else:
        from ..preprocess import RAS_DIRECTION_IN_LPS

        spacing = np.asarray(grid.spacing, float)
        matrix = np.eye(4)
        matrix[:3, :3] = RAS_DIRECTION_IN_LPS @ np.diag(spacing)
        matrix[:3, 3] = grid.origin
    centre = (box[:3] + box[3:]) / 2
    centre_lps = matrix[:3, :3] @ centre + matrix[:3, 3]
    size = (box[3:] - box[:3]) * spacing
    return Box(float(score), tuple(float(v) for v in centre_lps), tuple(float(v) for v in size))
