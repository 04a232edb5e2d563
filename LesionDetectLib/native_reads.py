"""How a native (ITK, GDCM) read is made safe: its stderr diagnostics silenced, its size checked against the memory
available before any voxel is read, and its errors turned into one-line `InputImageError`s."""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .cancellation import shielded
from .errors import InputImageError
from .resources import check_read_memory

_SILENCING = threading.RLock()  # fd 2 is the process's own: one silenced read at a time (DICOM reads re-enter)


def check_fits_in_memory(reader, source: Path, slices: int = 1) -> int:
    """Refuse, before reading voxels, an image whose header asks for more memory than is available."""
    import SimpleITK as sitk

    voxels = int(np.prod(reader.GetSize(), dtype=object)) * slices
    component = sitk.Image([1, 1], reader.GetPixelID(), max(1, reader.GetNumberOfComponents())).GetSizeOfPixelComponent()
    nbytes = voxels * max(1, reader.GetNumberOfComponents()) * component
    check_read_memory(nbytes, str(source))
    return nbytes


def itk_reason(error: RuntimeError) -> str:
    """The informative line of a SimpleITK exception (not its source location, object address or errno noise)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception thrown in SimpleITK")
             and line != "Reason: No such file or directory"]
    nrrd = [line.partition(": ")[2] for line in lines if line.startswith("[nrrd]") and line.partition(": ")[2]]
    reason = nrrd[-1] if nrrd else (lines[0] if lines else "unknown reason")
    reason = re.sub(r"^(ITK ERROR|itk::ERROR|sitk::ERROR):\s*(\w+\(0x[0-9a-fA-F]+\):\s*)?", "", reason)
    if reason.startswith("Unable to determine ImageIO reader"):
        reason = "unknown or corrupt image format"
    return reason[:200]


@contextmanager
def native_output_silenced() -> Iterator[None]:
    """ITK, NIfTI, MetaIO and GDCM print diagnostics on the process's own stderr: hide them during a read.

    Threads take turns (a second one would save the first one's /dev/null as the stderr to restore).
    """
    import SimpleITK as sitk

    with _SILENCING:
        warnings = sitk.ProcessObject.GetGlobalWarningDisplay()
        sitk.ProcessObject.SetGlobalWarningDisplay(False)
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            saved = None
        try:
            if saved is not None:
                with open(os.devnull, "wb") as null:
                    os.dup2(null.fileno(), 2)
            yield
        finally:
            with shielded():  # a signal must not leave stderr pointing at /dev/null
                if saved is not None:
                    os.dup2(saved, 2)
                    os.close(saved)
                sitk.ProcessObject.SetGlobalWarningDisplay(warnings)


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Silence the native readers, and turn their errors into one-line `InputImageError`s naming ``path``."""
    try:
        with native_output_silenced():
            yield
    except RuntimeError as error:
        raise InputImageError(f"{path}: not a readable image ({itk_reason(error)})") from None
    except OSError as error:
        raise InputImageError(f"{path}: cannot be read ({error.strerror or error})") from None
