"""`training.mining`: hard negatives, where the network fires outside the lesions."""

from __future__ import annotations

import torch

from LesionDetectLib.training import mining
from LesionDetectLib.training import transforms as T
from LesionDetectLib.training.recipe import Recipe

SHAPE = (40, 40, 40)


def _item(hard: bool = True) -> dict:
    """A prepared case: image = 1 on the hard-negative block, 2 on the lesion block, 0 elsewhere in the body
    (the hard-negative mask under "hard", as mining would give it)."""
    image = torch.zeros((1, *SHAPE))
    label = torch.zeros((1, *SHAPE), dtype=torch.uint8)
    body = torch.zeros((1, *SHAPE), dtype=torch.uint8)
    body[:, 2:38, 2:38, 2:38] = 1
    label[:, 5:9, 5:9, 5:9] = 1
    image[label > 0] = 2.0
    item = {"case": "c", T.IMAGE: image, T.LABEL: label, T.BODY: body}
    if hard:
        mask = torch.zeros((1, *SHAPE), dtype=torch.uint8)
        mask[:, 28:34, 28:34, 28:34] = 1
        image[mask > 0] = 1.0
        item["hard"] = mask
    return item


class BrightnessNet(torch.nn.Module):
    """Fires (logit +10) wherever the image is above 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x[:, :1] > 0.5, 10.0, -10.0)


def test_mining_finds_where_the_network_fires_outside_the_lesions():
    item = _item(hard=False)
    item[T.IMAGE][:, 28:34, 28:34, 28:34] = 1.0  # a bright non-lesion block
    item[T.IMAGE][:, 9:11, 5:9, 5:9] = 1.0  # bright rim touching the lesion: within the margin, not a negative
    recipe = Recipe(patch_size=(16, 16, 16), overlap=0.25)
    masks = mining.mine(BrightnessNet(), [item], recipe, "cpu")
    mask = masks["c"][0].bool()
    assert mask[28:34, 28:34, 28:34].all()
    assert int(mask.sum()) == 6**3
    assert not mining.mine(BrightnessNet(), [_item(hard=False)], recipe, "cpu")  # fires on the lesion only
