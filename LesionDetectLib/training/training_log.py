"""The record of a training run in its model folder: ``training_log.csv``, one row per epoch (the training loss,
the learning rate, the validation metrics when that epoch validated, the seconds it took), and
``training_curves.png``, its plot (when matplotlib is installed). A resumed run keeps the rows up to its
checkpoint's epoch.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..csv_cells import csv_cell, csv_text
from ..writers.atomic import atomic_output

LOG_FILE, CURVES_FILE = "training_log.csv", "training_curves.png"
LOG_COLUMNS = (
    "epoch", "train_loss", "lr", "val_dice", "val_sensitivity", "val_precision", "val_f1",
    "val_fp_per_case", "val_cpm", "seconds",
)
LOG_FLOATS = ".6g"  # floats in 6 significant digits; missing and non-finite values are empty cells


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
        self.rows.append({column: csv_cell(row.get(column), LOG_FLOATS) for column in LOG_COLUMNS})
        with atomic_output(self.path) as temporary:
            temporary.write_text(csv_text(LOG_COLUMNS, self.rows))

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


def _number(text: str) -> float:
    return float(text) if text not in ("", None) else float("nan")
