"""Memory bounds: refuse a volume the machine cannot hold, with an estimate, instead of being killed."""

from __future__ import annotations

import os

import numpy as np

from .errors import LesionDetectError

BYTES_PER_INPUT_VOXEL = 4 * 4 + 2  # probability, resample scratch, label map and a float copy, per input voxel
BYTES_PER_MODEL_VOXEL = 4 * 4  # normalised image, blending weights, output sum and count, per model voxel


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None (unknown: no check)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def estimate_detect_bytes(input_shape: tuple[int, ...], model_grid_size: tuple[int, ...]) -> int:
    """A conservative estimate of the peak RAM `detect` needs beyond the input itself."""
    return int(np.prod(input_shape, dtype=np.int64)) * BYTES_PER_INPUT_VOXEL + int(
        np.prod(model_grid_size, dtype=np.int64)
    ) * BYTES_PER_MODEL_VOXEL


def check_memory(input_shape, model_grid_size, available: int | None = None) -> None:
    """Raise `LesionDetectError` when the estimate exceeds the memory available now."""
    available = available_memory_bytes() if available is None else available
    needed = estimate_detect_bytes(input_shape, model_grid_size)
    if os.environ.get("LESIONDETECT_SKIP_MEMORY_CHECK") or available is None or needed <= available:
        return
    raise LesionDetectError(
        f"this volume needs about {needed / 2**30:.1f} GiB of memory but {available / 2**30:.1f} GiB is available; "
        "close other programs, crop the volume, or use a model with a coarser spacing"
    )
