"""Measuring: stage timers, the network's share of the sliding window, peak memory, FLOPs and the hardware peak."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Stages:
    """Wall-clock seconds per named stage, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def time(self, name: str, device: str = "cpu") -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so that wall-clock times are the GPU's."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def timed_network(network, device: str):
    """``network`` wrapped to count its calls, patches and seconds (the sliding window's network share)."""
    import torch

    class Timed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = network
            self.seconds, self.calls, self.patches = 0.0, 0, 0

        def forward(self, x):
            synchronize(device)
            start = time.perf_counter()
            out = self.inner(x)
            synchronize(device)
            self.seconds += time.perf_counter() - start
            self.calls += 1
            self.patches += int(x.shape[0])
            return out

    return Timed()


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM: numpy, torch and ITK allocations all count)."""
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def peak_gpu_bytes(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return int(torch.cuda.max_memory_allocated(device))


def flops_per_voxel(network, patch_size, device: str = "cpu") -> float:
    """FLOPs of one forward pass over a ``patch_size`` patch (batch 1) per patch voxel, by PyTorch's counter.

    Counts convolutions and matrix products (2 FLOPs per multiply-add); normalisations and activations are not
    counted, they are a few FLOPs per voxel and channel. Convolution cost grows with the voxel count, so a
    smaller patch gives the same per-voxel figure for the large networks.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    patch = torch.zeros((1, 1, *patch_size), device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(patch)
    return counter.get_total_flops() / float(patch[0, 0].numel())


def peak_flops(device: str = "cpu", repeats: int = 8) -> dict[str, float]:
    """The device's float32 rate (FLOP/s) on large matrix products: ``torch.mm`` of 4096² matrices (MKL or
    cuBLAS) and a 3×3×3 convolution of 128 channels on 32³ voxels (oneDNN or cuDNN, an implicit matrix product).

    ``best`` is the larger of the two best-of-``repeats`` rates: the measured peak that fractions refer to.
    """
    import torch
    import torch.nn.functional as F

    a, b = torch.randn(4096, 4096, device=device), torch.randn(4096, 4096, device=device)
    x, w = torch.randn(1, 128, 32, 32, 32, device=device), torch.randn(128, 128, 3, 3, 3, device=device)
    with torch.inference_mode():
        matmul = _rates(lambda: torch.mm(a, b), 2.0 * 4096**3, device, repeats)
        conv = _rates(lambda: F.conv3d(x, w, padding=1), 2.0 * 128 * 128 * 27 * 32**3, device, repeats)
    return {"best": max(max(matmul), max(conv)), "matmul_best": max(matmul), "matmul_median": statistics.median(matmul),
            "conv_best": max(conv), "conv_median": statistics.median(conv)}


def _rates(operation, flops: float, device: str, repeats: int) -> list[float]:
    operation()
    rates = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        operation()
        synchronize(device)
        rates.append(flops / (time.perf_counter() - start))
    return rates
