"""The training loop: epochs of fixed length, validation through the inference path, checkpoints, log, curves.

Determinism: the whole run is seeded with `monai.utils.set_determinism`, and every epoch re-seeds its data
order and augmentation from (seed, epoch, rank). A run resumed from the checkpoint of epoch e therefore
draws exactly the batches an uninterrupted run draws, with the optimiser, scheduler, scaler and RNG
states restored.

Validation runs every ``val_interval`` epochs (and after the last) on whole validation volumes through the
functions `detect` uses: `preprocess.prepare_input` → `infer.model_grid_probability` (sliding window) →
`preprocess.to_input_grid` → `lesions.from_probability`, with the bundle's own spec; predictions are matched
to the reference lesions with the `evaluation` package (lesion-wise sensitivity, precision, F1, FP per
case, CPM) and whole-case Dice is computed on the input grid.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import infer, lesions, preprocess
from ..bundles import ModelSpec
from ..errors import LesionDetectError
from ..volume import Volume
from ..writers.atomic import atomic_output
from . import distributed
from .dataset import Case
from .recipe import Recipe

LOG_FILE, CURVES_FILE = "training_log.csv", "training_curves.png"
CHECKPOINTS, LAST, BEST = "checkpoints", "last.pt", "best.pt"
LOG_COLUMNS = (
    "epoch", "train_loss", "lr", "val_dice", "val_sensitivity", "val_precision", "val_f1",
    "val_fp_per_case", "val_cpm", "seconds",
)
METRIC_NAMES = ("dice", "sensitivity", "precision", "f1", "fp_per_case", "cpm")
VALIDATION_MAX_LESIONS = 200  # per case: bounds the cost of an untrained network's noise
LESION_TYPE_RULES = {"glioma": "glioma", "glioblastoma": "glioma", "ms": "ms", "multiple sclerosis": "ms",
                     "ct-tumour": "ct-tumour", "tumour": "ct-tumour", "tumor": "ct-tumour"}
CHECKPOINT_FORMAT = 1


# ------------------------------------------------------------------------------------------ pieces


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch on one rank (distinct, reproducible)."""
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**31 - 1)


def seed_epoch(seed: int, epoch: int, rank: int) -> torch.Generator:
    """Re-seed Python, NumPy and torch for an epoch; returns the generator that orders its batches."""
    value = epoch_seed(seed, epoch, rank)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
    generator = torch.Generator()
    generator.manual_seed(value)
    return generator


def make_loss(name: str, out_channels: int):
    """Dice + cross-entropy or Dice + focal loss; sigmoid for one output channel, softmax for more."""
    from monai.losses import DiceCELoss, DiceFocalLoss

    options = {"sigmoid": True} if out_channels == 1 else {"softmax": True, "to_onehot_y": True}
    loss = DiceCELoss if name == "dicece" else DiceFocalLoss
    return loss(batch=True, smooth_nr=1e-5, smooth_dr=1e-5, **options)


def lr_factor(recipe: Recipe, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up over ``warmup_epochs``, then a cosine from 1 to ``min_lr_ratio`` at the last step."""
    warmup = recipe.warmup_epochs * recipe.iterations_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def rng_states() -> dict[str, Any]:
    """Python, NumPy and torch RNG states in a form ``torch.load(weights_only=True)`` reads back."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {
        "python": random.getstate(), "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_output(path) as temporary:
        temporary.write_bytes(buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by this module (plain tensors and containers only: ``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt or foreign file
        raise LesionDetectError(f"{path}: not a readable training checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise LesionDetectError(f"{path}: not a LesionDetect training checkpoint")
    return state


# ------------------------------------------------------------------------------------------ log and curves


class TrainingLog:
    """``training_log.csv``: one row per epoch (validation columns empty between validations)."""

    def __init__(self, folder: Path, keep_until: int = 0):
        self.path = folder / LOG_FILE
        self.curves = folder / CURVES_FILE
        self.rows: list[dict[str, str]] = []
        if keep_until > 0 and self.path.is_file():
            with self.path.open(newline="") as handle:
                self.rows = [row for row in csv.DictReader(handle) if int(row["epoch"]) <= keep_until]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append({column: _cell(row.get(column)) for column in LOG_COLUMNS})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        with atomic_output(self.path) as temporary:
            temporary.write_text(text.getvalue())

    def plot(self) -> bool:
        """Write ``training_curves.png`` (False when matplotlib is not installed)."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            return False
        figure = Figure(figsize=(10, 4), layout="constrained")
        FigureCanvasAgg(figure)
        loss_axes, metric_axes = figure.subplots(1, 2)
        epochs = [int(row["epoch"]) for row in self.rows]
        lines = loss_axes.plot(epochs, [_number(row["train_loss"]) for row in self.rows], label="train loss")
        loss_axes.set(xlabel="epoch", ylabel="loss", title="training loss")
        rate_axes = loss_axes.twinx()
        lines += rate_axes.plot(epochs, [_number(row["lr"]) for row in self.rows], color="grey", linestyle=":",
                                label="learning rate")
        rate_axes.set_ylabel("learning rate")
        loss_axes.legend(handles=lines, loc="upper right")
        for name in ("val_dice", "val_sensitivity", "val_precision", "val_f1"):
            points = [(e, _number(row[name])) for e, row in zip(epochs, self.rows) if row[name] != ""]
            if points:
                metric_axes.plot(*zip(*points), marker="o", label=name[4:])
        metric_axes.set(xlabel="epoch", xlim=loss_axes.get_xlim(), ylim=(0, 1.02), title="validation")
        if metric_axes.lines:
            metric_axes.legend(loc="lower right")
        with atomic_output(self.curves) as temporary:
            figure.savefig(temporary, dpi=100, format="png")
        return True


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _number(text: str) -> float:
    return float(text) if text not in ("", None) else float("nan")


# ------------------------------------------------------------------------------------------ validation


@dataclass(frozen=True, eq=False)
class ValidationCase:
    """A validation case ready for inference: the input volume, the network's input, the reference."""

    case: Case
    volume: Volume
    model_input: preprocess.ModelInput
    reference: Any  # evaluation.ReferenceSet
    mask: np.ndarray  # reference lesion mask on the input grid


def rule_for(case: Case, default: str) -> str:
    """The lesion rule of a case: from its ``lesion_type`` tag when known, else ``default``."""
    return LESION_TYPE_RULES.get((case.lesion_type or "").strip().lower(), default)


def prepare_validation(cases: Sequence[Case], spec: ModelSpec, default_rule: str) -> list[ValidationCase]:
    """Read and prepare validation cases once (exactly as `detect` prepares its input, every channel aligned onto
    the first one's grid)."""
    from ..channels import model_input_of
    from ..evaluation import RULES, reference_lesions
    from ..io import read_mask
    from .channel_layout import read_channels

    prepared = []
    for case in cases:
        channels, volume = read_channels(case.channels or [("image", case.image)])
        mask = volume.with_array(read_mask(case.label).array)
        reference = reference_lesions(mask, RULES[rule_for(case, default_rule)])
        prepared.append(ValidationCase(case, volume, model_input_of(channels, spec), reference, mask.array > 0))
    return prepared


def predict_case(network, item: ValidationCase, spec: ModelSpec, device: str):
    """(lesions, label map) for one case, by the inference path of `detect`."""
    probability, _ = infer.model_grid_probability(
        lambda _device: network, item.model_input, tuple(spec.patch_size), spec.overlap, spec.batch_size, device,
        flip_axes=spec.flip_axes,
    )
    probability = preprocess.to_input_grid(probability, item.model_input.grid, item.volume)
    return lesions.from_probability(
        probability, item.volume, spec.threshold, spec.min_lesion_mm3, VALIDATION_MAX_LESIONS,
        measure_surfaces=False,
    )


def validate(network, items: Sequence[ValidationCase], spec: ModelSpec, context: distributed.Context) -> dict[str, Any]:
    """Lesion-wise metrics and Dice over all ranks' validation cases (every rank gets the result)."""
    from ..evaluation import Prediction, dice_coefficient, match_case

    network = distributed.unwrap(network)
    network.eval()
    matches = []
    for item in items:
        found, label_map = predict_case(network, item, spec, context.device)
        predictions = [Prediction(lesion.centroid_lps, lesion.confidence_max, lesion.id) for lesion in found]
        dice = dice_coefficient(label_map > 0, item.mask)
        matches.append((item.case.lesion_type, match_case(item.case.id, predictions, item.reference, dice=dice)))
    network.train()
    gathered = [pair for part in distributed.gather(matches, context) for pair in part]
    return summarize_matches(gathered, spec.threshold)


def summarize_matches(matches: list, threshold: float) -> dict[str, Any]:
    """Pooled metrics (and per lesion type when the cases have several)."""
    from ..evaluation import summarize

    def metrics_of(cases) -> dict[str, Any]:
        metrics, _ = summarize(cases, threshold=threshold, n_resamples=0)
        values = {name: float(getattr(metrics, name)) for name in METRIC_NAMES}
        counts = {"cases": metrics.n_cases, "lesions": metrics.n_lesions, "tp": metrics.tp, "fp": metrics.fp,
                  "fn": metrics.fn}
        return {**values, **counts}

    if not matches:
        return {}
    result = metrics_of([match for _, match in matches])
    types = sorted({kind or "" for kind, _ in matches})
    if len(types) > 1:
        result["by_lesion_type"] = {
            kind or "untagged": metrics_of([match for k, match in matches if (k or "") == kind]) for kind in types
        }
    return result


def selection_score(metrics: dict[str, Any], metric: str) -> tuple[float, float]:
    """Sort key of a validation: the chosen metric, then Dice (NaN counts as worst)."""

    def value(name: str) -> float:
        number = metrics.get(name, float("nan"))
        return number if number is not None and math.isfinite(number) else -math.inf

    return (value(metric), value("dice"))


# ------------------------------------------------------------------------------------------ progress


class Reporter:
    """Progress for people (a tqdm bar with loss and ETA), for programs (JSON lines), or nothing."""

    def __init__(self, mode: str, total: int, initial: int, enabled: bool):
        self.mode = mode if enabled else "none"
        self.total, self.done = total, initial
        self.bar = None
        if self.mode == "bar" and total > 0:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="it", file=sys.stderr, dynamic_ncols=True,
                            desc="training")

    def step(self, epoch: int, epochs: int, loss: float, lr: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_description_str(f"epoch {epoch + 1}/{epochs}", refresh=False)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            self.bar.update(1)

    def message(self, stage: str, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.mode == "bar":
            print(text, file=sys.stderr, flush=True)
        elif self.mode == "jsonl":
            import json

            fraction = round(self.done / max(1, self.total), 4)
            print(json.dumps({"stage": stage, "fraction": fraction, "message": text}), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def describe(epoch: int, loss: float, metrics: dict[str, Any]) -> str:
    text = f"epoch {epoch}: loss {loss:.4f}"
    if metrics:
        text += (f"; validation Dice {metrics['dice']:.3f}, sensitivity {metrics['sensitivity']:.3f}, "
                 f"precision {metrics['precision']:.3f}, F1 {metrics['f1']:.3f}, "
                 f"FP/case {metrics['fp_per_case']:.2f} ({metrics['lesions']} lesions, {metrics['cases']} cases)")
    return text


# ------------------------------------------------------------------------------------------ the loop


@dataclass
class Progress:
    """What the loop has done so far (saved in checkpoints)."""

    epoch: int = 0  # completed epochs
    step: int = 0
    best_epoch: int | None = None
    best_score: tuple[float, float] | None = None
    best_metrics: dict[str, Any] | None = None
    seconds: float = 0.0


class Trainer:
    """One process's share of a training run (see the module docstring)."""

    def __init__(self, context: distributed.Context, recipe: Recipe, spec: ModelSpec, out_dir: Path,
                 cases: Sequence, validation: Sequence[ValidationCase], has_validation: bool,
                 checkpoint_extra: dict[str, Any], reporter_mode: str = "bar", bank: Sequence | None = None):
        from ..networks import build_network

        self.context, self.recipe, self.spec, self.out_dir = context, recipe, spec, out_dir
        self.validation, self.has_validation, self.extra = validation, has_validation, checkpoint_extra
        self.reporter_mode = reporter_mode
        self.device = context.device
        self.network = build_network(spec.network["name"], dict(spec.network["kwargs"])).to(self.device)
        self.model = distributed.wrap(self.network, context)
        self.loss = make_loss(recipe.loss, int(spec.network["kwargs"].get("out_channels", 1)))
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.total_steps = recipe.epochs * recipe.iterations_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(recipe, self.total_steps))
        use_cuda = self.device.startswith("cuda")
        self.amp_dtype = None
        if recipe.amp and use_cuda:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        from .transforms import training_dataset

        length = recipe.iterations_per_epoch * recipe.batch_size
        self.cases = cases
        self.hard_negatives: dict[str, torch.Tensor] = {}  # case id → mined mask, read by the dataset
        self.dataset = training_dataset(cases, recipe, length, bank, self.hard_negatives)
        self.progress = Progress()

    # -------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        p = self.progress
        return {
            "format": CHECKPOINT_FORMAT, "epoch": p.epoch, "step": p.step, "best_epoch": p.best_epoch,
            "best_score": list(p.best_score) if p.best_score else None, "best_metrics": p.best_metrics,
            "seconds": p.seconds, "network": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": rng_states(), "hard_negatives": dict(self.hard_negatives),
            "recipe": self.recipe.to_dict(), **self.extra,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        score = state.get("best_score")
        self.progress = Progress(state["epoch"], state["step"], state.get("best_epoch"),
                                 tuple(score) if score else None, state.get("best_metrics"), state.get("seconds", 0.0))
        set_rng_states(state["rng"])
        self.hard_negatives.clear()
        self.hard_negatives.update(state.get("hard_negatives", {}))

    # -------------------------------------------------------------------- loop
    def fit(self) -> Progress:
        from monai.data import DataLoader

        recipe, context, p = self.recipe, self.context, self.progress
        checkpoints = self.out_dir / CHECKPOINTS
        log = TrainingLog(self.out_dir, keep_until=p.epoch) if context.is_main else None
        reporter = Reporter(self.reporter_mode, self.total_steps, p.step, context.is_main)
        try:
            for epoch in range(p.epoch, recipe.epochs):
                started = time.perf_counter()
                if recipe.hard_negative_fraction > 0 and epoch > 0 and epoch % recipe.mining_interval == 0:
                    self._mine(reporter)
                self.dataset.data.prepare()  # patch-centre indices, inherited by the data-loader workers
                generator = seed_epoch(recipe.seed, epoch, context.rank)
                loader = DataLoader(
                    self.dataset, batch_size=recipe.batch_size, shuffle=True, generator=generator,
                    num_workers=recipe.num_workers, drop_last=True, pin_memory=self.device.startswith("cuda"),
                )
                loss = distributed.mean(self._epoch(loader, epoch, reporter), context)
                metrics = {}
                if self.has_validation and ((epoch + 1) % recipe.val_interval == 0 or epoch + 1 == recipe.epochs):
                    metrics = validate(self.model, self.validation, self.spec, context)
                p.epoch, p.seconds = epoch + 1, p.seconds + time.perf_counter() - started
                improved = bool(metrics) and (
                    recipe.select_metric == "last" or p.best_score is None
                    or selection_score(metrics, recipe.select_metric) > p.best_score
                )
                if improved:
                    p.best_epoch, p.best_score = epoch + 1, selection_score(metrics, recipe.select_metric)
                    p.best_metrics = metrics
                if context.is_main:
                    row = {"epoch": epoch + 1, "train_loss": loss, "lr": self.scheduler.get_last_lr()[0],
                           "seconds": time.perf_counter() - started,
                           **{f"val_{name}": metrics.get(name) for name in METRIC_NAMES}}
                    log.append(row)
                    log.plot()
                    if improved:
                        save_checkpoint(checkpoints / BEST, {"format": CHECKPOINT_FORMAT, "epoch": epoch + 1,
                                                             "network": self.network.state_dict(),
                                                             "metrics": metrics})
                    save_checkpoint(checkpoints / LAST, self.state())
                    reporter.message("validate" if metrics else "train", describe(epoch + 1, loss, metrics))
                distributed.barrier(context)
        finally:
            reporter.close()
        return p

    def _mine(self, reporter: Reporter) -> None:
        """Replace the hard negatives with where the current network fires wrongly (`mining`)."""
        from . import mining

        found = mining.mine(distributed.unwrap(self.model), [self.cases[n] for n in range(len(self.cases))],
                            self.recipe, self.device)
        self.hard_negatives.clear()
        self.hard_negatives.update(found)
        reporter.message("train", mining.describe(found, len(self.cases)))

    def _epoch(self, loader, epoch: int, reporter: Reporter) -> float:
        self.model.train()
        total, count = 0.0, 0
        for batch in loader:
            images = batch["image"].to(self.device, non_blocking=True)
            labels = batch["label"].to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            autocast = (torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype is not None
                        else contextlib.nullcontext())
            with autocast:
                logits = self.model(images)
            loss = self.loss(logits.float(), labels)
            if not torch.isfinite(loss):
                raise LesionDetectError(
                    f"training diverged (loss {loss.item()}) at epoch {epoch + 1}; lower --lr or disable --amp"
                )
            if self.scaler is None:
                loss.backward()
                self.optimizer.step()
            else:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            self.scheduler.step()
            self.progress.step += 1
            total, count = total + float(loss.item()), count + 1
            reporter.step(epoch, self.recipe.epochs, total / count, self.scheduler.get_last_lr()[0])
        return total / max(1, count)

    def best_weights(self) -> tuple[dict, int]:
        """The state dict to ship (best validation epoch, else the last) and its epoch."""
        best = self.out_dir / CHECKPOINTS / BEST
        if self.progress.best_epoch is not None and best.is_file():
            state = load_checkpoint(best)
            return state["network"], int(state["epoch"])
        return self.network.state_dict(), self.progress.epoch
