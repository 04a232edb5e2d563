"""`training.transforms`: training arrays prepared as for inference, patch centres by class (lesion, mined hard
negative, normal body), centre jitter, thick-slice and MR appearance augmentation."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from training_cases import MINED_SHAPE, mined_case, tiny_recipe

from LesionDetectLib import read_volume
from LesionDetectLib.training import transforms as T
from LesionDetectLib.training.dataset import load_dataset
from LesionDetectLib.training.recipe import Recipe


def _centre_values(recipe: Recipe, item: dict, draws: int = 12) -> list[float]:
    hard = {"c": item.pop("hard")} if "hard" in item else {}
    cases = T.RepeatedCases([item], draws, hard)
    chain = T.random_transforms(recipe)
    chain.set_random_state(seed=3)
    centre = tuple(p // 2 for p in recipe.patch_size)
    return [float(patch[T.IMAGE][(0, *centre)]) for n in range(draws) for patch in chain(cases[n])]


def test_patches_are_centred_on_each_class_as_the_recipe_says():
    plain = Recipe(patch_size=(8, 8, 8), affine=False, flip=False, intensity_augment=False, samples_per_case=2)
    assert set(_centre_values(plain.updated(positive_fraction=0.0, hard_negative_fraction=1.0), mined_case())) == {1.0}
    assert set(_centre_values(plain.updated(positive_fraction=1.0), mined_case())) == {2.0}
    normal = _centre_values(plain.updated(positive_fraction=0.0, hard_negative_fraction=0.0), mined_case())
    assert normal.count(0.0) > 0.8 * len(normal)
    # nothing mined yet: the hard-negative share goes to the other classes, and no error
    values = _centre_values(plain.updated(positive_fraction=0.5, hard_negative_fraction=0.5), mined_case(hard=False))
    assert set(values) <= {0.0, 2.0} and 2.0 in values


def _lesion_offsets(recipe: Recipe, draws: int = 16) -> set[tuple[int, ...]]:
    """Where a one-voxel lesion lands in its patches, relative to the patch centre."""
    item = mined_case(hard=False)
    item[T.LABEL].zero_()
    item[T.LABEL][0, 20, 20, 20] = 1
    chain = T.random_transforms(recipe)
    chain.set_random_state(seed=5)
    cases = T.RepeatedCases([item], draws)
    centre = np.array(recipe.patch_size) // 2
    return {tuple(np.argwhere(patch[T.LABEL][0].numpy() > 0)[0] - centre)
            for n in range(draws) for patch in chain(cases[n])}


def test_centre_jitter_moves_lesions_off_the_patch_centre_within_its_bound():
    plain = Recipe(patch_size=(16, 16, 16), affine=False, flip=False, intensity_augment=False,
                   positive_fraction=1.0, samples_per_case=2)
    assert _lesion_offsets(plain) == {(0, 0, 0)}
    jittered = _lesion_offsets(plain.updated(centre_jitter=0.5))
    assert len(jittered) > 8
    assert max(abs(offset) for offsets in jittered for offset in offsets) <= 4  # 0.5 of a half side of 16
    with pytest.raises(Exception, match="centre jitter"):
        plain.updated(centre_jitter=1.0).check()


def test_patch_centres_follow_the_current_hard_negatives():
    hard: dict[str, torch.Tensor] = {}
    cases = T.RepeatedCases([mined_case(hard=False)], 3, hard)
    cases.prepare()
    outside, normal, mined, lesion = cases[0][T.CENTRES]
    assert len(mined) == 0 and len(lesion) == 4**3 and len(outside) + len(normal) + len(lesion) == 40**3
    hard["c"] = mined_case()["hard"]
    assert len(cases[2][T.CENTRES][T.HARD_NEGATIVE]) == 6**3
    assert set(cases[1]) == {"case", T.IMAGE, T.LABEL, T.CENTRES}  # whole-volume masks stay out of the crops


def test_thick_slices_blur_one_axis_and_keep_the_label():
    image = torch.zeros((1, 16, 16, 16))
    image[:, :, :, ::2] = 1.0  # stripes along z
    transform = T.RandThickSlicesd(keys=T.IMAGE, prob=1.0, max_factor=4.0)
    transform.set_random_state(seed=0)
    label = torch.ones((1, 16, 16, 16))
    changed = 0
    for _ in range(12):
        out = transform({T.IMAGE: image, T.LABEL: label})
        assert out[T.IMAGE].shape == image.shape and out[T.LABEL] is label
        if not torch.equal(out[T.IMAGE], image):  # z drawn: the stripes are averaged away, slab by slab
            changed += 1
            assert float(out[T.IMAGE].std()) < 0.5 * float(image.std())
        assert float(out[T.IMAGE].mean()) == pytest.approx(0.5, abs=0.1)
    assert 1 <= changed < 12  # x and y (uniform along themselves) come out unchanged


def test_heavy_augmentation_changes_appearance_not_labels():
    item = mined_case(hard=False)
    item[T.IMAGE] = item[T.IMAGE] + torch.randn(1, *MINED_SHAPE) * 0.1
    item = T.RepeatedCases([item], 1)[0]
    recipe = Recipe(patch_size=(16, 16, 16), affine=False, flip=False, heavy_augment=True, samples_per_case=1)
    chain = T.random_transforms(recipe)
    chain.set_random_state(seed=1)
    reference = T.random_transforms(recipe.updated(heavy_augment=False))
    reference.set_random_state(seed=1)
    assert len(chain.transforms) == len(reference.transforms) + len(T.heavy_intensity_transforms())
    patch = chain(item)[0]
    assert patch[T.IMAGE].shape == (1, 16, 16, 16) and set(patch[T.LABEL].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.usefixtures("one_thread")
def test_training_arrays_are_the_inference_preprocessing(dataset):
    from LesionDetectLib import preprocess
    from LesionDetectLib.training.transforms import prepare_case

    case = load_dataset(dataset).training[0]
    intensity = {"kind": "mr", "percentiles": [0.5, 99.5]}
    image, label, body = prepare_case(case.image, case.label, (1.5, 1.5, 1.5), intensity)
    spec = argparse.Namespace(spacing=[1.5, 1.5, 1.5], intensity=intensity)
    expected = preprocess.prepare_input(read_volume(case.image), spec).image
    np.testing.assert_array_equal(image, expected)
    assert label.shape == body.shape == expected.shape and set(np.unique(label)) == {0, 1}
    assert body[label > 0].all()  # the lesion lies inside the body mask
    assert 0 < body.mean() < 1


@pytest.mark.usefixtures("one_thread")
def test_random_patches_are_centred_on_the_lesion_and_leave_the_cache_unmodified(dataset):
    from LesionDetectLib.training.transforms import RepeatedCases, cached_cases, random_transforms

    recipe = tiny_recipe(positive_fraction=1.0, samples_per_case=3)
    intensity = {"kind": "mr", "percentiles": [0.5, 99.5]}
    cases = cached_cases(load_dataset(dataset).training[:2], recipe, intensity, "MR", Path("unused"), 0)
    before = cases[0]["image"].clone()
    chain = random_transforms(recipe)
    chain.set_random_state(seed=0)
    patches = chain(RepeatedCases(cases, 2)[0])
    assert len(patches) == 3
    for patch in patches:
        assert set(patch) == {"image", "label"} and tuple(patch["image"].shape) == (1, 24, 24, 24)
        assert patch["image"].dtype == torch.float32 and patch["label"].sum() > 0  # centred on the lesion
    assert torch.equal(cases[0]["image"], before)  # the cache is never modified
