"""Memory bounds and the GPU out-of-memory fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from LesionDetectLib.errors import LesionDetectError
from LesionDetectLib.infer import probabilities_with_fallback
from LesionDetectLib.networks import build_network
from LesionDetectLib.resources import check_memory, estimate_detect_bytes


def test_large_ct_estimate_fits_16_gib():
    """A 512×512×600 CT on a 1 mm model grid (say 360×360×750 mm) stays well inside 16 GB."""
    needed = estimate_detect_bytes((600, 512, 512), (360, 360, 750))
    assert needed < 8 * 2**30


def test_too_large_volume_is_refused_with_an_estimate():
    with pytest.raises(LesionDetectError, match=r"needs about \d+\.\d GiB"):
        check_memory((2000, 2000, 2000), (1000, 1000, 1000), available=4 * 2**30)
    check_memory((10, 10, 10), (10, 10, 10), available=4 * 2**30)


def test_out_of_memory_on_gpu_falls_back_with_a_warning(monkeypatch):
    """Simulated: the 'cuda' network raises OOM for any batch; the CPU retry succeeds and is reported."""
    calls, warnings = [], []
    cpu_network = build_network("IntensityThreshold", {"level": 0.0, "scale": 1.0})

    class ExhaustedGpuNetwork(torch.nn.Module):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    def network_for(device):
        calls.append(device)
        return cpu_network if device == "cpu" else ExhaustedGpuNetwork()

    image = np.zeros((1, 8, 8, 8), np.float32)
    import LesionDetectLib.infer as infer

    original = infer.probabilities

    def fake_probabilities(network, image, patch, overlap, batch, device, on_progress=None, flip_axes=()):
        return original(network, image, patch, overlap, batch, "cpu", on_progress)

    monkeypatch.setattr(infer, "probabilities", fake_probabilities)
    result, used = probabilities_with_fallback(network_for, image, (8, 8, 8), 0.0, 4, "cuda", warn=warnings.append)
    assert calls == ["cuda", "cuda", "cpu"] and used == "cpu"
    assert len(warnings) == 2 and "out of GPU memory" in warnings[0]
    np.testing.assert_allclose(result, 0.5)
