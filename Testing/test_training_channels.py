"""Multi-channel training: datalists with image lists or keyed sequences, channels on other grids aligned onto the
first one's, C-channel patches, copy-paste and mining, and a trained 2-channel bundle that detect runs.

The T1 channel of the synthetic cases lies on another grid than the FLAIR (identity direction, another spacing,
a larger extent) while the FLAIR is oblique: only alignment through physical space puts them together.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from training_cases import ORIGIN, synthetic_case, tiny_recipe, write_image

from LesionDetectLib import detect, preprocess, read_volume
from LesionDetectLib.bundles import open_bundle
from LesionDetectLib.errors import DatasetError, InputImageError
from LesionDetectLib.training import load_dataset, train, validate_dataset
from LesionDetectLib.training.channel_layout import AS_DECLARED, ChannelOptions

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

T1_SPACING = (1.0, 1.1, 1.3)
MR = {"kind": "mr", "percentiles": [0.5, 99.5]}
KEYED = ChannelOptions(keys=(("T1", "t1"),))


def t1_of(image: np.ndarray, label: np.ndarray, seed: int) -> np.ndarray:
    """A T1-like second sequence on the FLAIR's voxels: a body brightening along i, a dark lesion, zero background."""
    noise = np.random.default_rng(seed + 50).normal(0.0, 1.0, image.shape)
    gradient = 40.0 * np.arange(image.shape[2]) / image.shape[2]
    return np.where(image > 0, 100.0 + gradient + noise - 60.0 * label, 0.0).astype(np.float32)


def write_on_other_grid(array: np.ndarray, flair_path: Path, path: Path) -> Path:
    """``array`` (on the FLAIR's grid) resampled onto an identity-direction grid at `T1_SPACING` that covers the
    FLAIR with a margin."""
    flair = read_volume(flair_path)
    grid = preprocess.model_grid(flair, T1_SPACING)
    reference = sitk.Image([n + 6 for n in grid.size], sitk.sitkFloat32)
    reference.SetSpacing(T1_SPACING)
    reference.SetDirection(np.eye(3).ravel().tolist())
    low = np.min([flair.to_sitk().TransformIndexToPhysicalPoint([int(a), int(b), int(c)])
                  for a in (0, flair.shape_ijk[0] - 1) for b in (0, flair.shape_ijk[1] - 1)
                  for c in (0, flair.shape_ijk[2] - 1)], axis=0)
    reference.SetOrigin((low - 3 * np.array(T1_SPACING)).tolist())
    source = flair.with_array(array).to_sitk()
    sitk.WriteImage(sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, 0.0), str(path))
    return path


def write_two_channel_dataset(root: Path, count: int = 3, layout: str = "key", validation: int = 1) -> Path:
    """A datalist of ``count`` cases with a FLAIR ``image`` and a T1 on another grid, under a ``t1`` key
    (``layout="key"``) or as the second path of an ``image`` list (``layout="list"``)."""
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for number in range(count):
        image, label, _ = synthetic_case(number)
        flair = write_image(image, root / f"c{number}_flair.nii.gz")
        write_image(label, root / f"c{number}_label.nii.gz")
        write_on_other_grid(t1_of(image, label, number), flair, root / f"c{number}_t1.nii.gz")
        item = {"case": f"c{number}", "label": f"c{number}_label.nii.gz", "lesion_type": "multiple sclerosis"}
        if layout == "key":
            item.update(image=flair.name, t1=f"c{number}_t1.nii.gz")
        else:
            item["image"] = [flair.name, f"c{number}_t1.nii.gz"]
        items.append(item)
    names = {"0": "FLAIR"} if layout == "key" else {"0": "FLAIR", "1": "T1"}
    data = {"name": "two channels", "modality": names, "training": items[: count - validation],
            "validation": items[count - validation:]}
    path = root / "dataset.json"
    path.write_text(json.dumps(data, indent=1))
    return path


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Path:
    return write_two_channel_dataset(tmp_path_factory.mktemp("keyed"))


# ------------------------------------------------------------------------------------------ datalists


def test_keyed_and_listed_channels_are_read_in_network_order(keyed, tmp_path):
    data = load_dataset(keyed, channels=KEYED)
    assert data.channels == ("FLAIR", "T1") and data.modality == "MR" and not data.problems
    case = data.training[0]
    assert [name for name, _ in case.channels] == ["FLAIR", "T1"] and case.channels[0][1] == case.image
    assert case.channels[1][1] == keyed.parent / "c0_t1.nii.gz"
    assert load_dataset(keyed).channels == ("FLAIR",) and not load_dataset(keyed).training[0].channels

    listed = write_two_channel_dataset(tmp_path / "listed", count=2, layout="list")
    data = load_dataset(listed)
    assert data.channels == ("FLAIR", "T1") and data.training[0].channels[1][1].name == "c0_t1.nii.gz"
    renamed = load_dataset(listed, channels=ChannelOptions(names=("flair", "t1w")))
    assert renamed.channels == ("flair", "t1w") and not renamed.problems


def test_nnunet_folder_channels_are_read_in_file_order(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    for case in ("a", "b"):
        for number in ("0000", "0001"):
            (tmp_path / "imagesTr" / f"{case}_{number}.nii.gz").write_bytes(b"")
        (tmp_path / "labelsTr" / f"{case}.nii.gz").write_bytes(b"")
    (tmp_path / "imagesTr" / "c_0000.nii.gz").write_bytes(b"")
    (tmp_path / "labelsTr" / "c.nii.gz").write_bytes(b"")
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "FLAIR", "1": "T2"}}))
    data = load_dataset(tmp_path)
    assert data.channels == ("FLAIR", "T2") and [case.id for case in data.training] == ["a", "b"]
    assert [path.name for _, path in data.training[1].channels] == ["b_0000.nii.gz", "b_0001.nii.gz"]
    assert data.problems == (f"{tmp_path}: case c: channel files 0000; the dataset's cases have 0000, 0001",)


def problems_of(items: list, tmp_path: Path, options: ChannelOptions = AS_DECLARED, **fields) -> str:
    (tmp_path / "dataset.json").write_text(json.dumps({"training": items, **fields}))
    return " | ".join(load_dataset(tmp_path, channels=options).problems)


def test_datalist_channel_mistakes_are_named(tmp_path):
    pair = {"image": ["f.nii.gz", "t.nii.gz"], "label": "l.nii.gz"}
    assert "name them with --channels" in problems_of([{**pair, "case": "a"}], tmp_path)
    assert "--channels names 3 channel(s) but 'image' lists 2" in problems_of(
        [{**pair, "case": "a"}], tmp_path, ChannelOptions(names=("A", "B", "C")))
    odd = problems_of([{**pair, "case": "a"}, {**pair, "case": "b"},
                       {**pair, "image": ["x.nii.gz"] * 3, "case": "c"}], tmp_path, modality={"0": "FLAIR", "1": "T1"})
    assert odd.endswith("case c: 'image' lists 3 path(s); the dataset's cases have 2 (FLAIR, T1)")
    keyed = [{"image": "f.nii.gz", "label": "l.nii.gz", "t1": "t.nii.gz", "case": "a"},
             {"image": "f2.nii.gz", "label": "l2.nii.gz", "case": "b"}]
    assert problems_of(keyed, tmp_path, KEYED, modality={"0": "FLAIR"}).endswith(
        "case b: channel 'T1' (datalist key 't1') is missing")
    assert "channel 'FLAIR' is named twice" in problems_of(
        keyed[:1], tmp_path, ChannelOptions(names=("FLAIR",), keys=(("flair", "t1"),)))
    assert "'image' must be a path or a list of paths" in problems_of([{"image": [1, 2], "label": "l"}], tmp_path)


def test_a_missing_or_misplaced_channel_fails_the_dataset_check_naming_case_and_channel(keyed, tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    data = json.loads(keyed.read_text())
    for item in data["training"] + data["validation"]:
        for key in ("image", "label", "t1"):
            (root / item[key]).symlink_to(keyed.parent / item[key])
    (root / "c1_t1.nii.gz").unlink()
    image, label, _ = synthetic_case(0)
    write_image(t1_of(image, label, 0), root / "far_t1.nii.gz", origin=(ORIGIN[0] + 500.0, *ORIGIN[1:]))
    data["training"][0]["t1"] = "far_t1.nii.gz"
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError) as caught:
        validate_dataset(load_dataset(root, channels=KEYED))
    problems = caught.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("case c0: channel 'T1' does not overlap the reference channel 'FLAIR'")
    assert problems[1] == f"case c1: channel T1 file {root / 'c1_t1.nii.gz'} is missing"


def test_cli_train_takes_channel_keys_and_checks_them_before_training(keyed, tmp_path, capsys):
    from LesionDetectLib.cli import main

    data = json.loads(keyed.read_text())
    del data["validation"][0]["t1"]
    broken = keyed.parent / "no_t1.json"
    broken.write_text(json.dumps(data))
    code = main(["train", str(broken), "-o", str(tmp_path / "model"), "--channel-key", "T1=t1", "--progress", "none"])
    assert code == 6
    assert "case c2: channel 'T1' (datalist key 't1') is missing" in capsys.readouterr().err
    assert not (tmp_path / "model" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------ preprocessing


def test_every_channel_is_aligned_onto_the_first_in_physical_space(keyed):
    from LesionDetectLib.training.transforms import prepare_case

    case = load_dataset(keyed, channels=KEYED).training[0]
    image, label, body = prepare_case(case.image, case.label, (1.5, 1.5, 1.5), MR, case.channels)
    assert image.shape[0] == 2 and label.shape == body.shape == (1, *image.shape[1:])
    flair = read_volume(case.image)
    single, _, _ = prepare_case(case.image, case.label, (1.5, 1.5, 1.5), MR)
    np.testing.assert_array_equal(image[:1], single)  # the first channel is prepared as a one-channel model's
    # the T1 written on another grid comes back as the T1 made on the FLAIR's voxels, normalised the same way
    array, _, _ = synthetic_case(0)
    original = preprocess.normalise_intensity(
        preprocess.to_model_grid(flair.with_array(t1_of(array, read_volume(case.label).array, 0)), (1.5,) * 3)[0], MR)
    inside, lesion = body[0] > 0, label[0] > 0
    assert np.corrcoef(image[1][inside], original[inside])[0, 1] > 0.9

    def contrast(array):  # of the dark T1 lesion against the rest of the body
        return array[lesion].mean() - array[inside & ~lesion].mean()

    assert contrast(image[1]) < 0.5 * contrast(original) < 0  # at least half of it survives the two resamplings


def test_patches_copy_paste_and_mining_carry_every_channel(keyed):
    from LesionDetectLib.training import mining
    from LesionDetectLib.training.copy_paste import CopyPasted, lesion_bank
    from LesionDetectLib.training.transforms import RepeatedCases, cached_cases, random_transforms

    recipe = tiny_recipe(positive_fraction=1.0, samples_per_case=2, copy_paste=1.0)
    cases = cached_cases(load_dataset(keyed, channels=KEYED).training, recipe, MR, "MR", Path("unused"), 0)
    patches = random_transforms(recipe)(RepeatedCases(cases, 2)[0])
    assert all(tuple(patch["image"].shape) == (2, 24, 24, 24) and patch["label"].sum() > 0 for patch in patches)

    bank = lesion_bank([cases[0]], recipe.patch_size)
    assert len(bank) == 1 and bank[0].image.shape == (2, *bank[0].mask.shape)
    target = {**cases[1], "label": torch.zeros_like(cases[1]["label"])}
    paste = CopyPasted(bank, prob=1.0, max_objects=1)
    paste.set_random_state(seed=1)
    pasted = paste(target)
    added = pasted["label"][0].numpy() > 0
    assert added.sum() > 0 and pasted["image"].shape == target["image"].shape
    # the lesion is pasted into both sequences: brighter FLAIR, darker T1 (a weak contrast in z-scores: the T1's
    # brightening across the body widens its spread)
    for channel, sign, least in ((0, 1.0, 0.5), (1, -1.0, 0.1)):
        difference = (pasted["image"][channel] - target["image"][channel]).numpy()[added]
        assert (difference != 0).mean() > 0.9 and sign * difference.mean() > least, channel

    torch.manual_seed(0)
    network = torch.nn.Conv3d(2, 1, kernel_size=1)
    with torch.no_grad():  # fires where the FLAIR is bright, whatever the T1 says: channel 0 must reach it
        network.weight[:] = torch.tensor([4.0, 0.0]).reshape(1, 2, 1, 1, 1)
        network.bias[:] = -2.0
    hard = mining.mine_case(network, cases[0], recipe, "cpu")
    assert hard.shape == cases[0]["label"].shape and bool(hard.any())
    assert not bool((hard.bool() & (cases[0]["label"] > 0)).any())


# ------------------------------------------------------------------------------------------ training


def test_a_two_channel_bundle_is_trained_and_detects_with_both_channels(keyed, tmp_path, isolated_models):
    recipe = tiny_recipe(epochs=2, iterations_per_epoch=2, batch_size=1, copy_paste=0.5, hard_negative_fraction=0.2,
                         mining_interval=1, val_interval=2)
    train(load_dataset(keyed, channels=KEYED), tmp_path / "model", recipe, progress="none")
    model = open_bundle(tmp_path / "model")
    assert model.spec.input_channels == ["FLAIR", "T1"] and model.spec.network["kwargs"]["in_channels"] == 2
    assert model.spec.needed_channels == ["FLAIR", "T1"]
    recorded = model.spec.provenance["training"]["recipe"]["network_kwargs"]
    assert recorded.get("in_channels", 2) == 2  # the recipe never records a count that contradicts the network
    split = json.loads((tmp_path / "model" / "split.json").read_text())
    assert split["channels"]["c2"] == {"FLAIR": str(keyed.parent / "c2_flair.nii.gz"),
                                       "T1": str(keyed.parent / "c2_t1.nii.gz")}
    flair, t1 = read_volume(keyed.parent / "c2_flair.nii.gz"), read_volume(keyed.parent / "c2_t1.nii.gz")
    result = detect({"FLAIR": flair, "T1": t1}, model, device="cpu")
    assert result.probability.shape == flair.array.shape and result.volume.same_geometry(flair)
    with pytest.raises(InputImageError, match="T1"):
        detect(flair, model, device="cpu")


def test_crossvalidation_gives_detect_each_validated_cases_channels(tmp_path):
    import importlib.util

    found = importlib.util.spec_from_file_location("crossvalidate", Path(__file__).parents[1] / "tools" / "crossvalidate.py")
    crossvalidate = importlib.util.module_from_spec(found)
    found.loader.exec_module(crossvalidate)
    datalist = tmp_path / "dataset.json"
    assert crossvalidate.case_inputs(datalist, {"image": "c2.nii.gz"}, None) == [str(tmp_path / "c2.nii.gz")]
    channels = {"FLAIR": "/data/c2_flair.nii.gz", "T1": "/data/c2_t1.nii.gz", "T2": "/data/c2_t2.nii.gz"}
    assert crossvalidate.case_inputs(datalist, {"image": ["ignored"]}, channels) == [
        "/data/c2_flair.nii.gz", "--channel", "T1=/data/c2_t1.nii.gz", "--channel", "T2=/data/c2_t2.nii.gz"]
    assert crossvalidate.first(["flair.nii.gz", "t1.nii.gz"]) == "flair.nii.gz"
