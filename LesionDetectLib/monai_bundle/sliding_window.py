"""A bundle's sliding-window settings (its ``inferer``, or a detector's ``set_sliding_window_inferer``), checked
and completed with MONAI's defaults."""

from __future__ import annotations

from typing import Any

from .expressions import BundleConfigError


def window_settings(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """ROI size, batch size, overlap, blend mode, padding, sigma scale and padding value; `BundleConfigError`
    for an ROI that is not 3 positive integers or a blend mode other than constant or gaussian."""
    roi = settings.get("roi_size")
    if not (isinstance(roi, list) and len(roi) == 3 and all(isinstance(v, int) and v > 0 for v in roi)):
        raise BundleConfigError(f"{where}: roi_size must be 3 positive integers")
    if settings.get("mode", "constant") not in ("constant", "gaussian"):
        raise BundleConfigError(f"{where}: blend mode {settings.get('mode')!r} is not supported")
    return {"roi_size": roi, "sw_batch_size": settings.get("sw_batch_size", 1),
            "overlap": settings.get("overlap", 0.25), "mode": settings.get("mode", "constant"),
            "padding_mode": settings.get("padding_mode", "constant"), "sigma_scale": settings.get("sigma_scale", 0.125),
            "cval": settings.get("cval", 0.0)}
