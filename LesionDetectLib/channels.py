"""Multi-sequence input: match the given volumes to a model's ``input_channels`` and align them by physical
space onto the reference (the first given) channel's grid.

Nothing is guessed: a missing, extra or duplicated channel is an error naming it, and so is a channel that
does not cover enough of the reference volume. Names match case-insensitively (``flair`` is ``FLAIR``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .errors import InputImageError
from .io import validate_volume
from .volume import Volume

MIN_COVERAGE = 0.8  # a channel must cover this fraction of the reference volume
Inputs = Volume | Mapping[str, Volume]


def match_channels(inputs: Inputs, names: list[str]) -> list[tuple[str, Volume]]:
    """(model channel name, volume) in the order given (the reference first), checked against ``names``."""
    if isinstance(inputs, Volume):
        if len(names) != 1:
            raise InputImageError(f"the model needs {len(names)} channels ({', '.join(names)}); give each one "
                                  "(Python: {name: volume}; CLI: --channel NAME=PATH)")
        return [(names[0], inputs)]
    if not isinstance(inputs, Mapping) or not inputs:
        raise InputImageError("no input volume given")
    by_key = {name.casefold(): name for name in names}
    given: dict[str, str] = {}
    for key in inputs:
        folded = str(key).casefold()
        if folded in given:
            raise InputImageError(f"channel {by_key.get(folded, key)!r} is given twice ({given[folded]!r} and {key!r})")
        given[folded] = str(key)
    extra = [given[key] for key in given if key not in by_key]
    if extra:
        raise InputImageError(f"channel {extra[0]!r} is not an input of this model (its channels: {', '.join(names)})")
    missing = [name for name in names if name.casefold() not in given]
    if missing:
        raise InputImageError(f"channel {missing[0]!r} is missing (the model needs {', '.join(names)})")
    matched = [(by_key[key.casefold()], inputs[key]) for key in inputs]
    _refuse_same_image(matched)
    return matched


def _refuse_same_image(matched: list[tuple[str, Volume]]) -> None:
    """Two channels holding the very same image are a mistake (e.g. one file given for two sequences)."""
    for index, (name, volume) in enumerate(matched):
        for other_name, other in matched[:index]:
            if volume is other or (volume.same_geometry(other) and np.array_equal(volume.array, other.array)):
                raise InputImageError(f"channels {other_name!r} and {name!r} are the same image; "
                                      "give each sequence its own volume")


def coverage(channel: Volume, reference: Volume) -> float:
    """The fraction of the reference's voxel centres that lie inside ``channel``'s volume."""
    import SimpleITK as sitk

    inside = sitk.Image([int(n) for n in channel.shape_ijk], sitk.sitkUInt8) + 1
    _copy_geometry(inside, channel)
    covered = sitk.Resample(inside, reference.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return float(sitk.GetArrayViewFromImage(covered).mean())


def _copy_geometry(image, volume: Volume) -> None:
    image.SetSpacing([float(s) for s in volume.spacing])
    image.SetOrigin([float(o) for o in volume.origin])
    image.SetDirection([float(d) for d in np.asarray(volume.direction).ravel()])


def align(channel: Volume, reference: Volume, name: str, reference_name: str) -> Volume:
    """``channel`` resampled (linear, through physical space) onto the reference grid; refused if it covers
    less than `MIN_COVERAGE` of it."""
    if channel.same_geometry(reference):
        return channel
    import SimpleITK as sitk

    covered = coverage(channel, reference)
    if covered < MIN_COVERAGE:
        where = "does not overlap" if covered == 0 else f"covers only {covered:.0%} of"
        raise InputImageError(f"channel {name!r} {where} the reference channel {reference_name!r} in physical space "
                              f"(at least {MIN_COVERAGE:.0%} needed); are they scans of the same session?")
    resampled = sitk.Resample(channel.to_sitk(), reference.to_sitk(), sitk.Transform(), sitk.sitkLinear, 0.0,
                              sitk.sitkFloat32)
    return Volume.from_sitk(resampled, name=channel.name, modality=channel.modality)


def align_channels(inputs: Inputs, names: list[str]) -> tuple[list[Volume], Volume]:
    """(the channels in the model's order, all on the reference grid; the reference volume).

    The reference is the first volume given; each volume is validated first, with its channel in the message.
    """
    matched = match_channels(inputs, names)
    for name, volume in matched:
        validate_volume(volume, source=volume.name if len(matched) == 1 else f"channel {name} ({volume.name})")
    reference_name, reference = matched[0]
    aligned = {name: align(volume, reference, name, reference_name) for name, volume in matched}
    return [aligned[name] for name in names], reference


def model_input_of(channels: list[Volume], spec):
    """`preprocess.prepare_input` for several channels: each resampled and normalised as the first is, stacked
    in the model's order; the foreground and scanned masks are the first channel's."""
    from dataclasses import replace

    from . import preprocess

    first = preprocess.prepare_input(channels[0], spec)
    if len(channels) == 1:
        return first
    others = [preprocess.normalise_intensity(preprocess.to_model_grid(channel, spec.spacing)[0], spec.intensity)
              for channel in channels[1:]]
    return replace(first, image=np.concatenate([first.image, np.stack(others)]))


def with_main_channel(main: Volume, others: Mapping[str, Volume], names: list[str]) -> Inputs:
    """``{channel: volume}`` for `detect` from a main input and named other channels (``--channel T1=…``):
    the main input is the model's one channel not named among the others, and the reference."""
    if not others:
        return main
    named = {name.casefold() for name in others}
    left = [name for name in names if name.casefold() not in named]
    if len(left) != 1:
        unnamed = ", ".join(left) if left else "none"
        raise InputImageError(f"the main input must be the one channel of the model ({', '.join(names)}) not given "
                              f"with --channel; left unnamed: {unnamed}")
    return {left[0]: main, **others}
