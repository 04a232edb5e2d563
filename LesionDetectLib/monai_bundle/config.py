"""The declarative subset of a MONAI bundle's inference config, read into LesionDetect's ``pipeline`` dict.

Only ``network_def``, ``preprocessing``, ``inferer`` and ``postprocessing`` are read (and, for a detection
bundle, its ``anchor_generator``, ``backbone``, ``feature_extractor`` and ``detector_ops`` recipe); dataset,
dataloader, handler, evaluator and saver sections are ignored, so their expressions are never even parsed.
A transform, argument or target outside the subset raises `BundleConfigError` naming it.
"""

from __future__ import annotations

from typing import Any

from .expressions import DEVICE_IDIOM, BundleConfigError, Call, Resolver
from .recipes import DETECTOR_METHODS, FPN_EXTRACTOR, RESNETS, detection_recipe, merged_channels
from .sliding_window import window_settings

SEGMENTATION_NETWORKS = ("UNet", "BasicUNet", "SegResNet", "SegResNetDS", "DynUNet", "AttentionUnet", "UNETR",
                         "SwinUNETR", "FlexibleUNet")
DETECTION_NETWORK = "RetinaNet"

IGNORED_TRANSFORMS = {"LoadImaged", "EnsureChannelFirstd", "EnsureTyped", "Invertd", "SaveImaged", "DeleteItemsd",
                      "ClipBoxToImaged", "AffineBoxToWorldCoordinated", "ConvertBoxModed", "CopyItemsd"}
INTENSITY_ARGUMENTS = {
    "ScaleIntensityRanged": {"a_min", "a_max", "b_min", "b_max", "clip"},
    "NormalizeIntensityd": {"nonzero", "channel_wise"},
    "ScaleIntensityd": {"minv", "maxv", "channel_wise"},
}
COMMON_ARGUMENTS = {"keys", "allow_missing_keys", "dtype", "_target_", "_disabled_", "_requires_", "_desc_",
                    "meta_keys", "meta_key_postfix"}
INFERER_ARGUMENTS = {"roi_size", "sw_batch_size", "overlap", "mode", "padding_mode", "sigma_scale", "cval",
                     "device", "sw_device", "progress", "cache_roi_weight_map"}


def transform_name(target: Any, where: str) -> str:
    """A transform's class name from ``_target_`` (``X`` or ``monai.transforms.X``)."""
    if not isinstance(target, str):
        raise BundleConfigError(f"{where}: _target_ must be a class name")
    return target.removeprefix("monai.transforms.")


def parse_inference(config: dict[str, Any]) -> dict[str, Any]:
    """The ``pipeline`` of a bundle's inference config: task, network, grid, intensity, inferer, outputs."""
    if not isinstance(config, dict):
        raise BundleConfigError("inference config: must be a mapping of keys")
    resolver = Resolver(config, calls=frozenset(
        {*RESNETS, FPN_EXTRACTOR, *(f"@detector.{method}" for method in DETECTOR_METHODS)}))
    for section in ("network_def", "preprocessing", "inferer"):
        if not resolver.has(section):
            raise BundleConfigError(f"inference config: no {section!r} section")
    network = resolver.get("network_def")
    if not isinstance(network, dict):
        raise BundleConfigError("network_def: must be a mapping with _target_")
    name = transform_name(network.get("_target_"), "network_def").removeprefix("monai.networks.nets.")
    pipeline = {"format": "monai-bundle", **_preprocessing(resolver)}
    if name == DETECTION_NETWORK:
        return {**pipeline, "task": "detection", **detection_recipe(resolver, network)}
    if name not in SEGMENTATION_NETWORKS:
        raise BundleConfigError(f"network_def: network {name!r} is not supported; allowed: "
                                f"{', '.join(SEGMENTATION_NETWORKS + (DETECTION_NETWORK,))}")
    kwargs = {key: value for key, value in network.items() if not key.startswith("_")}
    _require_literal(kwargs, "network_def")
    return {**pipeline, "task": "segmentation", "network": {"name": name, "kwargs": kwargs},
            "inferer": _sliding_window(resolver), **_postprocessing(resolver)}


def _transforms(resolver: Resolver, section: str) -> list[tuple[str, dict[str, Any], str]]:
    """(name, resolved arguments, where) of each enabled transform of a ``Compose`` section that is not ignored."""
    value = resolver.raw(section)
    if isinstance(value, dict):
        if transform_name(value.get("_target_"), section) != "Compose":
            raise BundleConfigError(f"{section}: must be a Compose of transforms")
        items, base = value.get("transforms", []), f"{section}#transforms"
    elif isinstance(value, list):
        items, base = value, section
    else:
        raise BundleConfigError(f"{section}: must be a Compose or a list of transforms")
    found = []
    for index, item in enumerate(items):
        where = f"{base}#{index}"
        if not isinstance(item, dict):
            raise BundleConfigError(f"{where}: must be a transform with _target_")
        disabled = resolver.value(item.get("_disabled_", False), f"{where}#_disabled_")
        if disabled:
            continue
        name = transform_name(resolver.value(item.get("_target_"), f"{where}#_target_"), where)
        if name in IGNORED_TRANSFORMS:  # its arguments (output folders, dtypes) are never resolved
            continue
        arguments = dict(item) if name == "Lambdad" else resolver.value(item, where)
        found.append((name, arguments, f"{where} ({name})"))
    return found


def _arguments(arguments: dict[str, Any], accepted: set[str], where: str) -> dict[str, Any]:
    unknown = sorted(set(arguments) - accepted - COMMON_ARGUMENTS)
    if unknown:
        raise BundleConfigError(f"{where}: argument {unknown[0]!r} is not supported")
    return {key: value for key, value in arguments.items() if key in accepted}


def _preprocessing(resolver: Resolver) -> dict[str, Any]:
    """Grid (orientation, spacing), intensity steps and foreground cropping, in the order given."""
    grid: dict[str, Any] = {"orientation": None, "spacing": None}
    intensity: list[dict[str, Any]] = []
    crop = None
    for name, arguments, where in _transforms(resolver, "preprocessing"):
        if name == "Orientationd":
            axcodes = _arguments(arguments, {"axcodes", "labels"}, where).get("axcodes")
            if axcodes != "RAS":
                raise BundleConfigError(f"{where}: only axcodes 'RAS' is supported, not {axcodes!r}")
            grid["orientation"] = "RAS"
        elif name == "Spacingd":
            settings = _arguments(arguments, {"pixdim", "mode", "padding_mode", "align_corners"}, where)
            pixdim = settings.get("pixdim")
            pixdim = [pixdim] * 3 if isinstance(pixdim, (int, float)) and not isinstance(pixdim, bool) else pixdim
            if not (isinstance(pixdim, list) and len(pixdim) == 3
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in pixdim)):
                raise BundleConfigError(f"{where}: pixdim must be 3 positive numbers")
            if settings.get("mode", "bilinear") not in ("bilinear", ["bilinear"]):
                raise BundleConfigError(f"{where}: only mode 'bilinear' is supported for images")
            grid["spacing"] = [float(v) for v in pixdim]
        elif name in INTENSITY_ARGUMENTS:
            settings = _arguments(arguments, INTENSITY_ARGUMENTS[name], where)
            _require_literal(settings, where)
            intensity.append({"transform": name, **settings})
        elif name == "CropForegroundd":
            settings = _arguments(arguments, {"source_key", "margin", "allow_smaller"}, where)
            crop = {"margin": settings.get("margin", 0)}
        else:
            raise BundleConfigError(f"{where}: preprocessing transform {name!r} is not supported")
    return {"grid": grid, "intensity": intensity, "crop_foreground": crop}


def _sliding_window(resolver: Resolver) -> dict[str, Any]:
    inferer = resolver.get("inferer")
    name = transform_name(inferer.get("_target_") if isinstance(inferer, dict) else None, "inferer")
    name = name.removeprefix("monai.inferers.")
    if name != "SlidingWindowInferer":
        raise BundleConfigError(f"inferer: {name!r} is not supported (only SlidingWindowInferer)")
    settings = _arguments(inferer, INFERER_ARGUMENTS, "inferer")
    settings = {key: value for key, value in settings.items() if key not in ("device", "sw_device", "progress",
                                                                           "cache_roi_weight_map")}
    _require_literal(settings, "inferer")
    return window_settings(settings, "inferer")


def _postprocessing(resolver: Resolver) -> dict[str, Any]:
    """Activation, discretisation, largest component and the BraTS channel merge of a segmentation bundle."""
    outputs: dict[str, Any] = {"activation": None, "discrete": None, "keep_largest": False, "merged_channels": None}
    if not resolver.has("postprocessing"):
        return outputs
    for name, arguments, where in _transforms(resolver, "postprocessing"):
        if name == "Activationsd":
            settings = _arguments(arguments, {"softmax", "sigmoid", "other"}, where)
            if "other" in settings or bool(settings.get("softmax")) == bool(settings.get("sigmoid")):
                raise BundleConfigError(f"{where}: exactly one of sigmoid or softmax is supported")
            outputs["activation"] = "softmax" if settings.get("softmax") else "sigmoid"
        elif name == "AsDiscreted":
            settings = _arguments(arguments, {"argmax", "threshold", "to_onehot", "rounding"}, where)
            if settings.get("argmax"):
                outputs["discrete"] = {"argmax": True}
            elif isinstance(settings.get("threshold"), (int, float)) and not isinstance(settings["threshold"], bool):
                outputs["discrete"] = {"threshold": float(settings["threshold"])}
            else:
                raise BundleConfigError(f"{where}: only argmax or a numeric threshold is supported")
        elif name == "KeepLargestConnectedComponentd":
            _arguments(arguments, {"applied_labels", "is_onehot", "independent", "connectivity", "num_components"},
                       where)
            outputs["keep_largest"] = True
        elif name == "Lambdad":
            outputs["merged_channels"] = merged_channels(arguments.get("func"), where)
        else:
            raise BundleConfigError(f"{where}: postprocessing transform {name!r} is not supported")
    if outputs["activation"] is None:
        if outputs["discrete"] != {"argmax": True}:
            raise BundleConfigError("postprocessing: no Activationsd (sigmoid or softmax) before a threshold")
        outputs["activation"] = "softmax"  # argmax of logits = argmax of their softmax
    return outputs


def _require_literal(value: Any, where: str) -> None:
    """Refuse what a reference resolved to when it is not plain data (a recorded call, the device marker)."""
    if isinstance(value, Call) or value is DEVICE_IDIOM:
        raise BundleConfigError(f"{where}: a value here must be a literal")
    if isinstance(value, dict):
        for key, item in value.items():
            _require_literal(item, f"{where}#{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _require_literal(item, f"{where}#{index}")
