"""The training loop: a `Trainer` runs one process's share of a run in epochs of fixed length, mining hard
negatives, validating every ``val_interval`` epochs (and after the last), and after each epoch writing the log
and the checkpoints and reporting through a `progress.ProgressCallback` (stage ``step`` for every step, ``train``
or ``validate`` for every epoch). `LoopState` is what it has done so far, saved as plain values in ``last.pt``.

Determinism: the whole run is seeded with `monai.utils.set_determinism`, and every epoch re-seeds its data order
and augmentation (`seeding`); a run resumed from the checkpoint of epoch e therefore draws exactly the batches an
uninterrupted run draws, with the optimiser, scheduler, scaler and RNG states restored.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import LesionDetectError
from ..model_spec import ModelSpec
from ..progress import STEP, ProgressCallback
from . import distributed
from .checkpoints import BEST, CHECKPOINT_FORMAT, CHECKPOINTS, LAST, load_checkpoint, save_checkpoint
from .optimisation import lr_factor, make_loss
from .recipe import Recipe
from .seeding import rng_states, seed_epoch, set_rng_states
from .training_log import TrainingLog
from .validation import METRIC_NAMES, ValidationCase, describe, selection_score, validate


@dataclass
class LoopState:
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
                 checkpoint_extra: dict[str, Any], bank: Sequence | None = None):
        from ..networks import build_network

        self.context, self.recipe, self.spec, self.out_dir = context, recipe, spec, out_dir
        self.validation, self.has_validation, self.extra = validation, has_validation, checkpoint_extra
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
        self.state = LoopState()

    # -------------------------------------------------------------------- checkpoint
    def checkpoint(self) -> dict[str, Any]:
        """Everything ``last.pt`` holds: the loop state, the network, optimiser, scheduler, scaler and RNG states."""
        s = self.state
        return {
            "format": CHECKPOINT_FORMAT, "epoch": s.epoch, "step": s.step, "best_epoch": s.best_epoch,
            "best_score": list(s.best_score) if s.best_score else None, "best_metrics": s.best_metrics,
            "seconds": s.seconds, "network": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": rng_states(), "hard_negatives": dict(self.hard_negatives),
            "recipe": self.recipe.to_dict(), **self.extra,
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a ``last.pt`` that `checkpoint` wrote."""
        self.network.load_state_dict(checkpoint["network"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.scaler is not None and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        score = checkpoint.get("best_score")
        self.state = LoopState(checkpoint["epoch"], checkpoint["step"], checkpoint.get("best_epoch"),
                               tuple(score) if score else None, checkpoint.get("best_metrics"),
                               checkpoint.get("seconds", 0.0))
        set_rng_states(checkpoint["rng"])
        self.hard_negatives.clear()
        self.hard_negatives.update(checkpoint.get("hard_negatives", {}))

    # -------------------------------------------------------------------- loop
    def fit(self, report: ProgressCallback) -> LoopState:
        """Train the remaining epochs, reporting through ``report``; the final state."""
        from monai.data import DataLoader

        recipe, context, s = self.recipe, self.context, self.state
        checkpoints = self.out_dir / CHECKPOINTS
        log = TrainingLog(self.out_dir, keep_until=s.epoch) if context.is_main else None
        for epoch in range(s.epoch, recipe.epochs):
            started = time.perf_counter()
            if recipe.hard_negative_fraction > 0 and epoch > 0 and epoch % recipe.mining_interval == 0:
                self._mine(report)
            self.dataset.data.prepare()  # patch-centre indices, inherited by the data-loader workers
            generator = seed_epoch(recipe.seed, epoch, context.rank)
            loader = DataLoader(
                self.dataset, batch_size=recipe.batch_size, shuffle=True, generator=generator,
                num_workers=recipe.num_workers, drop_last=True, pin_memory=self.device.startswith("cuda"),
            )
            loss = distributed.mean(self._epoch(loader, epoch, report), context)
            metrics = {}
            if self.has_validation and ((epoch + 1) % recipe.val_interval == 0 or epoch + 1 == recipe.epochs):
                metrics = validate(self.model, self.validation, self.spec, context)
            s.epoch, s.seconds = epoch + 1, s.seconds + time.perf_counter() - started
            improved = bool(metrics) and (
                recipe.select_metric == "last" or s.best_score is None
                or selection_score(metrics, recipe.select_metric) > s.best_score
            )
            if improved:
                s.best_epoch, s.best_score = epoch + 1, selection_score(metrics, recipe.select_metric)
                s.best_metrics = metrics
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
                save_checkpoint(checkpoints / LAST, self.checkpoint())
                report("validate" if metrics else "train", self._fraction(), describe(epoch + 1, loss, metrics))
            distributed.barrier(context)
        return s

    def _fraction(self) -> float:
        """How much of the run's steps are done."""
        return self.state.step / max(1, self.total_steps)

    def _mine(self, report: ProgressCallback) -> None:
        """Replace the hard negatives with where the current network fires wrongly (`mining`)."""
        from . import mining

        found = mining.mine(distributed.unwrap(self.model), [self.cases[n] for n in range(len(self.cases))],
                            self.recipe, self.device)
        self.hard_negatives.clear()
        self.hard_negatives.update(found)
        report("train", self._fraction(), mining.describe(found, len(self.cases)))

    def _epoch(self, loader, epoch: int, report: ProgressCallback) -> float:
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
            self.state.step += 1
            total, count = total + float(loss.item()), count + 1
            report(STEP, self._fraction(), f"epoch {epoch + 1}/{self.recipe.epochs}: loss {total / count:.4f}, "
                                           f"lr {self.scheduler.get_last_lr()[0]:.2e}")
        return total / max(1, count)

    def best_weights(self) -> tuple[dict, int]:
        """The state dict to ship (best validation epoch, else the last) and its epoch."""
        best = self.out_dir / CHECKPOINTS / BEST
        if self.state.best_epoch is not None and best.is_file():
            checkpoint = load_checkpoint(best)
            return checkpoint["network"], int(checkpoint["epoch"])
        return self.network.state_dict(), self.state.epoch
