"""Aligning a prior scan to the current one: SimpleITK rigid (then optionally affine) registration, and its quality.

Both scans are resampled onto isotropic RAS working grids (`preprocess.to_model_grid`, as the detection does)
and registered with Mattes mutual information inside the brain or body masks the pipeline computes
(`preprocess.body_mask`). The result maps a point of the current scan to the same anatomy in the prior scan
(LPS mm): ITK's resampling sense, which is what an ITK ``.tfm`` file holds and what 3D Slicer reads as the
prior's "transform from parent" — applied to the prior volume, it shows the prior aligned under the current.

Quality is measured after alignment on the working grids: the fraction of the current scan's brain/body lying
inside the prior's field of view, the Dice overlap of the two masks there, and the Pearson correlation of their
intensities where both masks are. A registration below the limits is refused with a message that says which
measure failed (another patient, another body region, another sequence, or a failed optimisation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ComparisonError
from ..preprocess import body_mask, to_model_grid
from ..volume import LPS_TO_RAS, Volume

METHODS = ("rigid", "affine", "none")
MAX_WORKING_SPACING_MM = 3.0
WORKING_VOXELS = 1.5e6  # the working grid's spacing gives about this many voxels over the current scan
SAMPLES_PER_LEVEL = 100_000  # metric samples drawn per resolution level
MIN_LEVEL_VOXELS = 16  # a coarser level is used only when every axis keeps at least this many voxels
SEED = 20250101  # fixed: the same scans give the same alignment


@dataclass(frozen=True)
class QualityLimits:
    """The least quality a registration must reach; `check` refuses anything below."""

    min_correlation: float = 0.7
    min_mask_dice: float = 0.7
    min_inside_fraction: float = 0.5
    max_scale_change: float = 0.25  # affine only: each axis may stretch by at most ±25 %

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Registration:
    """The alignment of the prior to the current scan and how good it is.

    ``matrix_lps`` is the 4×4 affine mapping a current-scan point (LPS mm) to the prior scan (ITK's
    resampling direction); ``prior_to_current_ras`` is its inverse in RAS: the matrix that moves the prior
    onto the current in Slicer (a linear transform node's *transform to parent*).
    """

    method: str
    matrix_lps: np.ndarray
    quality: dict[str, float]
    optimiser: dict[str, object] = field(default_factory=dict)

    def to_sitk(self):
        """A SimpleITK `AffineTransform` (current LPS point → prior LPS point)."""
        import SimpleITK as sitk

        transform = sitk.AffineTransform(3)
        transform.SetMatrix([float(v) for v in self.matrix_lps[:3, :3].ravel()])
        transform.SetTranslation([float(v) for v in self.matrix_lps[:3, 3]])
        return transform

    def current_to_prior(self, points_lps: np.ndarray) -> np.ndarray:
        """Map (N, 3) current-scan LPS points into the prior scan."""
        points = np.asarray(points_lps, dtype=float)
        return points @ self.matrix_lps[:3, :3].T + self.matrix_lps[:3, 3]

    @property
    def prior_to_current_ras(self) -> np.ndarray:
        flip = np.eye(4)
        flip[:3, :3] = LPS_TO_RAS
        return flip @ np.linalg.inv(self.matrix_lps) @ flip

    @property
    def volume_scale(self) -> float:
        """How many prior-scan mm³ one current-scan mm³ maps to (exactly 1 for a rigid alignment)."""
        return 1.0 if self.method != "affine" else float(abs(np.linalg.det(self.matrix_lps[:3, :3])))

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "current_to_prior_lps": self.matrix_lps.tolist(),
            "prior_to_current_ras": self.prior_to_current_ras.tolist(),
            "quality": dict(self.quality),
            "optimiser": dict(self.optimiser),
        }


def working_spacing(volume: Volume) -> float:
    """Isotropic working spacing (mm): about `WORKING_VOXELS` over the scan, never finer than its own voxels."""
    extent = np.array(volume.shape_ijk) * np.array(volume.spacing)
    spacing = (float(np.prod(extent)) / WORKING_VOXELS) ** (1.0 / 3.0)
    return float(min(max(spacing, min(volume.spacing)), MAX_WORKING_SPACING_MM))


def register(prior: Volume, current: Volume, method: str = "rigid", limits: QualityLimits = QualityLimits(),
             check_quality: bool = True) -> Registration:
    """Align ``prior`` to ``current``; raise `ComparisonError` when the alignment is not good enough."""
    import SimpleITK as sitk

    if method not in METHODS:
        raise ValueError(f"registration method must be one of {', '.join(METHODS)}, not {method!r}")
    spacing = working_spacing(current)
    fixed, fixed_mask = _working_image(current, spacing)
    moving, moving_mask = _working_image(prior, spacing)
    optimiser: dict[str, object] = {"working_spacing_mm": round(spacing, 4)}
    transform = sitk.Euler3DTransform()
    transform.SetCenter(_mask_centroid(fixed_mask))
    if method != "none":
        transform = _rigid(fixed, fixed_mask, moving, moving_mask, optimiser)
        if method == "affine":
            transform = _affine(fixed, fixed_mask, moving, moving_mask, transform, optimiser)
    matrix = _matrix(transform)
    quality = measure_quality(fixed, fixed_mask, moving, moving_mask, _field_of_view(prior), transform)
    quality.update(_motion(matrix, _mask_centroid(fixed_mask)))
    registration = Registration(method, matrix, quality, optimiser)
    if check_quality:
        check(registration, limits)
    return registration


def check(registration: Registration, limits: QualityLimits) -> None:
    """Raise `ComparisonError` naming the first quality measure below its limit."""
    quality, method = registration.quality, registration.method
    after = "with the scanner coordinates as they are" if method == "none" else f"after {method} registration"
    if quality["inside_fraction"] < limits.min_inside_fraction:
        reason = (f"only {quality['inside_fraction']:.0%} of the current scan's brain/body lies inside the prior's field "
                  f"of view {after} (at least {limits.min_inside_fraction:.0%} needed): another body region?")
    elif quality["mask_dice"] < limits.min_mask_dice:
        reason = (f"the brain/body outlines overlap with Dice {quality['mask_dice']:.2f} {after} (at least "
                  f"{limits.min_mask_dice:.2f} needed): the registration failed or the scans show different anatomy")
    elif quality["correlation"] < limits.min_correlation:
        reason = (f"the intensities correlate with r = {quality['correlation']:.2f} {after} (at least "
                  f"{limits.min_correlation:.2f} needed): another patient, another sequence, or a failed registration?")
    elif method == "affine" and quality["max_scale_change"] > limits.max_scale_change:
        reason = (f"the affine registration stretches an axis by {quality['max_scale_change']:.0%} (at most "
                  f"{limits.max_scale_change:.0%}): implausible for one patient; use rigid registration")
    else:
        return
    raise ComparisonError(f"the prior and current scans do not align: {reason}")


def _working_image(volume: Volume, spacing: float):
    """``volume`` on its isotropic RAS working grid (float32) and its brain/body mask (uint8), as SimpleITK images."""
    import SimpleITK as sitk

    array, grid = to_model_grid(volume, (spacing,) * 3)
    kind = "ct" if volume.modality == "CT" else "mr"
    mask = body_mask(array, kind)
    if not mask.any():
        raise ComparisonError(f"{volume.name}: no brain or body found to register (the scan is all background)")
    reference = grid.reference_image()
    images = []
    for values in (array.astype(np.float32, copy=False), mask.astype(np.uint8)):
        image = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))
        image.CopyInformation(reference)
        images.append(image)
    return images[0], images[1]


def _mask_centroid(mask) -> tuple[float, float, float]:
    import SimpleITK as sitk

    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(mask)
    return tuple(float(v) for v in shapes.GetCentroid(1))


def _levels(image) -> list[int]:
    """Shrink factors, coarsest first, that keep at least `MIN_LEVEL_VOXELS` along every axis."""
    smallest = min(image.GetSize())
    return [factor for factor in (4, 2) if smallest // factor >= MIN_LEVEL_VOXELS] + [1]


def _method(fixed_mask, moving_mask, levels: list[int]):
    """A Mattes mutual information registration inside both masks, over the given resolution levels."""
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricFixedMask(fixed_mask)
    method.SetMetricMovingMask(moving_mask)
    method.SetMetricSamplingStrategy(method.RANDOM)
    in_mask = float(np.count_nonzero(sitk.GetArrayViewFromImage(fixed_mask)))
    percentages = [min(1.0, SAMPLES_PER_LEVEL * factor**3 / in_mask) for factor in levels]
    method.SetMetricSamplingPercentagePerLevel(percentages, SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=200, relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(levels)
    method.SetSmoothingSigmasPerLevel([factor / 2.0 if factor > 1 else 0.0 for factor in levels])
    return method


def _run(method, fixed, moving, optimiser: dict[str, object], stage: str):
    try:
        transform = method.Execute(fixed, moving)
    except RuntimeError as error:  # e.g. "All samples map outside moving image buffer"
        reason = str(error).strip().splitlines()[-1][:200]
        raise ComparisonError(f"the prior and current scans do not align: the {stage} registration failed ({reason})") from None
    optimiser[stage] = {
        "metric": round(float(method.GetMetricValue()), 6),
        "iterations": int(method.GetOptimizerIteration()),
        "stop": method.GetOptimizerStopConditionDescription(),
    }
    return transform


def _rigid(fixed, fixed_mask, moving, moving_mask, optimiser):
    """Rigid alignment, started from the scanner coordinates or the mask centroids, whichever matches better."""
    import SimpleITK as sitk

    center = np.array(_mask_centroid(fixed_mask))
    shift = np.array(_mask_centroid(moving_mask)) - center
    method = _method(fixed_mask, moving_mask, _levels(fixed))
    starts = []
    for translation in (np.zeros(3), shift):
        start = sitk.Euler3DTransform()
        start.SetCenter(center.tolist())
        start.SetTranslation(translation.tolist())
        method.SetInitialTransform(start, inPlace=False)
        try:
            starts.append((method.MetricEvaluate(fixed, moving), start))
        except RuntimeError:  # the start maps every sample outside the prior
            continue
    if not starts:
        raise ComparisonError("the prior and current scans do not align: they do not overlap at all in space")
    method.SetInitialTransform(min(starts, key=lambda pair: pair[0])[1], inPlace=False)
    return sitk.Euler3DTransform(_single(_run(method, fixed, moving, optimiser, "rigid")))


def _affine(fixed, fixed_mask, moving, moving_mask, rigid, optimiser):
    import SimpleITK as sitk

    start = sitk.AffineTransform(3)
    start.SetCenter(rigid.GetCenter())
    start.SetMatrix(rigid.GetMatrix())
    start.SetTranslation(rigid.GetTranslation())
    method = _method(fixed_mask, moving_mask, _levels(fixed)[-2:])
    method.SetInitialTransform(start, inPlace=False)
    return sitk.AffineTransform(_single(_run(method, fixed, moving, optimiser, "affine")))


def _single(transform):
    """The one transform inside what `ImageRegistrationMethod.Execute` returns (a composite of one)."""
    import SimpleITK as sitk

    if transform.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(transform)
        if composite.GetNumberOfTransforms() == 1:
            return composite.GetNthTransform(0)
    return transform


def _matrix(transform) -> np.ndarray:
    """The 4×4 homogeneous matrix of a SimpleITK linear transform with a centre."""
    linear = np.asarray(transform.GetMatrix(), dtype=float).reshape(3, 3)
    center = np.asarray(transform.GetCenter(), dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = np.asarray(transform.GetTranslation(), dtype=float) + center - linear @ center
    return matrix


def _motion(matrix: np.ndarray, center: tuple[float, float, float]) -> dict[str, float]:
    """Rotation angle (degrees), shift of the brain/body centre (mm) and the largest axis stretch of an alignment."""
    linear = matrix[:3, :3]
    left, scales, right = np.linalg.svd(linear)
    rotation = left @ right
    angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)))
    moved = linear @ np.asarray(center) + matrix[:3, 3]
    return {
        "rotation_deg": round(float(angle), 4),
        "translation_mm": round(float(np.linalg.norm(moved - np.asarray(center))), 4),
        "max_scale_change": round(float(np.max(np.abs(scales - 1.0))), 6),
    }


def _field_of_view(volume: Volume):
    """A uint8 image of ones on ``volume``'s own grid: where the scan has voxels."""
    import SimpleITK as sitk

    view = sitk.Image([int(n) for n in volume.shape_ijk], sitk.sitkUInt8) + 1
    view.SetSpacing([float(s) for s in volume.spacing])
    view.SetOrigin([float(o) for o in volume.origin])
    view.SetDirection([float(d) for d in np.asarray(volume.direction).ravel()])
    return view


def measure_quality(fixed, fixed_mask, moving, moving_mask, moving_view, transform) -> dict[str, float]:
    """Field-of-view overlap, mask Dice and intensity correlation of the aligned working images.

    ``moving_view`` marks the prior's own voxels (its working grid is a larger RAS-aligned box around them).
    """
    import SimpleITK as sitk

    def aligned(image, interpolator, pixel):
        return sitk.GetArrayFromImage(sitk.Resample(image, fixed, transform, interpolator, 0.0, pixel))

    inside = aligned(moving_view, sitk.sitkNearestNeighbor, sitk.sitkUInt8) > 0
    current = sitk.GetArrayViewFromImage(fixed_mask) > 0
    prior = aligned(moving_mask, sitk.sitkNearestNeighbor, sitk.sitkUInt8) > 0
    shared_current, shared_prior = current & inside, prior & inside
    both = shared_current & shared_prior
    denominator = np.count_nonzero(shared_current) + np.count_nonzero(shared_prior)
    correlation = 0.0
    if np.count_nonzero(both) > 10:
        values_current = sitk.GetArrayViewFromImage(fixed)[both].astype(np.float64)
        values_prior = aligned(moving, sitk.sitkLinear, sitk.sitkFloat32)[both].astype(np.float64)
        if values_current.std() > 0 and values_prior.std() > 0:
            correlation = float(np.corrcoef(values_current, values_prior)[0, 1])
    return {
        "inside_fraction": round(float(np.count_nonzero(shared_current) / max(np.count_nonzero(current), 1)), 6),
        "mask_dice": round(float(2.0 * np.count_nonzero(both) / denominator) if denominator else 0.0, 6),
        "correlation": round(correlation, 6),
    }
