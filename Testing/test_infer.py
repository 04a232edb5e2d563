"""`infer`: sliding-window inference, with test-time mirroring."""

from __future__ import annotations

import numpy as np
import torch

from LesionDetectLib import infer


class LeftBiasedNet(torch.nn.Module):
    """An asymmetric predictor: probability grows along x (logit = x index - centre)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.arange(x.shape[2], dtype=torch.float32) - (x.shape[2] - 1) / 2
        return ramp.view(1, 1, -1, 1, 1).expand(x.shape[0], 1, *x.shape[2:]).clone()


def test_test_time_mirroring_averages_a_window_and_its_mirror_image():
    image = np.random.default_rng(0).normal(size=(1, 16, 12, 10)).astype(np.float32)
    args = ((16, 12, 10), 0.0, 2, "cpu")
    plain = infer.probabilities(LeftBiasedNet(), image, *args)
    mirrored = infer.probabilities(LeftBiasedNet(), image, *args, flip_axes=(0,))
    assert plain[0, 0, 0] < 0.01 and plain[-1, 0, 0] > 0.99
    np.testing.assert_allclose(mirrored, 0.5, atol=1e-5)  # sigmoid(r) and sigmoid(-r) average to 1/2
    np.testing.assert_allclose(infer.probabilities(LeftBiasedNet(), image, *args, flip_axes=(1, 2)), plain, atol=1e-6)
