"""The lesion probability map as a compressed float32 NRRD on the input's exact grid (written by SimpleITK)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import OutputError
from .atomic import atomic_output

if TYPE_CHECKING:
    from ..result import DetectionResult


def write_probability(path: str | Path, result: DetectionResult) -> Path:
    """Write ``result.probability`` (``[k, j, i]``, 0–1) with the input volume's spacing, origin and direction."""
    import SimpleITK as sitk

    path = Path(path)
    probability = np.asarray(result.probability, dtype=np.float32)
    image = result.volume.with_array(probability, name=f"{result.volume.name} probability").to_sitk()
    with atomic_output(path) as temporary:  # the temporary name ends with .nrrd: SimpleITK writes NRRD
        try:
            sitk.WriteImage(image, str(temporary), useCompression=True)
        except RuntimeError as error:  # SimpleITK reports I/O failures (full disk, ...) as RuntimeError
            reason = str(error).strip().splitlines()[-1].rsplit(": ", 1)[-1]
            raise OutputError(f"cannot write {path}: {reason}") from error
    return path
