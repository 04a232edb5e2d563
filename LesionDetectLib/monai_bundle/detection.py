"""The detection bundle's RetinaNet, built with ``monai.apps.detection`` from the recorded recipe (never the
bundle's ``scripts/``), and its boxes: model-grid voxel boxes → LPS boxes with scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelBundleError


def retinanet(spatial_dims: int, num_classes: int, num_anchors: int, size_divisible: Any, backbone: dict[str, Any],
              fpn: dict[str, Any], use_list_output: bool = False):
    """``RetinaNet(feature_extractor=resnet_fpn_feature_extractor(resnetN(...), ...))`` as the bundle builds it."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        raise ModelBundleError("a MONAI detection bundle needs torchvision (monai.apps.detection builds its RetinaNet "
                               "with it): pip install torchvision, the build that matches your torch")
    from monai.apps.detection.networks.retinanet_network import RetinaNet, resnet_fpn_feature_extractor
    from monai.networks.nets import resnet

    name = backbone.get("name")
    if name not in {f"resnet{depth}" for depth in (10, 18, 34, 50, 101, 152, 200)}:
        raise ModelBundleError(f"RetinaNet backbone {name!r} is not supported")
    body = getattr(resnet, name)(**{**backbone.get("kwargs", {}), "pretrained": False})
    extractor = resnet_fpn_feature_extractor(body, **{**fpn, "pretrained_backbone": False})
    return RetinaNet(spatial_dims=spatial_dims, num_classes=num_classes, num_anchors=num_anchors,
                     feature_extractor=extractor, size_divisible=size_divisible, use_list_output=use_list_output)


def detector(network, pipeline: dict[str, Any], device: str):
    """A `RetinaNetDetector` around ``network`` with the bundle's anchors, box selector and sliding window."""
    from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
    from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape

    kwargs = pipeline["network"]["kwargs"]
    anchors = AnchorGeneratorWithAnchorShape(**pipeline["anchors"])
    found = RetinaNetDetector(network=network, anchor_generator=anchors, spatial_dims=kwargs["spatial_dims"],
                              num_classes=kwargs["num_classes"], size_divisible=kwargs["size_divisible"])
    found.set_box_selector_parameters(**pipeline["box_selector"])
    window = pipeline["inferer"]
    found.set_sliding_window_inferer(
        roi_size=window["roi_size"], sw_batch_size=window["sw_batch_size"], overlap=window["overlap"],
        mode=window["mode"], sigma_scale=window["sigma_scale"], padding_mode=window["padding_mode"],
        cval=window["cval"], sw_device=device, device="cpu")
    return found.eval()


def runs_whole_image(pipeline: dict[str, Any], grid_size) -> bool:
    """Whether the detector runs on the whole image at once (as `detect_boxes` decides): an image within the
    inferer's window, unless the bundle forces the sliding window."""
    roi = pipeline["inferer"]["roi_size"]
    return not pipeline.get("force_sliding_window", False) and all(int(s) <= int(r) for s, r in zip(grid_size, roi))


def detect_boxes(network, image: np.ndarray, pipeline: dict[str, Any], device: str) -> tuple[np.ndarray, np.ndarray]:
    """(boxes ``[N, 6]`` as x1 y1 z1 x2 y2 z2 in model-grid voxel indices, scores ``[N]``) for ``[C, x, y, z]``."""
    import torch

    model = detector(network, pipeline, device)
    use_inferer = not runs_whole_image(pipeline, image.shape[1:])
    with torch.inference_mode():
        output = model([torch.from_numpy(np.ascontiguousarray(image, np.float32)).to(device)], use_inferer=use_inferer)
    result = output[0]
    boxes = result[model.target_box_key].detach().cpu().numpy().astype(np.float64).reshape(-1, 6)
    scores = result[model.pred_score_key].detach().cpu().numpy().astype(np.float64).reshape(-1)
    size = np.asarray(image.shape[1:], float)
    boxes[:, :3] = np.clip(boxes[:, :3], 0, size)  # as the bundle's ClipBoxToImaged
    boxes[:, 3:] = np.clip(boxes[:, 3:], 0, size)
    keep = np.all(boxes[:, 3:] > boxes[:, :3], axis=1)
    return boxes[keep], scores[keep]
