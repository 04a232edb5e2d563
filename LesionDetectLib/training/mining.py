"""Hard-negative mining: where the network being trained fires on a training case outside its lesions.

Every ``mining_interval`` epochs the current network predicts each training case (on the model grid, through
the sliding window of `infer.probabilities`); voxels of the body with probability ≥ 0.5 that lie more than
`LESION_MARGIN` voxels from any lesion become that case's hard negatives, and ``hard_negative_fraction`` of
the next patches are centred on them (`transforms.centre_ratios`). Only training cases are mined, so a fold's
validation cases stay unseen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import infer
from .keys import BODY, IMAGE, LABEL
from .recipe import Recipe

FIRING_PROBABILITY = 0.5
LESION_MARGIN = 2  # voxels: the rim of a lesion is not a hard negative (outlines there are uncertain)


def near_lesion(label: torch.Tensor, margin: int = LESION_MARGIN) -> torch.Tensor:
    """``label > 0`` grown by ``margin`` voxels in every direction (a cube), ``[1, x, y, z]`` bool."""
    size = 2 * margin + 1
    grown = torch.nn.functional.max_pool3d((label > 0).float()[None], size, stride=1, padding=margin)
    return grown[0] > 0


def mine_case(network, item: dict, recipe: Recipe, device: str) -> torch.Tensor:
    """The hard-negative mask ``[1, x, y, z]`` uint8 of one prepared case."""
    body = item[BODY][0].numpy() > 0
    probability = infer.probabilities(
        network, item[IMAGE].numpy(), tuple(recipe.patch_size), recipe.overlap, max(2, recipe.sw_batch_size),
        device, foreground=body,
    )
    firing = torch.from_numpy((probability >= FIRING_PROBABILITY) & body)[None]
    return (firing & ~near_lesion(item[LABEL])).to(torch.uint8)


def mine(network, cases: Sequence[dict], recipe: Recipe, device: str) -> dict[str, torch.Tensor]:
    """Case id → hard-negative mask for every case with at least one (evaluation mode; training mode restored)."""
    was_training = network.training
    network.eval()
    try:
        masks = {item["case"]: mine_case(network, item, recipe, device) for item in cases}
    finally:
        network.train(was_training)
    return {case: mask for case, mask in masks.items() if bool(mask.any())}


def describe(masks: dict[str, torch.Tensor], cases: int) -> str:
    voxels = sum(int(mask.sum()) for mask in masks.values())
    return f"hard negatives: {voxels} voxels in {len(masks)} of {cases} training cases"

