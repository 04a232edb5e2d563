"""Training LesionDetect models on annotated scans (`lesiondetect train`).

Imports torch and MONAI only inside the functions that run training, so this package is cheap to import.

>>> from LesionDetectLib.training import train, preset
>>> result = train("Task01/dataset.json", "models/my-lesions", preset("cpu"))
>>> result.bundle  # a model bundle: `lesiondetect models import models/my-lesions`
"""

from __future__ import annotations

from .checks import validate_dataset
from .dataset import Case, LabelledDataset, load_dataset
from .recipe import PRESETS, Recipe, default_preset, preset
from .splits import Split, split_cases
from .train import TrainingResult, train

__all__ = [
    "PRESETS", "Case", "LabelledDataset", "Recipe", "Split", "TrainingResult", "default_preset",
    "load_dataset", "preset", "split_cases", "train", "validate_dataset",
]
