"""Sliding-window inference: device choice, precision, and the probability of 'lesion' on the model grid."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import LesionDetectError


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


def probabilities(
    network,
    image: np.ndarray,
    patch_size: tuple[int, int, int],
    overlap: float,
    batch_size: int,
    device: str,
    on_progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Lesion probability ``[x, y, z]`` float32 for a ``[C, x, y, z]`` image, by Gaussian-blended sliding windows."""
    import torch
    from monai.inferers import sliding_window_inference

    inputs = torch.from_numpy(np.ascontiguousarray(image))[None]
    roi = tuple(int(p) for p in patch_size)
    use_cuda = device.startswith("cuda")
    windows = _window_counter(on_progress, image.shape[1:], roi, overlap, batch_size)

    def predict(patch: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_cuda):
            logits = network(patch.to(device))
        windows()
        return _lesion_probability(logits.float())

    with torch.inference_mode():
        output = sliding_window_inference(
            inputs, roi_size=roi, sw_batch_size=batch_size, predictor=predict, overlap=overlap,
            mode="gaussian", padding_mode="constant", cval=0.0, sw_device=device, device="cpu",
        )
    return output[0, 0].numpy().astype(np.float32, copy=False)


def probabilities_with_fallback(network_for, image, patch_size, overlap, batch_size, device, on_progress=None,
                                warn: Callable[[str], None] = print) -> tuple[np.ndarray, str]:
    """`probabilities`, retrying on GPU out-of-memory with batch 1, then on the CPU; returns (map, device used)."""
    import torch

    attempts = [(device, batch_size)]
    if device.startswith("cuda"):
        attempts += [(device, 1)] if batch_size > 1 else []
        attempts += [("cpu", batch_size)]
    for where, batch in attempts[:-1]:
        try:
            return probabilities(network_for(where), image, patch_size, overlap, batch, where, on_progress), where
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            warn(f"out of GPU memory on {where} with sliding-window batch {batch}; retrying with less")
    where, batch = attempts[-1]
    return probabilities(network_for(where), image, patch_size, overlap, batch, where, on_progress), where


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
