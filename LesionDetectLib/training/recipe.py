"""Every training hyper-parameter in one dataclass, and the CPU and GPU presets.

A recipe is plain data (JSON-able through `Recipe.to_dict`): it is saved in checkpoints and in the
bundle's provenance, so a model can be re-trained exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import LesionDetectError
from ..input_checks import REQUIREMENT_CHECKS
from ..model_spec import MODALITIES
from ..networks import MONAI_NETWORKS

LOSSES = ("dicece", "dicefocal")
CACHE_MODES = ("auto", "memory", "disk", "none")
SELECT_METRICS = ("f1", "sensitivity", "dice", "cpm", "last")  # last: the final epoch, chosen by no validation
LESION_RULES = ("glioma", "ms", "ct-tumour")
DEFAULT_CT_WINDOW = (-200.0, 300.0)
DEFAULT_MR_PERCENTILES = (0.5, 99.5)


def unet_kwargs(channels: tuple[int, ...], num_res_units: int) -> dict[str, Any]:
    """kwargs of a MONAI ``UNet`` with stride-2 levels (cheap at full resolution, so fast on CPUs too); without
    ``in_channels``, which the dataset's channels give (a recipe records no count it does not decide)."""
    return {
        "spatial_dims": 3, "out_channels": 1, "channels": list(channels),
        "strides": [2] * (len(channels) - 1), "num_res_units": num_res_units,
    }


@dataclass(frozen=True)
class Recipe:
    """How to train: grid, network, loss, optimiser, schedule, sampling, augmentation, validation, bundle.

    ``batch_size`` counts cases per step; each case gives ``samples_per_case`` patches, so one step sees
    ``batch_size · samples_per_case`` patches (per process under torchrun). ``positive_fraction`` of the
    patch centres lie on a lesion voxel (lesions are small and rare: oversample them); the others on a
    non-lesion voxel of the body/brain. ``warmup_epochs`` ramp the learning rate up linearly, then it
    follows a cosine down to ``lr · min_lr_ratio`` (stepped every iteration).
    """

    # what the model is (None: from the dataset / the modality)
    name: str | None = None
    version: str = "1.0.0"
    description: str = ""
    modality: str | None = None
    intensity: dict[str, Any] | None = None
    input_requirements: tuple[str, ...] = ()  # e.g. ("skull-stripped",): checked (with a warning) at detection
    # grid and network
    spacing: tuple[float, float, float] = (1.5, 1.5, 1.5)
    patch_size: tuple[int, int, int] = (64, 64, 64)
    network: str = "UNet"
    network_kwargs: dict[str, Any] = field(default_factory=lambda: unet_kwargs((16, 32, 64, 128, 256), 1))
    # optimisation
    loss: str = "dicece"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    min_lr_ratio: float = 0.01
    epochs: int = 60
    iterations_per_epoch: int = 50
    batch_size: int = 2
    samples_per_case: int = 2
    positive_fraction: float = 0.67
    hard_negative_fraction: float = 0.0  # of patch centres on mined false positives (see `mining_interval`)
    centre_jitter: float = 0.0  # how far a sampled voxel may lie from its patch's centre, in half patch sides
    mining_interval: int = 5  # epochs between hard-negative mining passes over the training cases
    # augmentation
    flip: bool = True
    affine: bool = True
    rotate_degrees: float = 10.0
    scale_range: float = 0.1
    intensity_augment: bool = True
    heavy_augment: bool = False  # bias fields, gamma contrast, blur/sharpen, simulated thick slices
    copy_paste: float = 0.0
    # validation and the bundle's inference settings
    val_interval: int = 5
    overlap: float = 0.25
    sw_batch_size: int = 2
    flip_axes: tuple[int, ...] = ()  # test-time augmentation: model-grid axes (0 = x, R-L) also predicted mirrored
    threshold: float = 0.5
    min_lesion_mm3: float = 10.0
    lesion_rule: str | None = None  # None: ct-tumour for CT, ms for MR (a case's lesion_type tag wins)
    select_metric: str = "f1"
    # running
    seed: int = 0
    amp: bool = True
    num_workers: int = 0
    cache: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spacing"], data["patch_size"] = list(self.spacing), list(self.patch_size)
        data["input_requirements"] = list(self.input_requirements)
        data["flip_axes"] = list(self.flip_axes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LesionDetectError(f"unknown recipe field(s): {', '.join(unknown)}")
        values = dict(data)
        for key in ("spacing", "patch_size", "input_requirements", "flip_axes"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def updated(self, **changes: Any) -> Recipe:
        """A copy with ``changes`` (None values are ignored)."""
        return replace(self, **{key: value for key, value in changes.items() if value is not None})

    def resolved_intensity(self, modality: str) -> dict[str, Any]:
        """The intensity normalisation to use: the recipe's, or the default for ``modality``."""
        if self.intensity is not None:
            return dict(self.intensity)
        if modality == "CT":
            return {"kind": "ct", "window": list(DEFAULT_CT_WINDOW)}
        return {"kind": "mr", "percentiles": list(DEFAULT_MR_PERCENTILES)}

    def check(self) -> None:
        """Raise `LesionDetectError` listing every invalid value."""
        problems = [message for ok, message in self._checks() if not ok]
        if problems:
            raise LesionDetectError("invalid training recipe: " + "; ".join(problems))

    def _checks(self) -> list[tuple[bool, str]]:
        divisor = _size_divisor(self.network, self.network_kwargs)
        intensity = self.intensity
        return [
            (self.modality is None or self.modality in MODALITIES, f"modality must be one of {MODALITIES}"),
            (intensity is None or _intensity_ok(intensity),
             "intensity must be {kind: ct, window: [low, high]} or {kind: mr, percentiles: [low, high]}"),
            (set(self.input_requirements) <= set(REQUIREMENT_CHECKS),
             f"input requirements must be among {sorted(REQUIREMENT_CHECKS)}"),
            (len(self.spacing) == 3 and all(_finite(s) and s > 0 for s in self.spacing), "spacing: 3 positive mm"),
            (len(self.patch_size) == 3 and all(isinstance(p, int) and p > 0 for p in self.patch_size),
             "patch size: 3 positive integers"),
            (all(p % divisor == 0 for p in self.patch_size),
             f"patch size {list(self.patch_size)} must be a multiple of {divisor} for {self.network}"),
            (self.network in MONAI_NETWORKS, f"network must be one of {MONAI_NETWORKS}"),
            (self.network_kwargs.get("in_channels", 1) == 1,
             "in_channels comes from the dataset's channels; leave it out of the network kwargs"),
            (self.loss in LOSSES, f"loss must be one of {LOSSES}"),
            (_finite(self.lr) and self.lr > 0, "lr must be > 0"),
            (_finite(self.weight_decay) and self.weight_decay >= 0, "weight decay must be ≥ 0"),
            (self.warmup_epochs >= 0, "warm-up epochs must be ≥ 0"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (self.epochs >= 1, "epochs must be ≥ 1"),
            (self.iterations_per_epoch >= 1, "iterations per epoch must be ≥ 1"),
            (self.batch_size >= 1, "batch size must be ≥ 1"),
            (self.samples_per_case >= 1, "samples per case must be ≥ 1"),
            (0 <= self.positive_fraction <= 1, "positive fraction must be in [0, 1]"),
            (0 <= self.hard_negative_fraction <= 1 - self.positive_fraction,
             "hard-negative fraction must be in [0, 1 - positive fraction]"),
            (self.mining_interval >= 1, "mining interval must be ≥ 1 epoch"),
            (0 <= self.rotate_degrees <= 180, "rotation must be in [0, 180] degrees"),
            (0 <= self.scale_range < 1, "scale range must be in [0, 1)"),
            (0 <= self.centre_jitter < 1, "centre jitter must be in [0, 1)"),
            (0 <= self.copy_paste <= 1, "copy-paste probability must be in [0, 1]"),
            (self.val_interval >= 1, "validation interval must be ≥ 1"),
            (0 <= self.overlap < 1, "overlap must be in [0, 1)"),
            (self.sw_batch_size >= 1, "sliding-window batch size must be ≥ 1"),
            (len(set(self.flip_axes)) == len(self.flip_axes) and set(self.flip_axes) <= {0, 1, 2},
             "flip axes: distinct values among 0, 1, 2"),
            (0 < self.threshold < 1, "threshold must be in (0, 1)"),
            (_finite(self.min_lesion_mm3) and self.min_lesion_mm3 >= 0, "minimum lesion volume must be ≥ 0"),
            (self.lesion_rule is None or self.lesion_rule in LESION_RULES, f"lesion rule must be one of {LESION_RULES}"),
            (self.select_metric in SELECT_METRICS, f"selection metric must be one of {SELECT_METRICS}"),
            (self.num_workers >= 0, "workers must be ≥ 0"),
            (self.cache in CACHE_MODES, f"cache must be one of {CACHE_MODES}"),
            (self.name is None or (self.name.strip() != "" and "/" not in self.name), "bad model name"),
        ]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _intensity_ok(intensity: dict[str, Any]) -> bool:
    key = {"ct": "window", "mr": "percentiles"}.get(intensity.get("kind"))
    values = intensity.get(key) if key else None
    return (
        isinstance(values, (list, tuple)) and len(values) == 2 and all(_finite(v) for v in values)
        and values[0] < values[1] and (key == "window" or values[0] >= 0 and values[1] <= 100)
    )


def _size_divisor(network: str, kwargs: dict[str, Any]) -> int:
    """What each patch side must be a multiple of for the network's down- and up-sampling to fit."""
    if network == "UNet":
        return int(math.prod(int(s) if isinstance(s, int) else max(s) for s in kwargs.get("strides", [2])))
    if network in ("BasicUNet", "AttentionUnet", "FlexibleUNet"):
        return 16
    return 1


def cpu_recipe() -> Recipe:
    """A small, coarse model that trains on a 2-core CPU in about an hour (3000 iterations of 4 patches).

    1.5 mm grid, 64³ patches (96 mm), a stride-2 MONAI UNet (16…256 channels, 1 residual unit, 2.4 M
    parameters, ~10 MB) that also infers fast on CPUs; 60 epochs × 50 iterations × 2 cases × 2 patches.
    On 2 idle cores the network step takes ~0.6 s; one worker process prepares the next batch meanwhile.
    """
    return Recipe(num_workers=1)


def gpu_recipe() -> Recipe:
    """A finer, larger-patch model for one GPU (bf16 autocast): 1 mm grid, 128³ patches, 2 residual units.

    200 epochs × 100 iterations × 2 cases × 4 patches; data prepared by 8 worker processes.
    """
    return Recipe(
        spacing=(1.0, 1.0, 1.0), patch_size=(128, 128, 128),
        network_kwargs=unet_kwargs((16, 32, 64, 128, 256), 2),
        epochs=200, iterations_per_epoch=100, batch_size=2, samples_per_case=4, warmup_epochs=5,
        val_interval=10, sw_batch_size=4, num_workers=8,
    )


PRESETS = {"cpu": cpu_recipe, "gpu": gpu_recipe}


def preset(name: str) -> Recipe:
    """The recipe preset ``cpu`` or ``gpu``."""
    if name not in PRESETS:
        raise LesionDetectError(f"unknown recipe preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def default_preset() -> str:
    """'gpu' when a CUDA GPU is available, else 'cpu'."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"
