"""The installed models as the library lists them (``lesiondetect models list --json``, run in the detection
process's Python, so Slicer's process never imports torch or MONAI), and the input channels each one needs."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import DetectionError


@dataclass(frozen=True)
class ModelRecord:
    """One installed model: what the panel shows and ``input_channels`` (network order; the first is the main
    input, the reference grid of the outputs)."""

    name: str
    version: str
    modality: str
    description: str
    threshold: float | None
    inputChannels: tuple[str, ...]
    task: str = "segmentation"


def parseModelList(text: str) -> list[ModelRecord]:
    """The records of ``models list --json`` output; `DetectionError` if it is not that."""
    try:
        entries = json.loads(text)
        return [ModelRecord(str(entry["name"]), str(entry["version"]), str(entry["modality"]),
                            str(entry.get("description", "")), entry.get("threshold"),
                            tuple(str(name) for name in entry.get("input_channels") or ()),
                            str(entry.get("task", "segmentation"))) for entry in entries]
    except (ValueError, TypeError, KeyError) as error:
        raise DetectionError(f"The model list of the library could not be read: {error}") from error


def extraChannels(model) -> tuple[str, ...]:
    """The channels ``model`` needs beyond the main input volume (none for one-channel models or no model)."""
    return tuple(getattr(model, "inputChannels", ())[1:])


def volumeNamedFor(channel: str, volumes, exclude=()) -> object | None:
    """The volume for ``channel`` by name: one named exactly so (case-insensitive), else the shortest name that
    contains it ("T1" → "Case 3 T1", not "T1c" when a "T1" exists), never one of ``exclude``; None if none."""
    wanted = channel.casefold()
    candidates = [volume for volume in volumes if volume not in exclude and wanted in volume.GetName().casefold()]
    return min(candidates, key=lambda volume: (volume.GetName().casefold() != wanted, len(volume.GetName())),
               default=None)
