"""`Comparison`: two scans' lesions, the prior's alignment to the current scan, what changed, and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .changes import CLASSES, ChangeRules, LesionChange, lesion_changes
from .registration import QualityLimits, Registration
from .timepoints import Timepoint


@dataclass(eq=False)
class Comparison:
    """Two scans' lesions, the alignment of the prior to the current scan, and what changed."""

    prior: Timepoint
    current: Timepoint
    registration: Registration
    changes: list[LesionChange]
    rules: ChangeRules
    limits: QualityLimits
    warnings: list[str] = field(default_factory=list)

    def by_lesion(self) -> tuple[dict[int, LesionChange], dict[int, LesionChange]]:
        """The change of each prior lesion id and of each current lesion id."""
        return lesion_changes(self.changes)

    def summary(self) -> dict[str, object]:
        """Counts per class (and how many of them are uncertain), lesion counts and total volumes before and after."""
        counts = {name: sum(change.change == name for change in self.changes) for name in CLASSES}
        uncertain = {name: sum(change.change == name and change.certainty == "low" for change in self.changes)
                     for name in CLASSES}
        prior, current = self.prior.result.lesions, self.current.result.lesions
        prior_sum = sum(lesion.longest_axial_diameter_mm for lesion in prior)
        current_sum = sum(lesion.longest_axial_diameter_mm for lesion in current)
        return {
            "counts": counts,
            "low_certainty": uncertain,
            "new_or_enlarging": counts["new"] + counts["enlarging"],
            "prior_lesions": len(prior),
            "current_lesions": len(current),
            "prior_total_volume_mm3": round(sum(lesion.volume_mm3 for lesion in prior), 4),
            "current_total_volume_mm3": round(sum(lesion.volume_mm3 for lesion in current), 4),
            "prior_sum_of_diameters_mm": round(prior_sum, 4),
            "current_sum_of_diameters_mm": round(current_sum, 4),
            "sum_of_diameters_change_percent": None if prior_sum <= 0 else round(100.0 * (current_sum / prior_sum - 1), 2),
        }

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the change table, summary, both scans' results with their change, the transform and a PNG."""
        from .output import write_comparison

        return write_comparison(Path(out_dir), self.prior, self.current, self.registration, self.changes,
                                rules=self.rules, limits=self.limits, summary=self.summary(), warnings=self.warnings)
