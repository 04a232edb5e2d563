"""Memory bounds: refuse a volume the machine cannot hold, with an estimate, instead of being killed."""

from __future__ import annotations

import math
import os

import numpy as np

from .errors import InputImageError, LesionDetectError

BYTES_PER_INPUT_VOXEL = 4 * 4 + 2  # probability, resample scratch, label map and a float copy, per input voxel
BYTES_PER_MODEL_VOXEL = 4 * 4  # normalised image, blending weights, output sum and count, per model voxel
# The network's activations per voxel of each window of a sliding-window batch, on the CPU: 65-98 bytes for the
# shipped UNet, 682-693 for a 16-feature BasicUNet (benchmarks/window_memory.py, RESULTS.md), with a margin.
BYTES_PER_WINDOW_VOXEL = 768
SKIP_ENV = "LESIONDETECT_SKIP_MEMORY_CHECK"
# Resampling a real scan to a model's spacing changes its voxel count a few-fold (thick slices, an oblique
# slab: < 100-fold); a thousand-fold growth means a handful of voxels spread over metres.
MAX_UPSAMPLING, MIN_GRID_CHECKED = 1000, 2**20
# Outputs are compressed: bytes per voxel somewhat below what the shipped brain MR's outputs take (label map
# 0.002, probability map about 1), so that a run is refused early only when its outputs would clearly not fit.
LABEL_MAP_BYTES_PER_VOXEL, PROBABILITY_BYTES_PER_VOXEL, OUTPUT_FIXED_BYTES = 1 / 1024, 0.5, 2**20


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


def sliding_windows(grid_size, patch_size, overlap: float) -> int:
    """How many windows of ``patch_size`` with ``overlap`` cover ``grid_size`` (as MONAI's sliding window places
    them; a grid smaller than the patch is padded to it)."""
    steps = [1 if g <= p else math.ceil((g - p) / max(1, int(p * (1 - overlap)))) + 1
             for g, p in zip(grid_size, patch_size)]
    return math.prod(steps)


def estimate_detect_bytes(input_shape: tuple[int, ...], model_grid_size: tuple[int, ...],
                          patch_size: tuple[int, ...] = (1, 1, 1), batch_size: int = 1, overlap: float = 0.0) -> int:
    """A conservative estimate of the peak RAM `detect` needs beyond the input itself: per input voxel, per voxel of
    the model's grid (padded to at least one patch), and the network's activations for one sliding-window batch."""
    padded = [max(int(g), int(p)) for g, p in zip(model_grid_size, patch_size)]
    windows = min(batch_size, sliding_windows(padded, patch_size, overlap))
    return (math.prod(int(n) for n in input_shape) * BYTES_PER_INPUT_VOXEL
            + math.prod(padded) * BYTES_PER_MODEL_VOXEL
            + windows * math.prod(int(p) for p in patch_size) * BYTES_PER_WINDOW_VOXEL)


def check_memory(input_shape, model_grid_size, patch_size=(1, 1, 1), batch_size: int = 1, overlap: float = 0.0,
                 available: int | None = None) -> None:
    """Raise `LesionDetectError` when the estimate exceeds the memory available now (the model's patch size and
    sliding-window batch included: a large patch costs its memory even on a small input).

    Also refuses (`InputImageError`) a volume whose few voxels spread over so much space that the model's grid
    would be more than `MAX_UPSAMPLING` times larger: an implausible spacing or direction, and hours of work.
    """
    input_voxels = int(np.prod(input_shape, dtype=np.int64))
    grid_voxels = int(np.prod(model_grid_size, dtype=np.int64))
    if grid_voxels > max(MAX_UPSAMPLING * input_voxels, MIN_GRID_CHECKED):
        raise InputImageError(
            f"this volume's {input_voxels} voxels span {grid_voxels} voxels of the model's grid "
            f"({grid_voxels // max(1, input_voxels)} times more): its voxel spacing or direction is implausible"
        )
    available = available_memory_bytes() if available is None else available
    needed = estimate_detect_bytes(input_shape, model_grid_size, patch_size, batch_size, overlap)
    if os.environ.get(SKIP_ENV) or available is None or needed <= available:
        return
    raise LesionDetectError(
        f"this volume needs about {needed / 2**30:.1f} GiB of memory but {available / 2**30:.1f} GiB is available "
        f"(model patch {'×'.join(str(int(p)) for p in patch_size)}, sliding-window batch {batch_size}); "
        "close other programs, crop the volume, use a smaller --batch-size or a model with a coarser spacing"
    )


def check_read_memory(voxel_bytes: int, source: str, available: int | None = None) -> None:
    """Raise `InputImageError` when an image whose header declares ``voxel_bytes`` of voxels cannot be read.

    Reading holds the voxels twice (ITK's buffer and the NumPy copy). Checked before any voxel is read, so a
    corrupt header declaring a gigantic image is refused instead of exhausting the machine.
    """
    available = available_memory_bytes() if available is None else available
    needed = 2 * voxel_bytes
    if os.environ.get(SKIP_ENV) or available is None or needed <= available:
        return
    raise InputImageError(
        f"{source}: reading this image needs about {needed / 2**30:.1f} GiB of memory but {available / 2**30:.1f} GiB "
        "is available (a volume too large for this machine, or a corrupt header)"
    )


def estimate_output_bytes(voxel_count: int, save_probability: bool = False) -> int:
    """Disk space one case's outputs typically take, erring low (label map, tables, point list, probability map)."""
    per_voxel = LABEL_MAP_BYTES_PER_VOXEL + (PROBABILITY_BYTES_PER_VOXEL if save_probability else 0.0)
    return int(voxel_count * per_voxel) + OUTPUT_FIXED_BYTES
