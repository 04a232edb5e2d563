"""Seeding and RNG states of a training run: each epoch re-seeds Python, NumPy and torch from (seed, epoch, rank),
so that a run resumed from the checkpoint of epoch e draws exactly the batches and augmentations an uninterrupted
run draws; `rng_states` and `set_rng_states` carry the generators' states through a checkpoint.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch on one rank (distinct, reproducible)."""
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**31 - 1)


def seed_epoch(seed: int, epoch: int, rank: int) -> torch.Generator:
    """Re-seed Python, NumPy and torch for an epoch; returns the generator that orders its batches."""
    value = epoch_seed(seed, epoch, rank)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
    generator = torch.Generator()
    generator.manual_seed(value)
    return generator


def rng_states() -> dict[str, Any]:
    """Python, NumPy and torch RNG states in a form ``torch.load(weights_only=True)`` reads back."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {
        "python": random.getstate(), "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore the states `rng_states` returned (CUDA's only where CUDA is available)."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
