"""What ``model.json`` may hold: `ModelSpec`, its fields and the range of every setting.

A spec is validated field by field before anything else reads it: every number must be finite (Python's json reads
NaN and Infinity), every setting within a sane range (the limits below, which the command line's options share),
the network a name with JSON keyword arguments (``pretrained`` refused: nothing is downloaded) and the name a plain
folder name.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ModelBundleError
from .input_checks import REQUIREMENT_CHECKS

FORMAT_VERSION = 1
SPEC_FILE, WEIGHTS_FILE = "model.json", "weights.pt"
MODALITIES = ("CT", "MR")
INTENSITY_KINDS = ("ct", "mr", "bundle")  # bundle: the steps of an imported MONAI bundle's `pipeline`
MAX_PATCH = 512  # voxels per patch side (a patch is held many times over in memory)
MAX_BATCH = 1024  # sliding-window batch
MAX_WINDOW_VOXELS = 2**26  # patch voxels × batch: 256³ × 4 or 128³ × 32; a network's activations scale with it
MAX_OVERLAP = 0.9  # 0.9 already runs 1000 times the windows of no overlap
SPACING_RANGE_MM = (0.01, 100.0)
MAX_LESION_MM3 = 1e9  # a cubic metre
MAX_HU = 1e5  # CT window bounds
MAX_TEXT = 10_000  # characters of a name, version or description
SAFE_NAME = re.compile(r"(?!\.)[\w .+-]{1,128}(?<![. ])")  # one plain folder name: no '/', '\\', '..', control characters


@dataclass(frozen=True)
class ModelSpec:
    """The contents of ``model.json``."""

    format_version: int
    name: str
    version: str
    description: str
    modality: str
    intended_use: str
    input_channels: list[str]
    network: dict[str, Any]
    spacing: list[float]
    intensity: dict[str, Any]
    patch_size: list[int]
    overlap: float
    batch_size: int
    labels: dict[str, str]
    threshold: float
    min_lesion_mm3: float
    weights: dict[str, str]
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    input_requirements: list[str] = field(default_factory=list)  # names in input_checks.REQUIREMENT_CHECKS
    outline_threshold: float | None = None  # how far a lesion extends (≤ threshold); None: the threshold
    flip_axes: list[int] = field(default_factory=list)  # test-time mirroring along these model-grid axes (x, y, z)
    pipeline: dict[str, Any] = field(default_factory=dict)  # an imported MONAI bundle's steps (monai_bundle/)

    @classmethod
    def from_dict(cls, data: Any, source: str = "model.json") -> ModelSpec:
        """Validate ``data`` field by field; every problem is reported in one `ModelBundleError`."""
        if not isinstance(data, dict):
            raise ModelBundleError(f"{source}: must hold a JSON object")
        known = {f.name for f in fields(cls)}
        optional = {"provenance", "metrics", "input_requirements", "outline_threshold", "flip_axes", "pipeline"}
        problems = [f"missing field {name!r}" for name in sorted(known - optional - data.keys())]
        problems += [f"unknown field {name[:64]!r}" for name in sorted(data.keys() - known)]
        problems += [f"{where} is {value} (every number must be finite)" for where, value in non_finite_numbers(data)]
        if not problems:
            problems = _value_problems(data)
        if problems:
            more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise ModelBundleError(f"{source}: invalid model bundle: " + "; ".join(problems[:5]) + more)
        return cls(**data)

    @property
    def needed_channels(self) -> list[str]:
        """The input channels `detect` needs: the first ``in_channels`` of ``input_channels`` (a shipped model may
        list a channel its network does not take, e.g. ``"T1 (MS cases only)"``)."""
        kwargs = self.network.get("kwargs", {})
        count = kwargs.get("in_channels", kwargs.get("backbone", {}).get("kwargs", {}).get("n_input_channels"))
        return list(self.input_channels[:count] if isinstance(count, int) and count > 0 else self.input_channels)

    def to_dict(self) -> dict[str, Any]:
        """The ``model.json`` content (an unset outline threshold and no flips are left out, as in the file)."""
        data = asdict(self)
        if data["outline_threshold"] is None:
            del data["outline_threshold"]
        for optional in ("flip_axes", "pipeline"):
            if not data[optional]:
                del data[optional]
        return data


def non_finite_numbers(value: Any, where: str = "") -> list[tuple[str, float]]:
    """(field path, value) of every NaN or infinite number in a JSON document, e.g. ('spacing[1]', nan)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(where or "the document", value)]
    if isinstance(value, dict):
        return [found for key, item in value.items()
                for found in non_finite_numbers(item, f"{where}.{_key(key)}" if where else _key(key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in non_finite_numbers(item, f"{where}[{index}]")]
    return []


def _key(key: str) -> str:
    """A JSON key as a message shows it: plain names as they are, others quoted (newlines and all escaped)."""
    return key if re.fullmatch(r"[\w.+-]{1,64}", key) else repr(key[:64])


def _value_problems(data: dict[str, Any]) -> list[str]:
    low, high = SPACING_RANGE_MM
    checks = [
        (_is_int(data["format_version"]) and data["format_version"] == FORMAT_VERSION,
         f"format_version must be {FORMAT_VERSION}"),
        (isinstance(data["name"], str) and SAFE_NAME.fullmatch(data["name"]) is not None,
         "name must be a plain folder name (letters, digits, space, '.', '_', '+', '-'; not starting with '.')"),
        *[(isinstance(data[key], str) and len(data[key]) <= MAX_TEXT, f"{key} must be text (at most {MAX_TEXT} characters)")
          for key in ("version", "description", "intended_use")],
        (data["modality"] in MODALITIES, f"modality must be one of {MODALITIES}"),
        (_is_list(data["input_channels"], str) and len(data["input_channels"]) >= 1, "input_channels: list of names"),
        (isinstance(data["network"], dict) and isinstance(data["network"].get("name"), str)
         and isinstance(data["network"].get("kwargs", {}), dict), "network must be {name, kwargs}"),
        (not isinstance(data["network"], dict) or not isinstance(data["network"].get("kwargs", {}), dict)
         or data["network"].get("kwargs", {}).get("pretrained", False) is False,
         "network.kwargs.pretrained must be false: a bundle carries its own weights and nothing is downloaded"),
        (_is_list(data["spacing"], (int, float), 3) and all(low <= s <= high for s in data["spacing"]),
         f"spacing: 3 numbers from {low} to {high} mm"),
        (isinstance(data["intensity"], dict) and data["intensity"].get("kind") in INTENSITY_KINDS,
         f"intensity.kind must be one of {INTENSITY_KINDS}"),
        (_intensity_ok(data["intensity"]),
         f"intensity: window [low, high] within ±{MAX_HU:g} HU (ct) or percentiles [low, high] within 0–100 (mr), "
         "low < high"),
        (_is_list(data["patch_size"], int, 3) and min(data["patch_size"], default=0) > 0
         and max(data["patch_size"]) <= MAX_PATCH, f"patch_size: 3 integers from 1 to {MAX_PATCH}"),
        (_is_number(data["overlap"]) and 0 <= data["overlap"] <= MAX_OVERLAP, f"overlap must be in [0, {MAX_OVERLAP}]"),
        (_is_int(data["batch_size"]) and 1 <= data["batch_size"] <= MAX_BATCH, f"batch_size must be 1 to {MAX_BATCH}"),
        (_window_ok(data["patch_size"], data["batch_size"]),
         f"patch_size × batch_size must be at most {MAX_WINDOW_VOXELS} voxels (one sliding-window batch)"),
        (_is_number(data["threshold"]) and 0 < data["threshold"] < 1, "threshold must be in (0, 1)"),
        (_is_number(data["min_lesion_mm3"]) and 0 <= data["min_lesion_mm3"] <= MAX_LESION_MM3,
         f"min_lesion_mm3 must be in [0, {MAX_LESION_MM3:g}]"),
        (_outline_ok(data.get("outline_threshold"), data["threshold"]), "outline_threshold must be in (0, threshold]"),
        (_is_list(data.get("flip_axes", []), int) and len(set(data.get("flip_axes", []))) == len(data.get("flip_axes", []))
         and set(data.get("flip_axes", [])) <= {0, 1, 2}, "flip_axes: distinct axes among 0, 1, 2"),
        (_is_list(data.get("input_requirements", []), str)
         and set(data.get("input_requirements", [])) <= set(REQUIREMENT_CHECKS),
         f"input_requirements: a list of {sorted(REQUIREMENT_CHECKS)}"),
        (isinstance(data["labels"], dict), "labels must be an object"),
        (isinstance(data.get("pipeline", {}), dict) and (data.get("pipeline", {}).get("format") == "monai-bundle")
         == (isinstance(data["intensity"], dict) and data["intensity"].get("kind") == "bundle"),
         "pipeline (an imported MONAI bundle's, format monai-bundle) goes with intensity.kind 'bundle', and only then"),
        *[(isinstance(data.get(key, {}), dict), f"{key} must be an object") for key in ("provenance", "metrics")],
        (isinstance(data["weights"], dict) and data["weights"].get("file") == WEIGHTS_FILE
         and isinstance(data["weights"].get("sha256"), str) and len(data["weights"]["sha256"]) == 64,
         f"weights must be {{file: {WEIGHTS_FILE}, sha256: 64 hex digits}}"),
    ]
    return [message for ok, message in checks if not ok]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _window_ok(patch: Any, batch: Any) -> bool:
    """Patch voxels × batch within `MAX_WINDOW_VOXELS` (bad values are reported by their own checks)."""
    if not (_is_list(patch, int, 3) and _is_int(batch)):
        return True
    return math.prod(patch) * batch <= MAX_WINDOW_VOXELS


def _outline_ok(outline: Any, threshold: Any) -> bool:
    """No outline threshold, or one in (0, threshold] (a bad threshold is reported by its own check)."""
    if outline is None or not isinstance(threshold, (int, float)):
        return True
    return _is_number(outline) and 0 < outline <= threshold


def _intensity_ok(intensity: Any) -> bool:
    """The normalisation's numbers: a CT window, or MR percentiles (optional, default 0.5 and 99.5)."""
    if not isinstance(intensity, dict) or intensity.get("kind") == "bundle":
        return True  # reported by the kind check; a bundle's intensity steps are in its pipeline
    if intensity.get("kind") == "ct":
        pair, low_bound, high_bound = intensity.get("window"), -MAX_HU, MAX_HU
    else:
        pair, low_bound, high_bound = intensity.get("percentiles", [0.5, 99.5]), 0.0, 100.0
    return _is_list(pair, (int, float), 2) and low_bound <= pair[0] < pair[1] <= high_bound


def _is_list(value: Any, kind, length: int | None = None) -> bool:
    return (
        isinstance(value, list)
        and (length is None or len(value) == length)
        and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
    )
