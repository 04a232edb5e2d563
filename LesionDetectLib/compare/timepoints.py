"""One side of a comparison: a scan with its lesions, from a detection, a results folder or a label image.

A results folder is what ``lesiondetect detect`` (or `DetectionResult.write`) wrote: ``<stem>.lesions.json``
(lesion rows, model, threshold and settings) and ``<stem>.seg.nrrd`` (lesion n has label n), optionally
``<stem>.probability.nrrd``. The scan itself is not among those files: it is named separately or found in the
folder as ``<stem>.nii.gz`` (or another image suffix). The scan must lie on the segmentation's exact grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..batch import DetectOptions
from ..errors import DatasetError, InputImageError
from ..io import IMAGE_SUFFIXES, read_mask, read_volume
from ..lesions import Lesion, from_probability
from ..progress import ProgressCallback
from ..result import DetectionResult
from ..volume import Volume

RESULT_SUFFIX = ".lesions.json"
SEGMENTATION_SUFFIX = ".seg.nrrd"
PROBABILITY_SUFFIX = ".probability.nrrd"
OUTPUT_SUFFIXES = (SEGMENTATION_SUFFIX, PROBABILITY_SUFFIX)
LABEL_MODEL = "label image"
SETTING_KEYS = ("model", "model_version", "threshold", "outline_threshold", "min_volume_mm3", "max_lesions")


@dataclass(frozen=True, eq=False)
class Timepoint:
    """A scan's lesions; ``probability`` is None when only the lesions are known (labels, results without it)."""

    result: DetectionResult
    source: str  # "detected", "results" or "labels"
    probability: np.ndarray | None = None

    @property
    def volume(self) -> Volume:
        return self.result.volume


def is_results(path: str | Path) -> bool:
    """True for a results folder (holding a ``.lesions.json``) or one of its ``.lesions.json``/``.seg.nrrd`` files."""
    path = Path(path)
    if path.is_dir():
        return any(path.glob(f"*{RESULT_SUFFIX}"))
    return path.name.endswith((RESULT_SUFFIX, SEGMENTATION_SUFFIX))


def results_document(path: str | Path) -> tuple[Path, dict]:
    """The ``.lesions.json`` of a results folder or file, and its parsed content."""
    table = _table_path(Path(path))
    try:
        document = json.loads(table.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputImageError(f"{table}: not a readable LesionDetect results table ({error})") from None
    if not isinstance(document, dict) or document.get("format") != "lesiondetect.lesions":
        raise InputImageError(f"{table}: not a LesionDetect results table (no 'format': 'lesiondetect.lesions')")
    return table, document


def read_results(path: str | Path, scan: str | Path | Volume | None = None) -> Timepoint:
    """The lesions a results folder (or its ``.lesions.json``) holds, with the scan they were found on.

    Without ``scan``, the folder must hold the image as ``<stem>.nii.gz`` (or .nii, .nrrd, .mha, .mhd).
    The segmentation's lesion sizes must match the table (a segmentation edited afterwards is refused). The
    probability map is read when it was saved (``--save-probability``); otherwise ``result.probability`` holds the
    lesion mask (0/1) and `Timepoint.probability` is None.
    """
    table, document = results_document(path)
    stem = table.name[: -len(RESULT_SUFFIX)]
    volume = _scan(scan, table.parent, stem)
    labels = _read_labels(table.parent / f"{stem}{SEGMENTATION_SUFFIX}")
    if not volume.same_geometry(labels, tolerance=1e-3):
        raise InputImageError(
            f"{table.parent / stem}{SEGMENTATION_SUFFIX} does not lie on the grid of {volume.name}: these results were "
            "found on another scan (name the right one)"
        )
    try:
        lesions = [_lesion(row) for row in document.get("lesions", [])]
    except (KeyError, TypeError, ValueError) as error:
        raise InputImageError(f"{table}: a lesion row is incomplete ({error})") from None
    label_map = np.asarray(labels.array)
    _check_sizes(table, lesions, label_map)
    probability = _read_probability(table.parent / f"{stem}{PROBABILITY_SUFFIX}", volume)
    settings = dict(document.get("settings") or {})
    result = DetectionResult(
        volume=volume, lesions=lesions, label_map=label_map.astype(np.uint16),
        probability=(label_map > 0).astype(np.float32) if probability is None else probability,
        threshold=float(document.get("threshold", settings.get("threshold", 0.5))),
        model_name=str(document.get("model", settings.get("model", ""))),
        settings=settings, warnings=list(document.get("warnings") or []),
    )
    return Timepoint(result, "results", probability)


def from_labels(volume: Volume, labels: str | Path | Volume | np.ndarray) -> Timepoint:
    """Lesions from a label image (e.g. a manual segmentation): each 26-connected region of labels > 0."""
    if isinstance(labels, np.ndarray):
        labels = volume.with_array(labels)
    elif not isinstance(labels, Volume):
        labels = _read_labels(Path(labels))
    mask = _on_grid((np.asarray(labels.array) > 0).astype(np.uint8), labels, volume)
    lesions, label_map = from_probability(mask.astype(np.float32), volume, threshold=0.5)
    settings = {key: None for key in SETTING_KEYS} | {"model": LABEL_MODEL, "source": labels.name}
    result = DetectionResult(
        volume=volume, lesions=lesions, label_map=label_map, probability=mask.astype(np.float32),
        threshold=0.5, model_name=LABEL_MODEL, settings=settings,
    )
    return Timepoint(result, "labels")


def detect_scan(scan: str | Path | Volume, options: DetectOptions, progress: ProgressCallback) -> Timepoint:
    """Detect the lesions of a scan with ``options`` (model None: the default for its modality)."""
    from ..bundles import default_model_for, load_model
    from ..detect import detect

    volume = scan if isinstance(scan, Volume) else read_volume(scan, series_uid=options.series_uid)
    model = load_model(options.model or default_model_for(volume.modality))
    result = detect(
        volume, model, threshold=options.threshold, outline_threshold=options.outline_threshold,
        min_volume_mm3=options.min_volume_mm3, max_lesions=options.max_lesions, device=options.device,
        batch_size=options.batch_size, overlap=options.overlap, force_modality=options.force_modality,
        progress=progress,
    )
    return Timepoint(result, "detected", result.probability)


def settings_differences(prior: DetectionResult, current: DetectionResult) -> list[str]:
    """What differs between the settings that found the two scans' lesions (model, version, thresholds)."""
    return [
        f"{key}: prior {prior.settings.get(key)!r}, current {current.settings.get(key)!r}"
        for key in SETTING_KEYS
        if prior.settings.get(key) != current.settings.get(key)
    ]


def options_like(result: DetectionResult, options: DetectOptions) -> DetectOptions:
    """``options`` with every setting it leaves unset taken from the settings that found ``result``."""
    from dataclasses import replace

    settings = result.settings

    def chosen(value, key):
        return settings.get(key) if value is None else value

    return replace(
        options, model=chosen(options.model, "model"), threshold=chosen(options.threshold, "threshold"),
        outline_threshold=chosen(options.outline_threshold, "outline_threshold"),
        min_volume_mm3=chosen(options.min_volume_mm3, "min_volume_mm3"),
        max_lesions=chosen(options.max_lesions, "max_lesions"),
    )


def _table_path(path: Path) -> Path:
    if path.is_dir():
        tables = sorted(path.glob(f"*{RESULT_SUFFIX}"))
        if len(tables) != 1:
            names = ", ".join(table.name for table in tables) or "none"
            raise InputImageError(f"{path}: holds {len(tables)} LesionDetect results ({names}); name one .lesions.json")
        return tables[0]
    if path.name.endswith(SEGMENTATION_SUFFIX):
        path = path.with_name(path.name[: -len(SEGMENTATION_SUFFIX)] + RESULT_SUFFIX)
    if not path.is_file():
        raise InputImageError(f"{path}: no such LesionDetect results table")
    return path


def _scan(scan: str | Path | Volume | None, folder: Path, stem: str) -> Volume:
    if isinstance(scan, Volume):
        return scan
    if scan is not None:
        return read_volume(scan)
    images = [
        folder / f"{stem}{suffix}" for suffix in IMAGE_SUFFIXES
        if suffix not in OUTPUT_SUFFIXES and (folder / f"{stem}{suffix}").is_file()
    ]
    if not images:
        raise InputImageError(
            f"{folder}: the results of {stem!r} need their scan (not among the results files): name it "
            f"(--prior-scan / --current-scan), or put it beside them as {stem}.nii.gz"
        )
    return read_volume(images[0])


def _read_labels(path: Path) -> Volume:
    if not path.is_file():
        raise InputImageError(f"{path}: no such segmentation")
    try:
        return read_mask(path, keep_labels=True)
    except DatasetError as error:
        raise InputImageError(str(error)) from None


def _read_probability(path: Path, volume: Volume) -> np.ndarray | None:
    if not path.is_file():
        return None
    probability = read_volume(path)
    if not probability.same_geometry(volume, tolerance=1e-3):
        raise InputImageError(f"{path}: does not lie on the grid of {volume.name}")
    return probability.array.astype(np.float32, copy=False)


def _lesion(row: dict) -> Lesion:
    def triple(prefix: str, names=("i", "j", "k"), suffix: str = "") -> tuple:
        return tuple(row[f"{prefix}_{name}{suffix}"] for name in names)

    optional = {key: None if row.get(key) is None else float(row[key]) for key in ("surface_area_mm2", "sphericity")}
    return Lesion(
        id=int(row["id"]), confidence_max=float(row["confidence_max"]), confidence_mean=float(row["confidence_mean"]),
        voxel_count=int(row["voxel_count"]), volume_mm3=float(row["volume_mm3"]),
        centroid_ijk=tuple(float(v) for v in triple("centroid")),
        centroid_lps=(float(row["centroid_l"]), float(row["centroid_p"]), float(row["centroid_s_lps"])),
        bbox_ijk_min=tuple(int(v) for v in triple("bbox", suffix="_min")),
        bbox_ijk_max=tuple(int(v) for v in triple("bbox", suffix="_max")),
        equivalent_diameter_mm=float(row["equivalent_diameter_mm"]),
        longest_axial_diameter_mm=float(row["longest_axial_diameter_mm"]),
        **optional,
    )


def _check_sizes(table: Path, lesions: list[Lesion], label_map: np.ndarray) -> None:
    counts = np.bincount(label_map.ravel().astype(np.int64), minlength=max((lesion.id for lesion in lesions), default=0) + 1)
    expected = np.zeros_like(counts)
    for lesion in lesions:
        expected[lesion.id] = lesion.voxel_count
    if counts.size > expected.size or not np.array_equal(counts[1:], expected[1:]):
        raise InputImageError(
            f"{table}: its lesions do not match the segmentation beside it (edited after detection?); "
            "detect again, or compare the edited segmentation as a label image"
        )


def _on_grid(mask: np.ndarray, labels: Volume, volume: Volume) -> np.ndarray:
    """A 0/1 mask on ``volume``'s grid (nearest neighbour when the label image has another grid)."""
    if labels.same_geometry(volume, tolerance=1e-3):
        return mask
    import SimpleITK as sitk

    resampled = sitk.Resample(labels.with_array(mask).to_sitk(), volume.to_sitk(), sitk.Transform(),
                              sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(resampled)
