"""`train(dataset, out_dir, recipe)`: from an annotated dataset to a model bundle, in one call.

``out_dir`` ends up holding the bundle (``model.json`` + ``weights.pt``, importable with
``lesiondetect models import``), ``training_log.csv``, ``training_curves.png``, ``split.json`` and
``checkpoints/`` (``last.pt`` to resume, ``best.pt``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatasetError, LesionDetectError
from ..progress import ProgressCallback, make_reporter, silent, step_bar_reporter
from ..writers.atomic import atomic_output
from . import distributed
from .checks import CaseInfo, validate_dataset
from .dataset import LabelledDataset, load_dataset
from .recipe import Recipe, default_preset, preset
from .splits import Split, split_cases
from .training_log import LOG_FILE

RESUMABLE = ("epochs", "val_interval", "num_workers", "cache")  # what may change when a run is resumed
SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class TrainingResult:
    """What `train` produced (the bundle and the log are written by rank 0 only)."""

    bundle: Path
    epochs: int
    best_epoch: int | None
    metrics: dict[str, Any]
    log: Path
    seconds: float
    recipe: Recipe


def train(
    dataset: str | Path | LabelledDataset,
    out_dir: str | Path,
    recipe: Recipe | dict[str, Any] | None = None,
    *,
    folds: int | None = None,
    fold: int | None = None,
    val_fraction: float | None = None,
    resume: bool = False,
    device: str = "auto",
    allow_empty_labels: bool = False,
    progress: ProgressCallback | str = "bar",
    command: str | None = None,
) -> TrainingResult:
    """Train a lesion detector on ``dataset`` and write its bundle into ``out_dir``.

    ``recipe``: a `Recipe`, or a dict of changes to the default preset (``gpu`` with CUDA, else ``cpu``)
    or, with ``resume``, to the saved recipe (only ``epochs``, ``val_interval``, ``num_workers`` and
    ``cache`` may then change). ``folds``/``fold``/``val_fraction``: see `splits.split_cases`.
    ``progress``: a `progress.ProgressCallback` (as for `detect`; it also gets stage ``step`` reports, one a
    step), or ``bar`` (tqdm), ``jsonl`` or ``none``; only the first process reports. Under ``torchrun`` every
    process calls this.
    """
    context = distributed.setup(device)
    if not context.is_main:
        report = silent
    elif isinstance(progress, str):
        report = make_reporter(progress, bar=step_bar_reporter)
    else:
        report = progress
    try:
        return _train(context, dataset, Path(out_dir), recipe, folds, fold, val_fraction, resume,
                      allow_empty_labels, report, command)
    finally:
        distributed.cleanup(context)


def _train(context, dataset, out_dir, recipe, folds, fold, val_fraction, resume, allow_empty, report, command):
    from . import bundle
    from .checkpoints import CHECKPOINTS, LAST

    started = time.perf_counter()
    last = out_dir / CHECKPOINTS / LAST
    saved = _saved_state(last, resume)
    recipe = _recipe(recipe, saved)
    recipe.check()  # before reading any image
    data = dataset if isinstance(dataset, LabelledDataset) else load_dataset(dataset)
    split = _saved_split(data, saved) if saved else split_cases(data, folds, fold, val_fraction, recipe.seed)
    if not split.training:
        raise DatasetError(f"{data.location}: no training cases")
    infos = _checked(data, split, allow_empty, context)
    recipe = _resolved(recipe, data, infos)
    recipe.check()
    channels = list(data.channels) or [recipe.modality]
    description = recipe.description or (
        f"{recipe.network} lesion detector trained on {data.name} ({len(split.training)} training cases)"
    )
    provenance = _provenance(data, split, recipe, context, command)
    spec_dict = bundle.model_spec(recipe, recipe.name, recipe.modality, recipe.intensity, channels, description)
    from ..model_spec import ModelSpec

    spec = ModelSpec.from_dict(spec_dict)
    if context.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(out_dir / SPLIT_FILE) as temporary:
            temporary.write_text(json.dumps(_split_record(split), indent=2) + "\n")

    from monai.utils import set_determinism

    set_determinism(seed=recipe.seed)
    trainer = _trainer(context, recipe, spec, out_dir, data, split, infos)
    if saved:
        trainer.restore(saved)
    if trainer.state.epoch < recipe.epochs:
        report("train", 0.0, f"training {len(split.training)} cases, validating {len(split.validation)} ({split.method})")
    done = trainer.fit(report)
    metrics = {}
    if done.best_metrics:
        metrics = {"validation": {"epoch": done.best_epoch, "selected_by": recipe.select_metric,
                                  "threshold": recipe.threshold, **done.best_metrics,
                                  "lesion_rule": _rule_text(split, recipe)}}
    if context.is_main:
        weights, weights_epoch = trainer.best_weights()
        provenance["training"].update({
            "epochs": done.epoch, "weights_epoch": weights_epoch, "iterations": done.step,
            "seconds": round(done.seconds, 1), "seconds_this_session": round(time.perf_counter() - started, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        spec_dict = bundle.model_spec(recipe, recipe.name, recipe.modality, recipe.intensity, channels,
                                      description, provenance, metrics)
        bundle.write_bundle(out_dir, spec_dict, weights)
    distributed.barrier(context)
    return TrainingResult(out_dir, done.epoch, done.best_epoch, metrics, out_dir / LOG_FILE, done.seconds, recipe)


def _saved_state(last: Path, resume: bool) -> dict[str, Any] | None:
    from .checkpoints import load_checkpoint

    if resume:
        if not last.is_file():
            raise LesionDetectError(f"nothing to resume: {last} does not exist")
        return load_checkpoint(last)
    if last.is_file():
        raise LesionDetectError(
            f"{last.parent.parent} already holds a training run; pass --resume to continue it or choose another folder"
        )
    return None


def _recipe(recipe: Recipe | dict[str, Any] | None, saved: dict[str, Any] | None) -> Recipe:
    if saved is None:
        if isinstance(recipe, Recipe):
            return recipe
        return preset(default_preset()).updated(**(recipe or {}))
    base = Recipe.from_dict(saved["recipe"])
    if recipe is None:
        return base
    wanted = recipe.to_dict() if isinstance(recipe, Recipe) else dict(recipe)
    current = base.to_dict()
    changed = sorted(key for key, value in wanted.items()
                     if key not in RESUMABLE and value is not None and current.get(key) != _plain(value))
    if changed:
        raise LesionDetectError(
            f"a resumed run keeps its recipe; only {', '.join(RESUMABLE)} may change (asked to change: {', '.join(changed)})"
        )
    return base.updated(**{key: wanted[key] for key in RESUMABLE if key in wanted})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _saved_split(data: LabelledDataset, saved: dict[str, Any]) -> Split:
    by_id = {case.id: case for case in data.cases}
    wanted = saved["split"]
    missing = [case for case in wanted["training"] + wanted["validation"] if case not in by_id]
    if missing:
        raise DatasetError(f"{data.location}: the resumed run's cases are no longer in the dataset: {', '.join(missing)}")
    return Split(tuple(by_id[c] for c in wanted["training"]), tuple(by_id[c] for c in wanted["validation"]),
                 wanted["method"], dict(wanted.get("details", {})))


def _split_record(split: Split) -> dict[str, Any]:
    """The split as ids; with several input channels also each case's channel files (what detect is given)."""
    record = {"method": split.method, "details": split.details, "training": [case.id for case in split.training],
              "validation": [case.id for case in split.validation]}
    channels = {case.id: {name: str(path) for name, path in case.channels}
                for case in split.training + split.validation if case.channels}
    if channels:
        record["channels"] = channels
    return record


def _checked(data: LabelledDataset, split: Split, allow_empty: bool, context) -> list[CaseInfo]:
    """Rank 0 checks every file; every rank raises the same error or gets the same case facts."""
    outcome: Any = None
    if context.is_main:
        try:
            outcome = validate_dataset(data, split.training + split.validation, allow_empty_labels=allow_empty)
            if not any(info.lesion_voxels for info in outcome if info.case in split.training):
                outcome = DatasetError(f"{data.location}: no training case has a lesion voxel")
        except DatasetError as error:
            outcome = error
    outcome = distributed.broadcast(outcome, context)
    if isinstance(outcome, DatasetError):
        raise outcome
    return outcome


def _resolved(recipe: Recipe, data: LabelledDataset, infos: list[CaseInfo]) -> Recipe:
    """The recipe with its model name, modality and intensity decided (so checkpoints hold final values)."""
    modality = recipe.modality or data.modality or Counter(i.modality_guess for i in infos).most_common(1)[0][0]
    name = recipe.name or re.sub(r"[^A-Za-z0-9._-]+", "-", data.name).strip("-") or "lesions"
    rule = recipe.lesion_rule or ("ct-tumour" if modality == "CT" else "ms")
    return recipe.updated(modality=modality, name=name, intensity=recipe.resolved_intensity(modality), lesion_rule=rule)


def _rule_text(split: Split, recipe: Recipe) -> str:
    from .validation import rule_for

    return ", ".join(sorted({rule_for(case, recipe.lesion_rule) for case in split.validation}))


def _provenance(data: LabelledDataset, split: Split, recipe: Recipe, context, command: str | None) -> dict[str, Any]:
    from . import bundle

    sources = Counter(case.source for case in split.training + split.validation if case.source)
    return {
        "dataset": {
            "name": data.name, "location": str(data.location), "cases": len(split.training) + len(split.validation),
            "training_cases": len(split.training), "validation_cases": len(split.validation),
            "sources": dict(sources), "split": split.method,
            "training_case_ids": [case.id for case in split.training],
            "validation_case_ids": [case.id for case in split.validation],
        },
        "training": {
            "seed": recipe.seed, "recipe": recipe.to_dict(), "hardware": bundle.hardware(context.device, context.world_size),
            "command": command or bundle.command_line(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "software": bundle.library_versions(),
    }


def _trainer(context, recipe: Recipe, spec, out_dir: Path, data: LabelledDataset, split: Split,
             infos: list[CaseInfo]):
    from . import transforms
    from .loop import Trainer
    from .validation import prepare_validation

    by_case = {info.case.id: info for info in infos}
    mine = distributed.partition(list(split.training), context, recipe.seed)
    per_voxel = transforms.cached_bytes_per_voxel(len(data.channels))
    estimate = sum(_grid_voxels(by_case[case.id], recipe.spacing) for case in mine) * per_voxel
    threads = max(1, (os.cpu_count() or 1) // context.world_size)
    cases = transforms.cached_cases(mine, recipe, recipe.intensity, recipe.modality, out_dir / "cache", estimate, threads)
    bank = None
    if recipe.copy_paste > 0:
        from .copy_paste import lesion_bank

        bank = lesion_bank((cases[index] for index in range(len(cases))), recipe.patch_size)
    validation = prepare_validation(
        list(split.validation)[context.rank::context.world_size], spec, recipe.lesion_rule
    )
    extra = {"split": _split_record(split), "dataset": str(data.location)}
    return Trainer(context, recipe, spec, out_dir, cases, validation, bool(split.validation), extra, bank)


def _grid_voxels(info: CaseInfo, spacing) -> int:
    count = 1
    for size, step, target in zip(info.shape_ijk, info.spacing, spacing):
        count *= int(size * step / target) + 1
    return count
