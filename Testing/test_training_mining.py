"""`training.mining`: hard negatives, where the network fires outside the lesions."""

from __future__ import annotations

import torch
from training_cases import mined_case

from LesionDetectLib.training import mining
from LesionDetectLib.training import transforms as T
from LesionDetectLib.training.recipe import Recipe


class BrightnessNet(torch.nn.Module):
    """Fires (logit +10) wherever the image is above 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x[:, :1] > 0.5, 10.0, -10.0)


def test_mining_finds_where_the_network_fires_outside_the_lesions():
    item = mined_case(hard=False)
    item[T.IMAGE][:, 28:34, 28:34, 28:34] = 1.0  # a bright non-lesion block
    item[T.IMAGE][:, 9:11, 5:9, 5:9] = 1.0  # bright rim touching the lesion: within the margin, not a negative
    recipe = Recipe(patch_size=(16, 16, 16), overlap=0.25)
    masks = mining.mine(BrightnessNet(), [item], recipe, "cpu")
    mask = masks["c"][0].bool()
    assert mask[28:34, 28:34, 28:34].all()
    assert int(mask.sum()) == 6**3
    assert not mining.mine(BrightnessNet(), [mined_case(hard=False)], recipe, "cpu")  # fires on the lesion only
