"""Sliding-window inference: device choice, precision, and the probability of 'lesion' on the model grid."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from .errors import LesionDetectError

# PyTorch's OpenMP threads spin while they wait for each other. When another process holds one of the cores,
# every operation then waits for the scheduler: 5-10x slower on the shared 2-core development machine
# (benchmarks/RESULTS.md). Passive waiting avoids it. It only takes effect before torch is imported, which in
# the CLI and in the Slicer module's detection process happens here; an OMP_WAIT_POLICY already set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
CPU_MIN_BATCH = 2


def resolve_device(device: str = "auto") -> str:
    """'auto' → 'cuda' when available else 'cpu'; 'cuda[:N]' is checked; anything else is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LesionDetectError(f"device {device!r} asked for, but no CUDA GPU is available; use --device cpu")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise LesionDetectError(f"no GPU {device!r}: {torch.cuda.device_count()} GPU(s) present")
        return device
    raise LesionDetectError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def default_batch_size(bundle_batch_size: int, device: str) -> int:
    """The bundle's sliding-window batch, and on the CPU at least ``CPU_MIN_BATCH``.

    PyTorch sends batch-1 3-D convolutions of small tensors to its slow reference path instead of oneDNN: 2.9x
    slower per window for the training recipe's UNet, no faster for a BasicUNet (benchmarks/RESULTS.md).
    """
    return max(bundle_batch_size, CPU_MIN_BATCH) if device == "cpu" else bundle_batch_size


def probabilities(
    network,
    image: np.ndarray,
    patch_size: tuple[int, int, int],
    overlap: float,
    batch_size: int,
    device: str,
    on_progress: Callable[[float], None] | None = None,
    foreground: np.ndarray | None = None,
    flip_axes: Sequence[int] = (),
) -> np.ndarray:
    """Lesion probability ``[x, y, z]`` float32 for a ``[C, x, y, z]`` image, by Gaussian-blended sliding windows.

    With a ``foreground`` mask ``[x, y, z]`` (the body or brain), windows without a foreground voxel are not run
    and predict 0. A foreground voxel lies only in windows that are run, so its probability is what the full
    sliding window gives; only background voxels shared with a skipped window can change, and only downwards.
    ``flip_axes`` (test-time augmentation): each window is also predicted mirrored along each of these axes of
    ``[x, y, z]``, mirrored back, and the probabilities are averaged.
    """
    import torch
    from monai.inferers import sliding_window_inference

    inputs = torch.from_numpy(_with_mask_channel(image, foreground))[None]
    roi = tuple(int(p) for p in patch_size)
    tick = _window_counter(on_progress, image.shape[1:], roi, overlap, batch_size)
    predict = _predictor(network, device, tick, masked=foreground is not None, flip_axes=flip_axes)
    with torch.inference_mode():
        output = sliding_window_inference(
            inputs, roi_size=roi, sw_batch_size=batch_size, predictor=predict, overlap=overlap,
            mode="gaussian", padding_mode="constant", cval=0.0, sw_device=device, device="cpu",
        )
    return output[0, 0].numpy().astype(np.float32, copy=False)


def _with_mask_channel(image: np.ndarray, foreground: np.ndarray | None) -> np.ndarray:
    """``image`` as contiguous float32, with the foreground mask appended as a last 0/1 channel when given."""
    if foreground is None:
        return np.ascontiguousarray(image, dtype=np.float32)
    stacked = np.empty((image.shape[0] + 1, *image.shape[1:]), np.float32)
    stacked[:-1] = image
    stacked[-1] = foreground
    return stacked


def _predictor(network, device: str, tick: Callable[[], None], masked: bool, flip_axes: Sequence[int] = ()):
    """The sliding window's predictor: probabilities of a batch of windows; with ``masked``, the input's last
    channel is the foreground mask, and windows without foreground are not run (probability 0); with
    ``flip_axes``, the mean over the window and its mirror images along those spatial axes."""
    import torch

    use_cuda = device.startswith("cuda")

    def once(patches: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_cuda):
            logits = network(patches)
        return _lesion_probability(logits.float())

    def run(patches: torch.Tensor) -> torch.Tensor:
        patches = patches.to(device)
        probability = once(patches)
        for axis in flip_axes:
            dims = (int(axis) + 2,)
            probability += torch.flip(once(torch.flip(patches, dims)), dims)
        return probability / (1 + len(flip_axes)) if flip_axes else probability

    def predict(windows: torch.Tensor) -> torch.Tensor:
        tick()
        if not masked:
            return run(windows)
        keep = windows[:, -1].flatten(1).any(dim=1)
        if bool(keep.all()):
            return run(windows[:, :-1])
        probability = torch.zeros((windows.shape[0], 1, *windows.shape[2:]), device=windows.device)
        if bool(keep.any()):
            probability[keep] = run(windows[keep, :-1])
        return probability

    return predict


def probabilities_with_fallback(network_for, image, patch_size, overlap, batch_size, device, on_progress=None,
                                warn: Callable[[str], None] = print,
                                foreground: np.ndarray | None = None,
                                flip_axes: Sequence[int] = ()) -> tuple[np.ndarray, str]:
    """`probabilities`, retrying on GPU out-of-memory with batch 1, then on the CPU; returns (map, device used)."""
    import torch

    attempts = [(device, batch_size)]
    if device.startswith("cuda"):
        attempts += [(device, 1)] if batch_size > 1 else []
        attempts += [("cpu", batch_size)]
    masking = {"flip_axes": flip_axes} if foreground is None else {"foreground": foreground, "flip_axes": flip_axes}
    for where, batch in attempts[:-1]:
        try:
            return probabilities(network_for(where), image, patch_size, overlap, batch, where, on_progress,
                                 **masking), where
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            warn(f"out of GPU memory on {where} with sliding-window batch {batch}; retrying with less")
    where, batch = attempts[-1]
    return probabilities(network_for(where), image, patch_size, overlap, batch, where, on_progress, **masking), where


def model_grid_probability(network_for, model_input, patch_size, overlap, batch_size, device, on_progress=None,
                           warn: Callable[[str], None] = print, flip_axes: Sequence[int] = ()) -> tuple[np.ndarray, str]:
    """The lesion probability of a `preprocess.ModelInput` on its grid, as `detect` and training validation
    compute it: windows with body/brain only, and 0 where the scan is constant padding; (map, device used)."""
    probability, device = probabilities_with_fallback(network_for, model_input.image, patch_size, overlap, batch_size,
                                                      device, on_progress, warn, foreground=model_input.foreground,
                                                      flip_axes=flip_axes)
    probability[~model_input.scanned] = 0.0
    return probability, device


def _lesion_probability(logits):
    """Sigmoid of one output channel, or the softmax probability of class 1 for two or more."""
    import torch

    if logits.shape[1] == 1:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)[:, 1:2]


def _window_counter(on_progress, shape, roi, overlap, batch_size) -> Callable[[], None]:
    """A callback counting predicted batches and reporting the fraction done."""
    steps = [max(1, int(np.ceil((s - r) / max(1, round(r * (1 - overlap))))) + 1) if s > r else 1
             for s, r in zip(shape, roi)]
    total = max(1, int(np.ceil(np.prod(steps) / batch_size)))
    done = [0]

    def tick() -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress(min(1.0, done[0] / total))

    return tick
