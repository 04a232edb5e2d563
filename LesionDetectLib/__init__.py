"""LesionDetect: AI lesion detection in CT and MRI (the library behind the 3D Slicer module and the CLI).

Light to import: torch and MONAI load only when a model runs.

>>> from LesionDetectLib import read_volume, load_model, detect
>>> result = detect(read_volume("CT.nii.gz"), load_model("ct-tumours"))
>>> result.write("out/")
"""

from .bundles import Model, list_models, load_model
from .detect import detect
from .errors import LesionDetectError
from .io import read_volume
from .lesions import Lesion
from .result import DetectionResult
from .volume import Volume

__version__ = "0.1.0"
__all__ = [
    "DetectionResult", "Lesion", "LesionDetectError", "Model", "Volume",
    "detect", "list_models", "load_model", "read_volume", "__version__",
]
