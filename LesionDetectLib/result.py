"""`DetectionResult`: what `detect` returns — lesions, label map and probabilities on the input grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .lesions import Lesion
from .volume import Volume


@dataclass(eq=False)
class DetectionResult:
    """Lesions found in ``volume``; arrays are ``[k, j, i]`` on the input's exact grid."""

    volume: Volume
    lesions: list[Lesion]
    label_map: np.ndarray
    probability: np.ndarray
    threshold: float
    model_name: str
    settings: dict[str, object] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def write(
        self,
        out_dir: str | Path,
        stem: str | None = None,
        save_probability: bool = False,
        surface_format: str | None = None,
    ) -> dict[str, Path]:
        """Write seg.nrrd, mrk.json, lesions.csv/json (+ probability, surfaces) atomically into ``out_dir``."""
        from .writers import write_all

        return write_all(
            self, Path(out_dir), stem or self.volume.name, save_probability=save_probability,
            surface_format=surface_format,
        )
