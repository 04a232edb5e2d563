"""Importing the real zoo configs as bundles with random weights, running them with `detect`, and checking the
result against what MONAI itself computes with the same weights and preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai_bundles import ZOO, needs_zoo, random_state, ras_volume, zoo_bundle, zoo_configs

from LesionDetectLib.bundles import list_models, load_model
from LesionDetectLib.detect import detect
from LesionDetectLib.monai_bundle.importer import import_monai_bundle
from LesionDetectLib.volume import Volume

pytestmark = needs_zoo


@pytest.fixture(autouse=True)
def models_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONDETECT_MODELS", str(tmp_path / "models"))
    torch.set_num_threads(1)


def monai_network(bundle, pipeline):
    """The bundle's network built by MONAI and loaded from its own models/model.pt."""
    from monai.networks import nets

    network = getattr(nets, pipeline["network"]["name"])(**pipeline["network"]["kwargs"])
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    return network.eval()


def monai_probability(image_xyz: torch.Tensor, network, pipeline, labels) -> np.ndarray:
    from monai.inferers import SlidingWindowInferer

    window = pipeline["inferer"]
    inferer = SlidingWindowInferer(roi_size=window["roi_size"], sw_batch_size=window["sw_batch_size"],
                                   overlap=window["overlap"], mode=window["mode"], padding_mode=window["padding_mode"])
    with torch.no_grad():
        logits = inferer(image_xyz[None].float(), network)
    if pipeline["activation"] == "softmax":
        return torch.softmax(logits, 1)[0, labels].sum(0).numpy()
    return torch.sigmoid(logits[0, labels]).amax(0).numpy()


def test_spleen_import_writes_the_model_card_and_matches_monai(tmp_path):
    from monai.data import MetaTensor
    from monai.transforms import Compose, Orientationd, ScaleIntensityRanged, Spacingd

    bundle = zoo_bundle(tmp_path, "spleen_ct_segmentation")
    installed = import_monai_bundle(bundle, lesion_labels=[1])
    spec = json.loads((installed / "model.json").read_text())
    assert spec["version"] == "0.5.9" and spec["intended_use"].startswith("This is an example")
    assert spec["provenance"]["monai_bundle"]["authors"] == "MONAI team"
    assert spec["input_channels"] == ["CT"] and spec["labels"] == {"0": "background", "1": "spleen"}
    entry = next(entry for entry in list_models() if entry.name == "spleen_ct_segmentation")
    assert entry.to_dict()["input_channels"] == ["CT"] and entry.task == "segmentation"

    # an LPS-oriented input (identity direction) at the bundle's spacing: MONAI flips it to RAS, LesionDetect
    # resamples it onto its RAS grid; both must give the same probabilities voxel for voxel
    volume = ras_volume((30, 28, 20), (1.5, 1.5, 2.0))
    volume = Volume(volume.array, volume.spacing, volume.origin, np.eye(3), "ct", "CT")
    result = detect(volume, "spleen_ct_segmentation", device="cpu")
    assert result.probability.shape == volume.array.shape

    pipeline = load_model("spleen_ct_segmentation").spec.pipeline
    affine = torch.as_tensor(volume.ijk_to_ras(), dtype=torch.float64)
    data = {"image": MetaTensor(torch.from_numpy(volume.array.transpose(2, 1, 0).copy())[None], affine=affine)}
    image = Compose([Orientationd("image", "RAS"), Spacingd("image", pixdim=[1.5, 1.5, 2.0], mode="bilinear"),
                     ScaleIntensityRanged("image", a_min=-57, a_max=164, b_min=0, b_max=1, clip=True)])(data)["image"]
    expected = monai_probability(image, monai_network(bundle, pipeline), pipeline, [1])
    # MONAI's RAS array is the input flipped along i and j; back to the input's [k, j, i]
    expected = expected[::-1, ::-1, :].transpose(2, 1, 0)
    np.testing.assert_allclose(result.probability, expected, atol=2e-4)
    assert 0 < result.probability.max() <= 1


def test_brats_takes_four_sequences_on_its_own_grid_and_matches_monai(tmp_path):
    from monai.transforms import NormalizeIntensity

    bundle = zoo_bundle(tmp_path, "brats_mri_segmentation")
    # the 240x240x160 window is the real config's; a smaller one keeps this test fast on a 2-core CPU
    import_monai_bundle(bundle, lesion_labels=[1], overrides={"inferer#roi_size": [32, 32, 24]})
    model = load_model("brats_mri_segmentation")
    assert model.spec.input_channels == ["T1c", "T1", "T2", "FLAIR"]
    sequences = {name: ras_volume((24, 20, 16), (1.0, 1.0, 1.0), seed=index, low=0, high=500, modality="MR")
                 for index, name in enumerate(["FLAIR", "T1c", "T1", "T2"])}
    result = detect(sequences, model, device="cpu")
    assert result.volume is sequences["FLAIR"] and result.probability.shape == (16, 20, 24)

    stacked = torch.from_numpy(np.stack([sequences[name].array.transpose(2, 1, 0) for name in model.spec.input_channels]))
    image = NormalizeIntensity(nonzero=True, channel_wise=True)(stacked)
    expected = monai_probability(image, monai_network(bundle, model.spec.pipeline), model.spec.pipeline, [1])
    np.testing.assert_allclose(result.probability, expected.transpose(2, 1, 0), atol=2e-4)


def test_brats_needs_the_lesion_labels_chosen(tmp_path):
    from LesionDetectLib.errors import ModelBundleError

    bundle = zoo_bundle(tmp_path, "brats_mri_segmentation")
    with pytest.raises(ModelBundleError, match=r"--lesion-labels with some of: 0=Tumor core, 1=Whole tumor, "
                                               r"2=Enhancing tumor"):
        import_monai_bundle(bundle)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_whole_body_lesion_labels_from_metadata_sum_their_softmax(tmp_path):
    bundle = zoo_bundle(tmp_path, "wholeBody_ct_segmentation", as_zip=True, metadata_changes={"lesion_labels": [5, 6]})
    import_monai_bundle(bundle, overrides={"inferer#roi_size": [32, 32, 32]})
    model = load_model("wholeBody_ct_segmentation")
    assert model.spec.pipeline["lesion_labels"] == [5, 6] and model.spec.spacing == [1.5, 1.5, 1.5]
    volume = ras_volume((20, 18, 16), (3.0, 2.0, 2.5))  # another spacing: resampled to 1.5 mm and back
    result = detect(volume, model, device="cpu")
    assert result.probability.shape == volume.array.shape
    assert result.probability.min() >= 0 and result.probability.max() <= 1


def test_lung_nodule_detector_without_torchvision_is_refused_clearly(tmp_path):
    import importlib.util

    from LesionDetectLib.errors import ModelBundleError

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: the detector is built (see the next test)")
    bundle = zoo_bundle(tmp_path, "lung_nodule_ct_detection", state={"weight": torch.zeros(1)})
    with pytest.raises(ModelBundleError, match="needs torchvision"):
        import_monai_bundle(bundle, overrides={"whether_raw_luna16": True})
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


@pytest.mark.skipif(__import__("importlib").util.find_spec("torchvision") is None,
                    reason="monai.apps.detection needs torchvision, not installed (a CPU build matching torch)")
def test_lung_nodule_detector_gives_boxes_on_the_input_grid(tmp_path):
    bundle = zoo_bundle(tmp_path, "lung_nodule_ct_detection")
    import_monai_bundle(bundle, overrides={"whether_raw_luna16": True})
    model = load_model("lung_nodule_ct_detection")
    assert model.spec.pipeline["task"] == "detection" and model.spec.spacing == [0.703125, 0.703125, 1.25]
    volume = ras_volume((40, 40, 24), (1.0, 1.0, 1.5))
    result = detect(volume, model, device="cpu", threshold=0.3)
    assert result.probability.shape == volume.array.shape
    assert any("box" in warning for warning in result.warnings)
    for lesion in result.lesions:
        assert lesion.confidence_max >= 0.3
    assert set(np.unique(result.label_map)) == {0, *range(1, len(result.lesions) + 1)}


@pytest.mark.skipif(__import__("importlib").util.find_spec("torchvision") is None,
                    reason="monai.apps.detection needs torchvision, not installed (a CPU build matching torch)")
def test_lung_nodule_boxes_match_monai_and_each_becomes_a_lesion_at_its_box(tmp_path):
    from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
    from monai.apps.detection.networks.retinanet_network import RetinaNet, resnet_fpn_feature_extractor
    from monai.apps.detection.transforms.dictionary import (
        AffineBoxToWorldCoordinated,
        ClipBoxToImaged,
        ConvertBoxModed,
    )
    from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape
    from monai.data import MetaTensor
    from monai.networks.nets import resnet
    from monai.transforms import Compose, Orientationd, ScaleIntensityRanged, Spacingd

    from LesionDetectLib.monai_bundle.config import parse_inference
    from LesionDetectLib.monai_bundle.inference import bundle_boxes

    inference, _ = zoo_configs("lung_nodule_ct_detection")
    state = random_state(parse_inference({**inference, "whether_raw_luna16": True}))
    (bias,) = [key for key in state if key.endswith("cls_logits.bias")]
    state[bias] = torch.full_like(state[bias], 1.0)  # random weights score ~0.01 (MONAI's prior): make boxes
    bundle = zoo_bundle(tmp_path, "lung_nodule_ct_detection", state=state)
    import_monai_bundle(bundle, overrides={"whether_raw_luna16": True})
    model = load_model("lung_nodule_ct_detection")

    # an LPS-oriented input (identity direction), off-origin, at the bundle's spacing: MONAI flips it to RAS
    spacing = (0.703125, 0.703125, 1.25)
    ras = ras_volume((48, 40, 24), spacing, origin=(31.0, -12.5, 40.0), low=-1000, high=300)
    volume = Volume(ras.array, ras.spacing, ras.origin, np.eye(3), "chest", "CT")
    boxes = bundle_boxes(model, [volume], "cpu")

    backbone = resnet.resnet50(spatial_dims=3, n_input_channels=1, conv1_t_stride=[2, 2, 1], conv1_t_size=[7, 7, 7])
    network = RetinaNet(spatial_dims=3, num_classes=1, num_anchors=3, size_divisible=[16, 16, 8],
                        feature_extractor=resnet_fpn_feature_extractor(backbone, 3, False, [1, 2], None))
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    anchors = AnchorGeneratorWithAnchorShape(feature_map_scales=[1, 2, 4],
                                             base_anchor_shapes=[[6, 8, 4], [8, 6, 5], [10, 10, 6]])
    detector = RetinaNetDetector(network=network, anchor_generator=anchors, spatial_dims=3, num_classes=1,
                                 size_divisible=[16, 16, 8])
    detector.set_target_keys(box_key="box", label_key="label")
    detector.set_box_selector_parameters(score_thresh=0.02, topk_candidates_per_level=1000, nms_thresh=0.22,
                                         detections_per_img=300)
    detector.eval()
    affine = torch.as_tensor(volume.ijk_to_ras(), dtype=torch.float64)
    data = {"image": MetaTensor(torch.from_numpy(volume.array.transpose(2, 1, 0).copy())[None], affine=affine)}
    data = Compose([Orientationd("image", "RAS"), Spacingd("image", pixdim=list(spacing)),
                    ScaleIntensityRanged("image", a_min=-1024.0, a_max=300.0, b_min=0.0, b_max=1.0, clip=True)])(data)
    with torch.no_grad():
        output = detector([data["image"].as_tensor()], use_inferer=False)[0]
    data.update(box=output["box"], label=output["label"], scores=output["label_scores"])
    data = Compose([ClipBoxToImaged(box_keys="box", label_keys=["label", "scores"], box_ref_image_keys="image",
                                    remove_empty=True),
                    AffineBoxToWorldCoordinated(box_keys="box", box_ref_image_keys="image", affine_lps_to_ras=True),
                    ConvertBoxModed(box_keys="box", src_mode="xyzxyz", dst_mode="cccwhd")])(data)
    expected = sorted(zip(data["scores"].tolist(), data["box"].tolist()), key=lambda pair: -pair[0])
    assert len(expected) >= 3 and len(boxes) == len(expected)
    for box, (score, world) in zip(boxes, expected):
        assert box.score == pytest.approx(score, abs=1e-5)
        np.testing.assert_allclose(box.centre_lps, world[:3], atol=1e-3)  # MONAI's world boxes are LPS here
        np.testing.assert_allclose(box.size_mm, world[3:], atol=1e-3)

    threshold = float(np.median([box.score for box in boxes]))
    result = detect(volume, model, device="cpu", threshold=threshold)
    kept = [box for box in boxes if box.score >= threshold]
    assert 0 < len(result.lesions) <= len(kept)  # a box wholly inside a higher-scoring one has no voxel left
    for lesion in result.lesions:
        assert lesion.detector_box in kept and lesion.confidence_max == lesion.detector_box.score
        assert lesion.marker_lps == lesion.detector_box.centre_lps
    assert [lesion.confidence_max for lesion in result.lesions] == sorted(
        (lesion.confidence_max for lesion in result.lesions), reverse=True)
    for lesion in result.lesions:  # the saved probability: each box's score on its segment
        assert np.all(result.probability[result.label_map == lesion.id] == np.float32(lesion.confidence_max))
    paths = result.write(tmp_path / "out")
    rois = json.loads(paths["boxes"].read_text())["markups"]
    assert [roi["center"] for roi in rois] == [list(lesion.detector_box.centre_lps) for lesion in result.lesions]


def test_zoo_folder_holds_the_four_configs():
    assert sorted(p.name for p in ZOO.iterdir() if p.is_dir()) == sorted(
        ["brats_mri_segmentation", "lung_nodule_ct_detection", "spleen_ct_segmentation", "wholeBody_ct_segmentation"])
