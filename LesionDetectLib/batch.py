"""Running `detect` over many cases with one model load: resume, continue past broken cases, shard by rank."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .bundles import Model, default_model_for, load_model
from .case_table import CaseTable, case_inputs, output_stem
from .detect import detect
from .errors import CancelledError, LesionDetectError
from .io import read_volume
from .progress import ProgressCallback
from .resources import estimate_output_bytes
from .result import DetectionResult
from .writers.atomic import check_free_space, check_writable


@dataclass(frozen=True)
class DetectOptions:
    """Settings of one `lesiondetect detect` run (None = the model's default)."""

    model: str | None = None
    threshold: float | None = None
    outline_threshold: float | None = None
    min_volume_mm3: float | None = None
    max_lesions: int | None = None
    device: str = "auto"
    batch_size: int | None = None
    overlap: float | None = None
    force_modality: bool = False
    series_uid: str | None = None
    save_probability: bool = False
    surface_format: str | None = None
    resume: bool = False
    dicom_seg: bool = False
    channels: tuple[tuple[str, Path], ...] = ()  # the other sequences of a multi-channel model: (name, path)
    case_table: CaseTable | None = None  # each case's sequences and output name (`lesiondetect detect cases.csv`)
    skull_strip: bool = True


@dataclass
class BatchSummary:
    """What happened to each case."""

    written: dict[Path, DetectionResult] = field(default_factory=dict)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, LesionDetectError] = field(default_factory=dict)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) under torchrun (``RANK``/``WORLD_SIZE``), else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ModelCache:
    """Loads each model once; picks the default model for a volume's modality when none is named."""

    def __init__(self, name: str | None):
        self.name = name
        self.models: dict[str, Model] = {}

    def for_volume(self, modality: str | None) -> Model:
        name = self.name or default_model_for(modality)
        if name not in self.models:
            self.models[name] = load_model(name)
        return self.models[name]


def outputs_exist(out_dir: Path, stem: str) -> bool:
    return all((out_dir / f"{stem}{suffix}").exists() for suffix in (".seg.nrrd", ".mrk.json", ".lesions.csv"))


def run_case(path: Path, out_dir: Path, options: DetectOptions, models: ModelCache,
             progress: ProgressCallback) -> DetectionResult:
    """Read, detect and write one case."""
    progress("read", 0.0, f"reading {path}")
    volume = read_volume(path, series_uid=options.series_uid)
    check_free_space(out_dir, estimate_output_bytes(volume.array.size, options.save_probability))
    progress("load_model", 0.05, "loading model")
    model = models.for_volume(volume.modality)
    inputs = case_inputs(path, volume, options.case_table, options.channels, model.spec.needed_channels)
    stem = output_stem(path, options.case_table)
    result = detect(
        inputs, model, threshold=options.threshold, outline_threshold=options.outline_threshold,
        min_volume_mm3=options.min_volume_mm3,
        max_lesions=options.max_lesions, device=options.device, batch_size=options.batch_size,
        overlap=options.overlap, force_modality=options.force_modality, progress=progress,
        skull_strip=options.skull_strip,
    )
    progress("write", 0.95, f"writing outputs to {out_dir}")
    result.write(out_dir, stem, options.save_probability, options.surface_format)
    if options.dicom_seg:
        from .writers.dicom_seg import write_case_dicom_seg

        progress("write", 0.98, "writing the DICOM Segmentation")
        reason = write_case_dicom_seg(path, out_dir / f"{stem}.seg.dcm", result.volume, result.label_map,
                                      result.lesions, result.model_name, options.series_uid)
        if reason is not None:
            result.warnings.append(reason)
    return result


def run_cases(cases: list[Path], out_dir: Path, options: DetectOptions, progress: ProgressCallback) -> BatchSummary:
    """Process every case; a broken case is recorded and the others go on (cancellation stops all)."""
    check_writable(out_dir)
    models = ModelCache(options.model)
    summary = BatchSummary()
    for path in cases:
        if options.resume and outputs_exist(out_dir, output_stem(path, options.case_table)):
            summary.skipped.append(path)
            continue
        try:
            summary.written[path] = run_case(path, out_dir, options, models, progress)
        except CancelledError:
            raise
        except LesionDetectError as error:
            summary.failed[path] = error
    return summary
