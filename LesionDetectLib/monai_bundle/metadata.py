"""``model.json`` fields from a MONAI bundle's ``metadata.json`` and parsed pipeline.

The card (name, version, authors, licence, intended use) goes into the fields ``models show`` prints; the
input channels and output labels come from ``network_data_format``; the lesion labels from the metadata's
``lesion_labels`` (a list of output indices) where it says so, else from the importer's ``--lesion-labels``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelBundleError
from ..model_spec import FORMAT_VERSION, MAX_TEXT

MODALITY_NAMES = {"CT": "CT", "MR": "MR", "MRI": "MR"}
GENERIC_CHANNEL_NAMES = {"image", "img", "input", "0"}
CARD_KEYS = ("name", "authors", "copyright", "license", "task", "data_source", "references", "monai_version",
             "eval_metrics")
DEFAULT_THRESHOLD = 0.5  # a sigmoid/softmax probability, or a detection box score


def _format(metadata: dict[str, Any], direction: str, key: str) -> dict[str, Any]:
    formats = metadata.get("network_data_format", {})
    section = formats.get(direction, {}) if isinstance(formats, dict) else {}
    value = section.get(key, {}) if isinstance(section, dict) else {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value or "")
    return text[:MAX_TEXT]


def modality(metadata: dict[str, Any], source: str) -> str:
    found = str(_format(metadata, "inputs", "image").get("modality", "")).upper()
    if found not in MODALITY_NAMES:
        raise ModelBundleError(f"{source}: metadata.json network_data_format.inputs.image.modality is "
                               f"{found or 'missing'!r}; LesionDetect runs CT and MR bundles")
    return MODALITY_NAMES[found]


def input_channels(metadata: dict[str, Any], pipeline: dict[str, Any], kind: str) -> list[str]:
    """Channel names in network order; a single generic channel is named after the modality (e.g. CT)."""
    channel_def = _format(metadata, "inputs", "image").get("channel_def", {})
    count = pipeline["network"]["kwargs"].get("in_channels", pipeline["network"]["kwargs"].get(
        "backbone", {}).get("kwargs", {}).get("n_input_channels", 1))
    names = [str(channel_def.get(str(index), f"channel{index}")) for index in range(count)]
    if count == 1 and names[0].lower() in GENERIC_CHANNEL_NAMES | {"channel0"}:
        return [kind]
    if len(set(names)) != len(names):
        raise ModelBundleError(f"metadata.json: input channel names repeat: {names}")
    return names


def output_labels(metadata: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, str]:
    if pipeline["task"] == "detection":
        return {"0": "background", "1": "lesion"}
    count = pipeline["network"]["kwargs"].get("out_channels", 1)
    channel_def = _format(metadata, "outputs", "pred").get("channel_def", {})
    return {str(index): str(channel_def.get(str(index), f"label {index}")) for index in range(count)}


def lesion_labels(metadata: dict[str, Any], pipeline: dict[str, Any], chosen: list[int] | None,
                  labels: dict[str, str], source: str) -> list[int]:
    """The output indices that are lesions: metadata ``lesion_labels``, else ``chosen``; checked against outputs."""
    if pipeline["task"] == "detection":
        return [1]
    declared = metadata.get("lesion_labels")
    found = chosen if chosen is not None else declared
    choices = [int(i) for i in labels if not (pipeline["activation"] == "softmax" and i == "0")]
    if pipeline.get("merged_channels"):
        choices = [i for i in choices if i in pipeline["merged_channels"]]
    listing = ", ".join(f"{i}={labels[str(i)]}" for i in choices)
    if found is None:
        raise ModelBundleError(f"{source}: the bundle does not say which output labels are lesions; pass "
                               f"--lesion-labels with some of: {listing}")
    if not (isinstance(found, list) and found and all(isinstance(i, int) and not isinstance(i, bool) for i in found)
            and set(found) <= set(choices) and len(set(found)) == len(found)):
        raise ModelBundleError(f"{source}: lesion labels {found} are not among this bundle's outputs: {listing}")
    return sorted(found)


def model_card(metadata: dict[str, Any], pipeline: dict[str, Any], chosen: list[int] | None,
               source: str) -> dict[str, Any]:
    """All of ``model.json`` but the name and weights, from the bundle's metadata and pipeline."""
    kind = modality(metadata, source)
    labels = output_labels(metadata, pipeline)
    pipeline = {**pipeline, "lesion_labels": lesion_labels(metadata, pipeline, chosen, labels, source)}
    window = pipeline["inferer"]
    threshold = (pipeline.get("discrete") or {}).get("threshold", DEFAULT_THRESHOLD)
    return {
        "format_version": FORMAT_VERSION,
        "version": _text(metadata.get("version", "")),
        "description": _text(metadata.get("description", metadata.get("name", "imported MONAI bundle"))),
        "modality": kind,
        "intended_use": _text(metadata.get("intended_use", "")),
        "input_channels": input_channels(metadata, pipeline, kind),
        "network": pipeline["network"],
        "spacing": pipeline["grid"]["spacing"] or [1.0, 1.0, 1.0],  # nominal when the bundle keeps the input grid
        "intensity": {"kind": "bundle"},
        "patch_size": window["roi_size"],
        "overlap": window["overlap"],
        "batch_size": window["sw_batch_size"],
        "labels": labels,
        "threshold": threshold if 0 < threshold < 1 else DEFAULT_THRESHOLD,
        "min_lesion_mm3": 0.0,
        "provenance": {"monai_bundle": {key: metadata[key] for key in CARD_KEYS if key in metadata}
                       | {"version": metadata.get("version"), "source": source}},
        "pipeline": pipeline,
    }
