"""Networks a bundle may name: an allow-list of MONAI 3-D segmentation networks, a fixed-rule baseline and
the RetinaNet detector of imported MONAI detection bundles.

Nothing from a bundle is evaluated: the name picks a class from this table, the kwargs are passed as data.
"""

from __future__ import annotations

from typing import Any

from .errors import ModelBundleError

MONAI_NETWORKS = ("BasicUNet", "UNet", "SegResNet", "DynUNet", "AttentionUnet", "FlexibleUNet", "SegResNetDS",
                  "UNETR", "SwinUNETR")
LOCAL_NETWORKS = ("IntensityThreshold",)
DETECTION_NETWORKS = ("RetinaNet",)  # a MONAI bundle's RetinaNet recipe (monai_bundle/detection.py)


def _intensity_threshold_class():
    import torch

    class IntensityThreshold(torch.nn.Module):
        """logit = scale · (x − level): a 1×1×1 convolution, i.e. a soft threshold on normalised intensity."""

        def __init__(self, in_channels: int = 1, out_channels: int = 1, level: float = 0.0, scale: float = 1.0):
            super().__init__()
            self.conv = torch.nn.Conv3d(in_channels, out_channels, kernel_size=1)
            with torch.no_grad():
                self.conv.weight.fill_(scale / in_channels)
                self.conv.bias.fill_(-scale * level)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    return IntensityThreshold


def network_class(name: str):
    """The class of an allowed network; `ModelBundleError` for any other name."""
    if name in LOCAL_NETWORKS:
        return _intensity_threshold_class()
    if name in MONAI_NETWORKS:
        import monai.networks.nets as nets

        return getattr(nets, name)
    if name in DETECTION_NETWORKS:
        from .monai_bundle.detection import retinanet

        return retinanet
    allowed = ", ".join(MONAI_NETWORKS + LOCAL_NETWORKS + DETECTION_NETWORKS)
    raise ModelBundleError(f"unknown network {name!r}; allowed: {allowed}")


def build_network(name: str, kwargs: dict[str, Any]):
    """Instantiate the network ``name`` with ``kwargs``; unknown names or bad kwargs raise `ModelBundleError`."""
    cls = network_class(name)
    try:
        return cls(**kwargs)
    except ModelBundleError:  # already one clear line (e.g. a missing optional package)
        raise
    except Exception as error:  # any constructor failure is a bad bundle, reported on one line
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelBundleError(f"network {name} rejects its arguments {kwargs}: {reason}") from None
