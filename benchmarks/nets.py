"""The networks the benchmark times, each with the grid, patch and sliding-window settings it runs at.

- ``unet-recipe``: what ``lesiondetect train --recipe cpu`` produces (MONAI ``UNet`` 16…256 channels, stride 2,
  one residual unit, 1.5 mm, 64³ patches, overlap 0.25, batch 2), random weights so that every network runs
  at the same grid; the shipped trained models are timed end to end by ``benchmarks/shipped_models.py``.
- ``basicunet``: a MONAI ``BasicUNet`` with features (16, 32, 64, 128, 256, 16) at 1.5 mm, 96³ patches — a
  typical 3-D lesion segmentation network, random weights.
- ``retinanet-peer``: the MONAI model-zoo ``lung_nodule_ct_detection`` configuration, built from
  ``monai.apps.detection`` with random weights (ResNet-50 backbone, ``conv1_t_stride=[2,2,1]``, FPN
  ``returned_layers=[1,2]``, 3 anchors, 192×192×80 patches at 0.703125×0.703125×1.25 mm). Needs torchvision.

Random weights give random probabilities, which would make post-processing meaningless (half the volume a
"lesion"). So the segmentation networks run as ``0.01 · CNN(x) + head(x)``: the CNN's full cost, plus a
1×1×1 intensity head that marks the synthetic lesions (CT: 120–200 HU; MR: z-score above 2), so that the
number of lesions, and the post-processing work, are realistic. The head's cost is negligible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CT_WINDOW = (-200.0, 300.0)  # the training recipe's default CT window (LesionDetectLib.training.recipe)
MR_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class NetworkConfig:
    """A network and the settings it runs at; ``spacing``/``intensity`` make it usable as a `ModelSpec`."""

    name: str
    description: str
    spacing: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    overlap: float = 0.25
    batch_size: int = 2
    needs_torchvision: bool = False
    intensity: dict[str, Any] = field(default_factory=dict)

    def for_modality(self, modality: str) -> NetworkConfig:
        """The same network with the bundle intensity normalisation for ``modality``."""
        from dataclasses import replace

        intensity = ({"kind": "ct", "window": list(CT_WINDOW)} if modality == "CT"
                     else {"kind": "mr", "percentiles": list(MR_PERCENTILES)})
        return replace(self, intensity=intensity)


NETWORKS = {
    "unet-recipe": NetworkConfig(
        "unet-recipe", "MONAI UNet 16-32-64-128-256, stride 2, 1 res. unit (LesionDetect CPU recipe)",
        (1.5, 1.5, 1.5), (64, 64, 64)),
    "basicunet": NetworkConfig(
        "basicunet", "MONAI BasicUNet features (16,32,64,128,256,16)", (1.5, 1.5, 1.5), (96, 96, 96)),
    "retinanet-peer": NetworkConfig(
        "retinanet-peer", "MONAI RetinaNet ResNet-50 FPN (model-zoo lung_nodule_ct_detection config)",
        (0.703125, 0.703125, 1.25), (192, 192, 80), batch_size=1, needs_torchvision=True),
}


def build_cnn(name: str):
    """The network ``name`` with random weights (seeded), in eval mode, on the CPU."""
    import torch

    torch.manual_seed(0)
    if name == "unet-recipe":
        from monai.networks.nets import UNet

        network = UNet(3, 1, 1, (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=1)
    elif name == "basicunet":
        from monai.networks.nets import BasicUNet

        network = BasicUNet(3, 1, 1, (16, 32, 64, 128, 256, 16))
    elif name == "retinanet-peer":
        network = _retinanet()
    else:
        raise ValueError(f"unknown network {name!r}")
    return network.eval()


def _retinanet():
    """RetinaNet as in the model zoo's ``lung_nodule_ct_detection`` bundle (configs/inference.json)."""
    from monai.apps.detection.networks.retinanet_network import RetinaNet, resnet_fpn_feature_extractor
    from monai.networks.nets import resnet

    backbone = resnet.ResNet(
        block=resnet.ResNetBottleneck, layers=[3, 4, 6, 3], block_inplanes=resnet.get_inplanes(),
        n_input_channels=1, conv1_t_stride=[2, 2, 1], conv1_t_size=[7, 7, 7],
    )
    extractor = resnet_fpn_feature_extractor(backbone, 3, False, [1, 2], None)
    return RetinaNet(spatial_dims=3, num_classes=1, num_anchors=3, feature_extractor=extractor,
                     size_divisible=[16, 16, 8])


def with_lesion_head(cnn, intensity: dict[str, Any]):
    """``0.01 · cnn(x) + head(x)``: the CNN's cost with realistic lesions (see the module docstring)."""
    import torch

    if intensity["kind"] == "ct":
        low, high = intensity["window"]
        centre, half_width = (160.0 - low) / (high - low), 40.0 / (high - low)  # 160 ± 40 HU, windowed

        def head(x: torch.Tensor) -> torch.Tensor:
            return 40.0 * (half_width - (x - centre).abs())
    else:

        def head(x: torch.Tensor) -> torch.Tensor:
            return 8.0 * (x - 2.0)  # z-score above 2: hyper-intense FLAIR

    class WithLesionHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cnn = cnn

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.01 * self.cnn(x) + head(x)

    return WithLesionHead().eval()


def retinanet_outputs(network):
    """A sliding-window predictor for the RetinaNet: its classification and box maps of every FPN level."""

    def predict(patch):
        outputs = network(patch)
        return [*outputs[network.cls_key], *outputs[network.box_reg_key]]

    return predict
