"""`detect(volume, model)`: the one path from a volume to lesions that every caller uses."""

from __future__ import annotations

from .brain_mask import ENGINE as SKULL_STRIP_ENGINE
from .brain_mask import has_skull, mask_outside_brain, strip_skull
from .bundles import Model, load_model
from .channels import Inputs, align_channels, model_input_of
from .errors import ModalityMismatchError
from .input_checks import SKULL_STRIPPED, input_warnings
from .progress import ProgressCallback, silent
from .resources import check_memory
from .result import DetectionResult
from .volume import Volume


def _memory_window(spec, grid_size) -> tuple[int, ...]:
    """The window whose activations bound the memory: the model's patch, or the image itself for a MONAI
    detection bundle that runs on the whole (smaller) image at once."""
    if spec.pipeline and spec.pipeline["task"] == "detection":
        from .monai_bundle.detection import runs_whole_image

        if runs_whole_image(spec.pipeline, grid_size):
            return tuple(int(n) for n in grid_size)
    return tuple(spec.patch_size)


def check_modality(volume: Volume, model: Model, force: bool = False) -> None:
    """Refuse an input whose known modality differs from the model's (CT vs MR) unless forced."""
    if force or volume.modality is None or volume.modality == model.spec.modality:
        return
    raise ModalityMismatchError(
        f"model {model.name!r} is for {model.spec.modality} but the input is {volume.modality}; "
        "choose a model of that modality or pass --force-modality"
    )


def detect(
    volume: Inputs,
    model: Model | str,
    threshold: float | None = None,
    min_volume_mm3: float | None = None,
    max_lesions: int | None = None,
    device: str = "auto",
    outline_threshold: float | None = None,
    batch_size: int | None = None,
    overlap: float | None = None,
    force_modality: bool = False,
    progress: ProgressCallback = silent,
    skull_strip: bool = True,
) -> DetectionResult:
    """Find lesions in ``volume`` with ``model`` (a `Model` or a name/path); settings default to the model's.

    ``volume`` is one `Volume`, or ``{channel name: Volume}`` for a model with several ``input_channels``: the
    first given is the reference, the others are resampled onto its grid, and the outputs lie on its grid.

    ``threshold`` decides which regions are lesions (their highest probability reaches it) and
    ``outline_threshold`` how far each extends; the outline threshold is never above the threshold.
    ``skull_strip``: a brain MRI with skull and scalp, given a model that needs a skull-stripped brain, is
    stripped first (`brain_mask`): the model sees the brain alone and lesions lie inside the brain mask.
    """
    from . import infer, lesion_boxes, lesions, preprocess

    model = load_model(model) if not isinstance(model, Model) else model
    channels, volume = align_channels(volume, model.spec.needed_channels)
    check_modality(volume, model, force_modality)
    spec = model.spec
    threshold = spec.threshold if threshold is None else threshold
    outline_threshold = lesions.effective_outline_threshold(
        threshold, spec.outline_threshold if outline_threshold is None else outline_threshold
    )
    min_volume_mm3 = spec.min_lesion_mm3 if min_volume_mm3 is None else min_volume_mm3
    device = infer.resolve_device(device)

    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        progress("warning", 0.1, message)

    requirements, brain = spec.input_requirements, None
    if skull_strip and SKULL_STRIPPED in requirements:
        if has_skull(volume):
            progress("preprocess", 0.05, f"skull stripping with {SKULL_STRIP_ENGINE}")
            brain = strip_skull(volume)
            warn(f"the input was not skull-stripped: LesionDetect stripped it with {SKULL_STRIP_ENGINE} and looked "
                 "for lesions inside that brain mask only (--no-skull-strip to skip)")
        else:  # just checked: a brain alone
            requirements = [name for name in requirements if name != SKULL_STRIPPED]
    model_volume = volume if brain is None else mask_outside_brain(volume, brain)
    for message in input_warnings(model_volume, requirements):  # after stripping: is the masked input a brain?
        warn(message)
    grid_size = preprocess.model_grid(volume, tuple(spec.spacing)).size
    check_memory(volume.array.shape, grid_size, _memory_window(spec, grid_size),
                 batch_size or infer.default_batch_size(spec.batch_size, device), spec.overlap if overlap is None else overlap)
    if spec.pipeline:  # an imported MONAI bundle: its own preprocessing, inferer and outputs
        from .detector_boxes import box_probability, lesions_from_boxes
        from .monai_bundle.inference import bundle_boxes, bundle_probability

        progress("inference", 0.15, f"MONAI bundle {spec.network['name']} on {device}")
        if spec.pipeline["task"] == "detection":
            boxes = bundle_boxes(model, channels, device)
            progress("postprocess", 0.87, "connected components and measurements")
            warn("a box detector: each lesion's segment is its box, not an outline")
            found, label_map = lesions_from_boxes(boxes, volume, threshold, min_volume_mm3, max_lesions)

            def probability():
                return box_probability(found, label_map)
        else:
            bundle_map = bundle_probability(model, channels, threshold, device, overlap, batch_size)
            progress("postprocess", 0.87, "connected components and measurements")
            found, label_map = lesions.from_probability(
                bundle_map, volume, threshold, min_volume_mm3, max_lesions, outline_threshold=outline_threshold
            )

            def probability():
                return bundle_map
    else:
        progress("preprocess", 0.1, f"resampling to {spec.spacing} mm and normalising")
        model_input = model_input_of([model_volume, *channels[1:]], spec)
        progress("inference", 0.15, f"{spec.network['name']} on {device}, grid {model_input.grid.size}")
        model_probability, device = infer.model_grid_probability(
            model.network, model_input, tuple(spec.patch_size), spec.overlap if overlap is None else overlap,
            batch_size or infer.default_batch_size(spec.batch_size, device), device,
            on_progress=lambda done: progress("inference", 0.15 + 0.7 * done, "sliding window"), warn=warn,
            flip_axes=spec.flip_axes,
        )
        progress("postprocess", 0.85, "connected components and measurements")
        grid = model_input.grid
        del model_input, model_volume  # free the model-grid image and masks before post-processing
        inside = None if brain is None else brain.array > 0
        found, label_map = lesion_boxes.find_lesions(
            model_probability, grid, volume, threshold, min_volume_mm3, max_lesions, outline_threshold=outline_threshold,
            inside=inside,
        )

        def probability():
            full = preprocess.to_input_grid(model_probability, grid, volume)
            return full if inside is None else full * inside
    settings = {
        "threshold": threshold, "outline_threshold": outline_threshold, "min_volume_mm3": min_volume_mm3,
        "max_lesions": max_lesions, "skull_strip": SKULL_STRIP_ENGINE if brain is not None else None,
        "device": device, "model": model.name, "model_version": spec.version,
    }
    return DetectionResult(
        volume=volume, lesions=found, label_map=label_map,
        probability=probability,
        threshold=threshold, model_name=model.name, settings=settings, warnings=warnings,
    )
