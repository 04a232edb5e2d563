"""Known bundle recipes beyond the declarative subset, recognised by their shape and never executed.

- The BraTS bundle's channel-merging ``Lambdad`` (nested ``torch.where(x[[c]] > 0, value, …)``): the channels
  it merges are recorded; the lesion is the union of the sigmoid channels chosen at import.
- The detection bundle's ``backbone`` / ``feature_extractor`` / ``anchor_generator`` / ``detector_ops``
  construction of a RetinaNet (``monai.apps.detection``); its ``scripts.detection_inferer`` target is
  recognised and replaced by LesionDetect's own inference with ``monai.apps.detection``.
"""

from __future__ import annotations

import ast
from typing import Any

from .expressions import BundleConfigError, Call, Resolver
from .sliding_window import window_settings

RESNETS = tuple(f"monai.networks.nets.resnet.resnet{depth}" for depth in (10, 18, 34, 50, 101, 152, 200))
FPN_EXTRACTOR = "monai.apps.detection.networks.retinanet_network.resnet_fpn_feature_extractor"
ANCHOR_GENERATOR = "monai.apps.detection.utils.anchor_utils.AnchorGeneratorWithAnchorShape"
DETECTOR_METHODS = ("set_target_keys", "set_box_selector_parameters", "set_sliding_window_inferer")
DETECTION_INFERER = "scripts.detection_inferer.RetinaNetInferer"  # recognised and replaced by monai.apps.detection
FPN_PARAMETERS = ("backbone", "spatial_dims", "pretrained_backbone", "returned_layers", "trainable_backbone_layers")
BOX_SELECTOR_PARAMETERS = {"score_thresh", "topk_candidates_per_level", "nms_thresh", "detections_per_img",
                           "apply_sigmoid"}
RETINANET_PARAMETERS = {"spatial_dims", "num_classes", "num_anchors", "size_divisible", "use_list_output"}


def merged_channels(func: Any, where: str) -> list[int]:
    """The channels of ``lambda x: torch.where(x[[a]] > 0, v, torch.where(x[[b]] > 0, w, …))``, in order."""
    refusal = BundleConfigError(f"{where}: Lambdad is supported only as the BraTS channel merge "
                                "(lambda x: torch.where(x[[c]] > 0, value, ...))")
    if not isinstance(func, str) or not func.startswith("$"):
        raise refusal
    try:
        tree = ast.parse(func[1:].strip(), mode="eval").body
    except SyntaxError:
        raise refusal from None
    if not (isinstance(tree, ast.Lambda) and len(tree.args.args) == 1 and not tree.args.defaults):
        raise refusal
    argument, channels, node = tree.args.args[0].arg, [], tree.body
    while not (isinstance(node, ast.Constant) and isinstance(node.value, int)):
        channel = _where_channel(node, argument)
        if channel is None:
            raise refusal
        channels.append(channel)
        node = node.args[2]
    if not channels or len(set(channels)) != len(channels):
        raise refusal
    return channels


def _where_channel(node: ast.AST, argument: str) -> int | None:
    """``c`` of ``torch.where(x[[c]] > 0, <int>, rest)``, else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "where"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch" and len(node.args) == 3
            and not node.keywords):
        return None
    test, value = node.args[0], node.args[1]
    if not (isinstance(value, ast.Constant) and isinstance(value.value, int) and isinstance(test, ast.Compare)
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Gt) and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == 0):
        return None
    subscript = test.left
    if not (isinstance(subscript, ast.Subscript) and isinstance(subscript.value, ast.Name)
            and subscript.value.id == argument and isinstance(subscript.slice, ast.List)
            and len(subscript.slice.elts) == 1 and isinstance(subscript.slice.elts[0], ast.Constant)
            and isinstance(subscript.slice.elts[0].value, int)):
        return None
    return subscript.slice.elts[0].value


def detection_recipe(resolver: Resolver, network: dict[str, Any]) -> dict[str, Any]:
    """The RetinaNet detector of a bundle as data: network, backbone, anchors, box selector and sliding window
    (never the bundle's scripts)."""
    unknown = sorted(set(network) - RETINANET_PARAMETERS - {"_target_", "feature_extractor"})
    if unknown:
        raise BundleConfigError(f"network_def: RetinaNet argument {unknown[0]!r} is not supported")
    extractor = network.get("feature_extractor")
    if not (isinstance(extractor, Call) and extractor.name == FPN_EXTRACTOR and not extractor.kwargs
            and 1 <= len(extractor.args) <= len(FPN_PARAMETERS)):
        raise BundleConfigError(f"network_def#feature_extractor: must be {FPN_EXTRACTOR}(@backbone, ...)")
    fpn = dict(zip(FPN_PARAMETERS, extractor.args))
    backbone = fpn.pop("backbone")
    if not (isinstance(backbone, Call) and backbone.name in RESNETS and not backbone.args):
        raise BundleConfigError(f"backbone: must be one of {', '.join(RESNETS)} with keyword arguments")
    if fpn.get("pretrained_backbone", False):
        raise BundleConfigError("feature_extractor: pretrained_backbone must be false (nothing is downloaded)")
    if backbone.kwargs.get("pretrained", False):
        raise BundleConfigError("backbone: pretrained must be false (nothing is downloaded)")
    anchors = resolver.get("detector#anchor_generator") if resolver.has("detector") else None
    if not (isinstance(anchors, dict) and anchors.get("_target_") == ANCHOR_GENERATOR):
        raise BundleConfigError(f"detector#anchor_generator: must be {ANCHOR_GENERATOR}")
    unknown = sorted(set(anchors) - {"_target_", "feature_map_scales", "base_anchor_shapes", "indexing"})
    if unknown:
        raise BundleConfigError(f"anchor_generator: argument {unknown[0]!r} is not supported")
    operations = {call.name.rpartition(".")[2]: call.kwargs for call in _detector_ops(resolver)}
    selector = operations.get("set_box_selector_parameters", {})
    unknown = sorted(set(selector) - BOX_SELECTOR_PARAMETERS)
    if unknown:
        raise BundleConfigError(f"detector_ops: box selector argument {unknown[0]!r} is not supported")
    window = operations.get("set_sliding_window_inferer")
    if window is None:
        raise BundleConfigError("detector_ops: no set_sliding_window_inferer(...) settings")
    inferer = resolver.raw("inferer")
    if not (isinstance(inferer, dict) and inferer.get("_target_") == DETECTION_INFERER):
        raise BundleConfigError(f"inferer: a detection bundle must use {DETECTION_INFERER} (replaced, never run)")
    force = resolver.value(inferer.get("force_sliding_window", False), "inferer#force_sliding_window")
    kwargs = {key: value for key, value in network.items() if key in RETINANET_PARAMETERS}
    kwargs["backbone"] = {"name": backbone.name.rpartition(".")[2], "kwargs": backbone.kwargs}
    kwargs["fpn"] = fpn
    return {
        "network": {"name": "RetinaNet", "kwargs": kwargs},
        "anchors": {key: value for key, value in anchors.items() if key != "_target_"},
        "box_selector": selector,
        "inferer": window_settings({k: v for k, v in window.items() if k not in ("device", "sw_device")},
                                   "detector_ops (set_sliding_window_inferer)"),
        "force_sliding_window": bool(force),
        "activation": None, "discrete": None, "keep_largest": False, "merged_channels": None,
    }


def _detector_ops(resolver: Resolver) -> list[Call]:
    operations = resolver.get("detector_ops") if resolver.has("detector_ops") else []
    if not isinstance(operations, list) or not all(isinstance(op, Call) and op.name.startswith("@detector.")
                                                   for op in operations):
        raise BundleConfigError("detector_ops: must be a list of $@detector.<setting>(...) calls")
    return operations
