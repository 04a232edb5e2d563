"""What training minimises and how fast: the loss (Dice + cross-entropy or Dice + focal) and the learning-rate
schedule (linear warm-up, then a cosine decay to ``min_lr_ratio`` of the peak at the last step), both from the
recipe.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .recipe import Recipe


def make_loss(name: str, out_channels: int):
    """Dice + cross-entropy or Dice + focal loss; sigmoid for one output channel, softmax for more."""
    from monai.losses import DiceCELoss, DiceFocalLoss

    options = {"sigmoid": True} if out_channels == 1 else {"softmax": True, "to_onehot_y": True}
    loss = DiceCELoss if name == "dicece" else DiceFocalLoss
    return loss(batch=True, smooth_nr=1e-5, smooth_dr=1e-5, **options)


def lr_factor(recipe: Recipe, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up over ``warmup_epochs``, then a cosine from 1 to ``min_lr_ratio`` at the last step."""
    warmup = recipe.warmup_epochs * recipe.iterations_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
