"""`DetectionResult`: what `detect` returns — lesions, label map and probabilities on the input grid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .lesions import Lesion
from .volume import Volume


class ComputedOnFirstUse:
    """A dataclass field holding an array, or a function that makes it: called on first read, then kept."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.stored = f"_{name}"

    def __get__(self, instance, owner=None) -> np.ndarray:
        if instance is None:
            raise AttributeError(self.stored)  # (tells `dataclass` that the field has no default)
        value = getattr(instance, self.stored)
        if callable(value):
            value = value()
            setattr(instance, self.stored, value)
        return value

    def __set__(self, instance, value: np.ndarray | Callable[[], np.ndarray]) -> None:
        setattr(instance, self.stored, value)


@dataclass(eq=False)
class DetectionResult:
    """Lesions found in ``volume``; arrays are ``[k, j, i]`` on the input's exact grid.

    ``probability`` may be given as a function that computes it: `detect` resamples the full-resolution map
    only when something reads it (``save_probability``), since finding the lesions needs only their boxes.
    """

    volume: Volume
    lesions: list[Lesion]
    label_map: np.ndarray
    probability: np.ndarray = ComputedOnFirstUse()  # noqa: RUF009 (a descriptor, not a shared default)
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
            Path(out_dir), stem or self.volume.name, self.volume, self.label_map, self.lesions,
            model_name=self.model_name, threshold=self.threshold, settings=self.settings, warnings=self.warnings,
            probability=(lambda: self.probability) if save_probability else None, surface_format=surface_format,
        )
