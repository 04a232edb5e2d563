"""What a detection run is asked to do: `DetectionOptions` (the one object the command line is built from) and the
module's parameter node, which holds the same options, by the same names, for the panel."""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated

from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper


class Device(enum.Enum):
    """Where the model runs; the value is the ``--device`` argument."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"

    def label(self) -> str:
        return {"auto": "Automatic (GPU if available)", "cpu": "CPU", "cuda": "GPU (CUDA)"}[self.value]

    @classmethod
    def parse(cls, value: Device | str) -> Device:
        """A `Device`, or its name; ``gpu`` means cuda."""
        if isinstance(value, cls):
            return value
        name = str(value).lower()
        return cls("cuda" if name == "gpu" else name)


@dataclasses.dataclass(frozen=True)
class DetectionOptions:
    """Options of one run. ``model`` "" picks the library's model for the volume's modality; ``threshold`` None and
    ``minimumLesionSizeMm3`` 0 use the model's defaults; ``showIn3D`` builds the lesion surfaces."""

    model: str = ""
    threshold: float | None = None
    minimumLesionSizeMm3: float = 0.0
    device: Device = Device.auto
    showIn3D: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", Device.parse(self.device))

    def commandArguments(self) -> list[str]:
        """The ``detect`` options for these settings (``showIn3D`` is the module's own)."""
        arguments = ["--device", self.device.value]
        if self.model:
            arguments += ["--model", self.model]
        if self.threshold is not None:
            arguments += ["--threshold", repr(float(self.threshold))]
        if self.minimumLesionSizeMm3:
            arguments += ["--min-size", repr(float(self.minimumLesionSizeMm3))]
        return arguments


@parameterNodeWrapper
class LesionDetectParameterNode:
    """The panel's state: ``inputVolume``, the `DetectionOptions` fields, under the same names, and ``priorVolume``
    (the scan *Compare with prior* compares the input with)."""

    inputVolume: vtkMRMLScalarVolumeNode
    priorVolume: vtkMRMLScalarVolumeNode
    model: str = ""
    threshold: Annotated[float, WithinRange(0.01, 0.99)] = 0.5
    minimumLesionSizeMm3: Annotated[float, WithinRange(0.0, 1.0e6)] = 0.0
    device: Device = Device.auto
    showIn3D: bool = False

    def detectionOptions(self) -> DetectionOptions:
        return DetectionOptions(**{field.name: getattr(self, field.name)
                                   for field in dataclasses.fields(DetectionOptions)})
