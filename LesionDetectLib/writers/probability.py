"""The lesion probability map as a compressed float32 NRRD on the input's exact grid (written by SimpleITK)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..volume import Volume
from .atomic import atomic_output


def write_probability(path: str | Path, volume: Volume, probability: np.ndarray) -> Path:
    """Write ``probability`` (``[k, j, i]``, 0–1) with ``volume``'s spacing, origin and direction."""
    import SimpleITK as sitk

    path = Path(path)
    probability = np.asarray(probability, dtype=np.float32)
    image = volume.with_array(probability, name=f"{volume.name} probability").to_sitk()
    with atomic_output(path) as temporary:  # the temporary name ends with .nrrd: SimpleITK writes NRRD
        try:
            sitk.WriteImage(image, str(temporary), useCompression=True)
        except RuntimeError as error:  # SimpleITK reports I/O failures (full disk, ...) as RuntimeError
            reason = str(error).strip().splitlines()[-1].rsplit(": ", 1)[-1]
            raise OutputError(f"cannot write {path}: {reason}") from error
    return path
