"""Output files of one case, written all-or-nothing.

For stem ``CT`` in ``out_dir``: ``CT.seg.nrrd`` (Slicer segmentation), ``CT.mrk.json`` (Slicer point list),
``CT.lesions.csv`` and ``CT.lesions.json`` (lesion table), and optionally ``CT.probability.nrrd`` and
``CT.surfaces/lesion_001.vtp|stl``; for a box detector's lesions also ``CT.boxes.mrk.json`` (Slicer ROIs) and
the table's box columns. Every output is first written under a temporary name and all are moved
into place together (`atomic.staged_outputs`); an optional output not requested this time is removed, so the
folder never mixes files of two runs. Each ``write_*`` function on its own also writes atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..lesions import Lesion
from ..volume import Volume
from .atomic import atomic_output, check_writable, staged_outputs, write_staged
from .markups import BOXES_SUFFIX, write_boxes, write_points
from .probability import write_probability
from .segmentation import write_segmentation
from .surfaces import SURFACE_FORMATS, write_surfaces
from .table import write_table_csv, write_table_json

__all__ = [
    "SURFACE_FORMATS", "atomic_output", "check_writable", "output_paths", "staged_outputs", "write_all",
    "write_boxes", "write_points", "write_probability", "write_segmentation", "write_staged", "write_surfaces", "write_table_csv",
    "write_table_json",
]


def output_paths(out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Where each output of ``stem`` goes (keys as returned by `write_all`)."""
    out_dir = Path(out_dir)
    return {
        "segmentation": out_dir / f"{stem}.seg.nrrd",
        "points": out_dir / f"{stem}.mrk.json",
        "boxes": out_dir / f"{stem}{BOXES_SUFFIX}",
        "table_csv": out_dir / f"{stem}.lesions.csv",
        "table_json": out_dir / f"{stem}.lesions.json",
        "probability": out_dir / f"{stem}.probability.nrrd",
        "surfaces": out_dir / f"{stem}.surfaces",
    }


def write_all(
    out_dir: str | Path,
    stem: str,
    volume: Volume,
    label_map: np.ndarray,
    lesions: Sequence[Lesion],
    *,
    model_name: str,
    threshold: float,
    settings: dict[str, Any],
    warnings: Sequence[str],
    probability: Callable[[], np.ndarray] | None = None,
    surface_format: str | None = None,
) -> dict[str, Path]:
    """Write every output of one case into ``out_dir``; returns the written paths by kind.

    ``label_map`` is ``[k, j, i]`` on ``volume``'s grid, and so is the map ``probability()`` returns (written when
    given; called only once ``out_dir`` is known to be writable, since it may resample the whole volume); the model
    name, threshold, settings and warnings go into the ``.lesions.json``.
    """
    if not stem or Path(stem).name != stem or stem in (".", ".."):
        raise ValueError(f"output stem must be a plain file name, not {stem!r}")
    if surface_format is not None and surface_format not in SURFACE_FORMATS:
        raise ValueError(f"surface format must be one of {', '.join(SURFACE_FORMATS)}, not {surface_format!r}")
    out_dir = Path(out_dir)
    check_writable(out_dir)
    paths = output_paths(out_dir, stem)
    with staged_outputs(out_dir) as staging:
        write_staged(staging, paths["segmentation"], lambda path: write_segmentation(path, volume, label_map, lesions))
        write_staged(staging, paths["points"], lambda path: write_points(path, lesions, volume.name))
        box_columns = {lesion.id: lesion.detector_box.table_columns() for lesion in lesions if lesion.detector_box}
        write_staged(staging, paths["table_csv"], lambda path: write_table_csv(path, lesions, box_columns))
        write_staged(staging, paths["table_json"], lambda path: write_table_json(
            path, volume, lesions, model_name=model_name, threshold=threshold, settings=settings, warnings=warnings,
            extra=box_columns))
        if box_columns:
            write_staged(staging, paths["boxes"], lambda path: write_boxes(path, lesions, volume.name))
        else:
            staging.remove(paths["boxes"])
        if probability is not None:
            write_staged(staging, paths["probability"], lambda path: write_probability(path, volume, probability()))
        else:
            staging.remove(paths["probability"])
        if surface_format is not None:
            write_staged(staging, paths["surfaces"],
                         lambda path: write_surfaces(path, volume, label_map, lesions, surface_format), True)
        else:
            staging.remove(paths["surfaces"])
    skipped = {"probability": probability is None, "surfaces": surface_format is None, "boxes": not box_columns}
    return {kind: path for kind, path in paths.items() if not skipped.get(kind, False)}
