"""`training.copy_paste`: lesions copied from one case into another, inside its body."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_cases import tiny_recipe

from LesionDetectLib.training import load_dataset

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread


def test_a_lesion_is_pasted_inside_the_body_and_the_cache_is_not_modified(dataset):
    from LesionDetectLib.training.copy_paste import CopyPasted, lesion_bank
    from LesionDetectLib.training.transforms import cached_cases

    recipe = tiny_recipe(positive_fraction=1.0, samples_per_case=3)
    intensity = {"kind": "mr", "percentiles": [0.5, 99.5]}
    cases = cached_cases(load_dataset(dataset).training[:2], recipe, intensity, "MR", Path("unused"), 0)
    bank = lesion_bank([cases[0]], recipe.patch_size)
    assert len(bank) == 1 and bank[0].mask.sum() == int((cases[0]["label"] > 0).sum())
    untouched = cases[1]["image"].clone()
    target = {**cases[1], "label": torch.zeros_like(cases[1]["label"])}
    paste = CopyPasted(bank, prob=1.0, max_objects=1)
    paste.set_random_state(seed=1)
    pasted = paste(target)
    added = pasted["label"][0].numpy() > 0
    assert added.sum() > 0.5 * bank[0].mask.sum()
    assert cases[1]["body"][0].numpy()[added].mean() >= 0.9  # inside the body
    changed = (pasted["image"] != target["image"])[0].numpy()
    assert changed[added].all() or changed[added].mean() > 0.9
    assert torch.equal(cases[1]["image"], untouched)
