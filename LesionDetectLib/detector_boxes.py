"""A box detector's boxes → lesions: each box scoring at least the threshold is one lesion.

A box model gives no outline, so a lesion's segment is honestly its box: the input voxels whose centres lie in
the box (where boxes overlap, the higher-scoring box's). The lesion's control point is the box's centre, its
confidence the box's score, and the table adds the box's centre and edge lengths (`DetectedBox.table_columns`);
the saved probability map holds each lesion's score on its segment (`box_probability`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .detected_box import DetectedBox
from .lesions import Lesion, from_labels
from .volume import Volume


def box_label_map(boxes: Sequence[DetectedBox], volume: Volume) -> np.ndarray:
    """``[k, j, i]`` uint16: voxel value n where its centre lies in ``boxes[n - 1]`` (the first such box), else 0."""
    labels = np.zeros(volume.array.shape, np.uint16)
    ijk_to_lps = volume.ijk_to_lps()
    lps_to_ijk = np.linalg.inv(ijk_to_lps)
    shape_ijk = np.array(volume.shape_ijk)
    for number, box in enumerate(boxes, start=1):
        corners = box.corners_lps() @ lps_to_ijk[:3, :3].T + lps_to_ijk[:3, 3]
        low = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, shape_ijk)
        high = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, shape_ijk)
        if np.any(high <= low):
            continue
        ijk = np.stack(np.meshgrid(*[np.arange(lo, hi) for lo, hi in zip(low, high)], indexing="ij"), -1).reshape(-1, 3)
        inside = ijk[box.contains(ijk @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3])]
        k, j, i = inside[:, 2], inside[:, 1], inside[:, 0]
        free = labels[k, j, i] == 0
        labels[k[free], j[free], i[free]] = number
    return labels


def lesions_from_boxes(
    boxes: Sequence[DetectedBox],
    volume: Volume,
    threshold: float,
    min_volume_mm3: float = 0.0,
    max_lesions: int | None = None,
    measure_surfaces: bool = True,
) -> tuple[list[Lesion], np.ndarray]:
    """Lesions (highest score first, each with its ``detector_box``) and their label map ``[k, j, i]``."""
    kept = sorted((box for box in boxes if box.score >= threshold), key=lambda box: -box.score)
    found, label_map = from_labels(box_label_map(kept, volume), volume, [box.score for box in kept],
                                   min_volume_mm3, max_lesions, measure_surfaces)
    return [lesion.with_detector_box(kept[label - 1]) for lesion, label in found], label_map


def box_probability(lesions: Sequence[Lesion], label_map: np.ndarray) -> np.ndarray:
    """``[k, j, i]`` float32: each lesion's box score on its segment, else 0 (what a box model can give as a map)."""
    scores = np.zeros(len(lesions) + 1, np.float32)
    for lesion in lesions:
        scores[lesion.id] = lesion.confidence_max
    return scores[label_map]
