"""The input channels of a training dataset's cases, and reading a case's channels aligned on one grid.

A datalist item's ``image`` is one path or, MONAI Decathlon style, a list of paths (one per channel); extra item
keys can hold other sequences (`ChannelOptions.keys`: ``T1=t1`` makes the item's ``t1`` path the T1 channel). The
``image`` channels are named by `ChannelOptions.names` (``--channels``), else by the dataset's ``modality`` /
``channel_names``. Every channel is resampled onto the first one's grid by `channels.align_channels`, exactly as
`detect` does, so a trained model's ``input_channels`` are its network's input channels in order.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputImageError
from ..io import read_volume
from ..volume import Volume


@dataclass(frozen=True)
class ChannelOptions:
    """How to find and name the channels of a dataset's cases (the ``--channels`` / ``--channel-key`` options)."""

    names: tuple[str, ...] = ()  # the names of the ``image`` channels, in order
    keys: tuple[tuple[str, str], ...] = ()  # (channel name, datalist key) of further channels


AS_DECLARED = ChannelOptions()  # the ``image`` channels named as the dataset names them, no keyed channel


def datalist_path(text: str, base: Path) -> Path:
    """A datalist path: ``~`` expanded, relative to the datalist's folder unless absolute."""
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base / path


def image_paths(item: Any) -> list[str] | None:
    """A datalist item's ``image`` as a list of paths; None unless it is one path or a list of paths."""
    image = item.get("image") if isinstance(item, dict) else None
    if isinstance(image, str) and image:
        return [image]
    if isinstance(image, list) and image and all(isinstance(path, str) and path for path in image):
        return list(image)
    return None


def usual_image_count(items: Sequence[Any]) -> int:
    """How many ``image`` paths most items list (1 when none lists any)."""
    counts = Counter(len(paths) for item in items if (paths := image_paths(item)))
    return counts.most_common(1)[0][0] if counts else 1


def channel_names(declared: Sequence[str], image_count: int, options: ChannelOptions) -> tuple[tuple[str, ...], list[str]]:
    """(the channel names in network order, problems): the ``image`` channels, then the keyed ones.

    One unnamed image channel and no keyed channel give no names (the model's modality then names it).
    """
    problems: list[str] = []
    if options.names:
        names = list(options.names)
        if len(names) != image_count:
            problems.append(f"--channels names {len(names)} channel(s) but 'image' lists {image_count} path(s) per case")
    elif len(declared) >= image_count:
        names = list(declared[:image_count])
    elif image_count == 1 and not options.keys:
        names = []
    else:
        problems.append(f"'image' lists {image_count} path(s) per case but the dataset names {len(declared)} channel(s) "
                        "in 'modality' / 'channel_names'; name them with --channels, e.g. --channels FLAIR,T1")
        names = [f"channel {number}" for number in range(image_count)]
    names += [name for name, _ in options.keys]
    folded = [name.casefold() for name in names]
    twice = [name for name, key in zip(names, folded) if folded.count(key) > 1]
    if twice:
        problems.append(f"channel {twice[0]!r} is named twice")
    return tuple(names), problems


def item_channels(item: dict, case_id: str, base: Path, names: Sequence[str],
                  options: ChannelOptions) -> tuple[tuple[tuple[str, Path], ...], str | None]:
    """((channel name, path) of each channel of a datalist item, in network order; a problem, or None)."""
    paths = image_paths(item) or []
    image_names = names[: len(names) - len(options.keys)]
    if len(paths) != len(image_names):
        return (), (f"case {case_id}: 'image' lists {len(paths)} path(s); the dataset's cases have "
                    f"{len(image_names)} ({', '.join(image_names)})")
    found = [(name, datalist_path(path, base)) for name, path in zip(image_names, paths)]
    for name, key in options.keys:
        value = item.get(key)
        if not isinstance(value, str) or not value:
            return (), f"case {case_id}: channel {name!r} (datalist key {key!r}) is missing"
        found.append((name, datalist_path(value, base)))
    return tuple(found), None


def read_channels(channels: Sequence[tuple[str, Path]], reference: Volume | None = None) -> tuple[list[Volume], Volume]:
    """(the channels in network order, each on the first one's grid; that first, reference volume).

    ``reference``: the first channel, when already read. Errors name the channel (`channels.align_channels`);
    a single channel is read as it is.
    """
    from ..channels import align_channels

    if len(channels) == 1:
        volume = reference if reference is not None else read_volume(channels[0][1])
        return [volume], volume
    volumes = {}
    for index, (name, path) in enumerate(channels):
        try:
            volumes[name] = reference if index == 0 and reference is not None else read_volume(path)
        except InputImageError as error:
            raise InputImageError(f"channel {name}: {error}") from None
    return align_channels(volumes, [name for name, _ in channels])
