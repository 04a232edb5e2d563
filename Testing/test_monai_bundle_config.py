"""The safe MONAI bundle config parser: the real zoo configs, the accepted idioms, and refusals."""

from __future__ import annotations

import pytest
from monai_bundles import INFERER, NETWORK, ZOO_BUNDLES, config, needs_zoo, zoo_configs

from LesionDetectLib.monai_bundle.config import parse_inference
from LesionDetectLib.monai_bundle.expressions import BundleConfigError
from LesionDetectLib.monai_bundle.importer import apply_overrides


@needs_zoo
@pytest.mark.parametrize("name", ZOO_BUNDLES)
def test_every_zoo_config_parses(name):
    pipeline = parse_inference(zoo_configs(name)[0])
    assert pipeline["task"] == ("detection" if "detection" in name else "segmentation")
    assert len(pipeline["inferer"]["roi_size"]) == 3


@needs_zoo
def test_zoo_configs_read_as_their_files_say():
    spleen = parse_inference(zoo_configs("spleen_ct_segmentation")[0])
    assert spleen["grid"] == {"orientation": "RAS", "spacing": [1.5, 1.5, 2.0]}
    assert spleen["intensity"] == [{"transform": "ScaleIntensityRanged", "a_min": -57, "a_max": 164, "b_min": 0,
                                    "b_max": 1, "clip": True}]
    assert spleen["network"]["kwargs"]["channels"] == [16, 32, 64, 128, 256]
    assert spleen["activation"] == "softmax" and spleen["inferer"]["mode"] == "constant"
    brats = parse_inference(zoo_configs("brats_mri_segmentation")[0])
    assert brats["grid"] == {"orientation": None, "spacing": None}  # the bundle runs on the input's own grid
    assert brats["merged_channels"] == [2, 0, 1] and brats["activation"] == "sigmoid"
    whole = parse_inference(zoo_configs("wholeBody_ct_segmentation")[0])
    assert whole["grid"]["spacing"] == [1.5, 1.5, 1.5]  # "$[1.5...] if @displayable_configs#highres else [3...]"
    assert whole["inferer"]["overlap"] == 0.25 and whole["inferer"]["padding_mode"] == "replicate"
    lowres = parse_inference(apply_overrides(zoo_configs("wholeBody_ct_segmentation")[0],
                                             {"displayable_configs#highres": False}))
    assert lowres["grid"]["spacing"] == [3.0, 3.0, 3.0]
    lung = parse_inference(zoo_configs("lung_nodule_ct_detection")[0])
    assert lung["network"]["kwargs"]["backbone"] == {"name": "resnet50", "kwargs": {
        "spatial_dims": 3, "n_input_channels": 1, "conv1_t_stride": [2, 2, 1], "conv1_t_size": [7, 7, 7]}}
    assert lung["box_selector"]["nms_thresh"] == 0.22 and lung["inferer"]["roi_size"] == [512, 512, 192]
    assert lung["grid"]["spacing"] is None  # Spacingd is disabled for pre-resampled LUNA16 data …
    raw = parse_inference(apply_overrides(zoo_configs("lung_nodule_ct_detection")[0], {"whether_raw_luna16": True}))
    assert raw["grid"]["spacing"] == [0.703125, 0.703125, 1.25]  # … and enabled by its flag


def test_ignored_sections_are_never_parsed():
    pipeline = parse_inference(config(evaluator={"_target_": "scripts.evil.Run", "x": "$os.system('rm -rf /')"}))
    assert pipeline["network"]["name"] == "UNet"


@pytest.mark.parametrize("changes, named", [
    ({"network_def": {**NETWORK, "channels": "$__import__('os').system('touch /tmp/pwned') or [4, 8]"}},
     "network_def#channels"),
    ({"inferer": {**INFERER, "roi_size": "$[16] * 3"}}, "inferer#roi_size"),
    ({"network_def": {**NETWORK, "_target_": "scripts.net.MyNet"}}, "'scripts.net.MyNet'"),
    ({"inferer": {**INFERER, "_target_": "scripts.detection_inferer.RetinaNetInferer"}}, "inferer"),
    ({"preprocessing": {"_target_": "Compose", "transforms": [{"_target_": "RandFlipd", "keys": "image"}]}},
     "'RandFlipd'"),
    ({"preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "ScaleIntensityd", "keys": "image", "factor": 2}]}}, "'factor'"),
    ({"postprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "Lambdad", "keys": "pred", "func": "$lambda x: __import__('os').system('x')"}]}}, "Lambdad"),
    ({"a": "@b", "b": "@a", "network_def": {**NETWORK, "in_channels": "@a"}}, "circular reference"),
    ({"network_def": {**NETWORK, "in_channels": "@missing"}}, "missing: no such key"),
])
def test_code_and_unsupported_keys_are_refused_naming_them(changes, named, tmp_path):
    with pytest.raises(BundleConfigError) as error:
        parse_inference(config(**changes))
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "pwned").exists()


def test_accepted_idioms_resolve():
    pipeline = parse_inference(config(
        flag=False, size=[16, 16, 16],
        inferer={**INFERER, "roi_size": "$[8, 8, 8] if @flag else [16, 16, 16]", "overlap": "$0.5 if not @flag else 0.1",
                 "device": "$torch.device('cpu')"},
        network_def={**NETWORK, "channels": "@network_def_channels"}, network_def_channels=[4, 8]))
    assert pipeline["inferer"]["roi_size"] == [16, 16, 16] and pipeline["inferer"]["overlap"] == 0.5
    assert pipeline["network"]["kwargs"]["channels"] == [4, 8]


def test_a_flag_must_be_a_literal():
    with pytest.raises(BundleConfigError, match="not supported"):
        parse_inference(config(inferer={**INFERER, "overlap": "$0.5 if os.getcwd() else 0.1"}))
