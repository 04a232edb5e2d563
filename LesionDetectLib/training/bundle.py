"""The trained model as a bundle (``model.json`` + ``weights.pt``) with its training provenance and metrics."""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

from ..bundles import save_bundle
from ..model_spec import ModelSpec
from .recipe import Recipe

LABELS = {"0": "background", "1": "lesion"}
INTENDED_USE = "Research use only, not for diagnosis: lesion detection in {modality} scans like its training data."
PLACEHOLDER_SHA256 = "0" * 64


def library_versions() -> dict[str, str]:
    """Versions of the software a model was trained with."""
    import monai
    import numpy
    import SimpleITK
    import torch

    from .. import __version__

    return {
        "lesiondetect": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "monai": monai.__version__, "SimpleITK": SimpleITK.Version.VersionString(), "numpy": numpy.__version__,
    }


def hardware(device: str, world_size: int) -> dict[str, Any]:
    """What trained the model: device kind and name, process count, CPU, OS."""
    import torch

    info: dict[str, Any] = {
        "device": device.split(":")[0], "processes": world_size, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def model_spec(
    recipe: Recipe,
    name: str,
    modality: str,
    intensity: dict[str, Any],
    channels: list[str],
    description: str,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    sha256: str = PLACEHOLDER_SHA256,
) -> dict[str, Any]:
    """The ``model.json`` content for a model trained with ``recipe`` (validated by `ModelSpec`).

    ``channels``: the network's input channels in order (``in_channels`` is their count); none: one, the modality.
    """
    channels = list(channels) or [modality]
    kwargs = {"spatial_dims": 3, "out_channels": 1, **recipe.network_kwargs, "in_channels": len(channels)}
    spec = {
        "format_version": 1, "name": name, "version": recipe.version, "description": description,
        "modality": modality, "intended_use": INTENDED_USE.format(modality=modality),
        "input_channels": channels, "network": {"name": recipe.network, "kwargs": kwargs},
        "spacing": [float(s) for s in recipe.spacing], "intensity": intensity,
        "patch_size": [int(p) for p in recipe.patch_size], "overlap": float(recipe.overlap),
        "batch_size": int(recipe.sw_batch_size), "labels": dict(LABELS), "threshold": float(recipe.threshold),
        "min_lesion_mm3": float(recipe.min_lesion_mm3), "weights": {"file": "weights.pt", "sha256": sha256},
        "provenance": json_safe(provenance or {}), "metrics": json_safe(metrics or {}),
        "input_requirements": list(recipe.input_requirements),
    }
    if recipe.flip_axes:
        spec["flip_axes"] = [int(axis) for axis in recipe.flip_axes]
    ModelSpec.from_dict(spec, source=f"model {name!r}")
    return spec


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None, tuples as lists and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def command_line() -> str:
    """How this process was started (for provenance)."""
    return " ".join([Path(sys.executable).name, *sys.argv])


def write_bundle(folder: Path, spec: dict[str, Any], state_dict: dict) -> Path:
    """Write ``model.json`` + ``weights.pt`` into ``folder`` (atomically, checksum included)."""
    spec = {key: value for key, value in spec.items() if key not in ("format_version", "weights")}
    return save_bundle(folder, spec, state_dict)
