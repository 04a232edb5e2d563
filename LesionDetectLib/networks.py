"""Networks a bundle may name: an allow-list of MONAI 3-D segmentation networks plus a fixed-rule baseline.

Nothing from a bundle is evaluated: the name picks a class from this table, the kwargs are passed as data.
"""

from __future__ import annotations

from typing import Any

from .errors import ModelBundleError

MONAI_NETWORKS = ("BasicUNet", "UNet", "SegResNet", "DynUNet", "AttentionUnet", "FlexibleUNet")
LOCAL_NETWORKS = ("IntensityThreshold",)


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


def build_network(name: str, kwargs: dict[str, Any]):
    """Instantiate the network ``name`` with ``kwargs``; unknown names or bad kwargs raise `ModelBundleError`."""
    if name in LOCAL_NETWORKS:
        cls = _intensity_threshold_class()
    elif name in MONAI_NETWORKS:
        import monai.networks.nets as nets

        cls = getattr(nets, name)
    else:
        allowed = ", ".join(MONAI_NETWORKS + LOCAL_NETWORKS)
        raise ModelBundleError(f"unknown network {name!r}; allowed: {allowed}")
    try:
        return cls(**kwargs)
    except Exception as error:  # any constructor failure is a bad bundle, reported on one line
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelBundleError(f"network {name} rejects its arguments {kwargs}: {reason}") from None
