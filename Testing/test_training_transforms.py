"""Training for small data sets: patient-level splits, dataset filters, patch centres by class (lesion, mined
hard negative, normal body), hard-negative mining, MR appearance augmentation and test-time mirroring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from LesionDetectLib import infer
from LesionDetectLib.errors import DatasetError
from LesionDetectLib.training import mining
from LesionDetectLib.training import transforms as T
from LesionDetectLib.training.dataset import Case, LabelledDataset, load_dataset
from LesionDetectLib.training.recipe import Recipe
from LesionDetectLib.training.splits import fold_assignment, split_cases

SHAPE = (40, 40, 40)


def test_scans_of_one_patient_always_share_a_fold():
    cases = [Case(f"p{p}_t{t}", Path("i"), Path("l"), source="AB"[p % 2], patient=f"p{p}")
             for p in range(6) for t in range(2)]
    cases += [Case("single", Path("i"), Path("l"), source="A")]
    for seed in range(5):
        folds = fold_assignment(cases, 3, seed)
        for p in range(6):
            assert folds[f"p{p}_t0"] == folds[f"p{p}_t1"]
        assert sorted(set(folds.values())) == [0, 1, 2]
    dataset = LabelledDataset("d", Path("d.json"), tuple(cases))
    split = split_cases(dataset, val_fraction=0.3, seed=1)
    validated = {case.patient_id for case in split.validation}
    assert validated and not validated & {case.patient_id for case in split.training}
    with pytest.raises(DatasetError, match="patients"):
        split_cases(LabelledDataset("d", Path("d.json"), tuple(cases[:4])), folds=3, fold=0)


def test_filters_keep_only_matching_datalist_items(tmp_path):
    items = [{"image": f"i{n}.nii.gz", "label": f"l{n}.nii.gz", "case": f"c{n}", "lesion_type": kind}
             for n, kind in enumerate(["glioma", "multiple sclerosis", "multiple sclerosis"])]
    path = tmp_path / "datalist.json"
    path.write_text(__import__("json").dumps({"training": items}))
    chosen = load_dataset(path, filters=[("lesion_type", "multiple sclerosis")])
    assert [case.id for case in chosen.cases] == ["c1", "c2"]
    nothing = load_dataset(path, filters=[("lesion_type", "none")])
    assert any("no item with lesion_type=none" in problem for problem in nothing.problems)


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


def _centre_values(recipe: Recipe, item: dict, draws: int = 12) -> list[float]:
    hard = {"c": item.pop("hard")} if "hard" in item else {}
    cases = T.RepeatedCases([item], draws, hard)
    chain = T.random_transforms(recipe)
    chain.set_random_state(seed=3)
    centre = tuple(p // 2 for p in recipe.patch_size)
    return [float(patch[T.IMAGE][(0, *centre)]) for n in range(draws) for patch in chain(cases[n])]


def test_patches_are_centred_on_each_class_as_the_recipe_says():
    plain = Recipe(patch_size=(8, 8, 8), affine=False, flip=False, intensity_augment=False, samples_per_case=2)
    assert set(_centre_values(plain.updated(positive_fraction=0.0, hard_negative_fraction=1.0), _item())) == {1.0}
    assert set(_centre_values(plain.updated(positive_fraction=1.0), _item())) == {2.0}
    normal = _centre_values(plain.updated(positive_fraction=0.0, hard_negative_fraction=0.0), _item())
    assert normal.count(0.0) > 0.8 * len(normal)
    # nothing mined yet: the hard-negative share goes to the other classes, and no error
    values = _centre_values(plain.updated(positive_fraction=0.5, hard_negative_fraction=0.5), _item(hard=False))
    assert set(values) <= {0.0, 2.0} and 2.0 in values


def _lesion_offsets(recipe: Recipe, draws: int = 16) -> set[tuple[int, ...]]:
    """Where a one-voxel lesion lands in its patches, relative to the patch centre."""
    item = _item(hard=False)
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
    cases = T.RepeatedCases([_item(hard=False)], 3, hard)
    cases.prepare()
    outside, normal, mined, lesion = cases[0][T.CENTRES]
    assert len(mined) == 0 and len(lesion) == 4**3 and len(outside) + len(normal) + len(lesion) == 40**3
    hard["c"] = _item()["hard"]
    assert len(cases[2][T.CENTRES][T.HARD_NEGATIVE]) == 6**3
    assert set(cases[1]) == {"case", T.IMAGE, T.LABEL, T.CENTRES}  # whole-volume masks stay out of the crops


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
    item = _item(hard=False)
    item[T.IMAGE] = item[T.IMAGE] + torch.randn(1, *SHAPE) * 0.1
    item = T.RepeatedCases([item], 1)[0]
    recipe = Recipe(patch_size=(16, 16, 16), affine=False, flip=False, heavy_augment=True, samples_per_case=1)
    chain = T.random_transforms(recipe)
    chain.set_random_state(seed=1)
    reference = T.random_transforms(recipe.updated(heavy_augment=False))
    reference.set_random_state(seed=1)
    assert len(chain.transforms) == len(reference.transforms) + len(T.heavy_intensity_transforms())
    patch = chain(item)[0]
    assert patch[T.IMAGE].shape == (1, 16, 16, 16) and set(patch[T.LABEL].unique().tolist()) <= {0.0, 1.0}
