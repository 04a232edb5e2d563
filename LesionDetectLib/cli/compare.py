"""`lesiondetect compare PRIOR CURRENT -o OUT_DIR`: what is new, enlarging, shrinking or gone since the prior scan.

PRIOR and CURRENT are each a scan (detected first) or a results folder written by 'lesiondetect detect'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..compare.changes import SMALLEST_LESION_MM, ChangeRules
from ..compare.registration import METHODS, QualityLimits
from ..progress import make_reporter
from .common import finite, non_negative
from .detect import add_common_detect_arguments, options_from

DEFAULT_RULES, DEFAULT_LIMITS = ChangeRules(), QualityLimits()


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="follow-up: changes since a prior scan", description=__doc__)
    parser.add_argument("prior", help="the earlier scan, or its results folder (or .lesions.json)")
    parser.add_argument("current", help="the later scan, or its results folder (or .lesions.json)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    for side in ("prior", "current"):
        parser.add_argument(f"--{side}-scan", metavar="IMAGE",
                            help=f"the scan of the {side} results (when not beside them as <stem>.nii.gz)")
        parser.add_argument(f"--{side}-lesions", metavar="LABELS",
                            help=f"the {side} scan's lesions from a label image (e.g. a manual segmentation) instead of detecting")
    parser.add_argument("--registration", choices=METHODS, default="rigid",
                        help="rigid (default), affine (rigid, then affine), or none (trust the scanner coordinates)")
    parser.add_argument("--enlarge-percent", type=non_negative, default=100 * DEFAULT_RULES.enlarge_fraction,
                        metavar="P", help="a lesion is enlarging when its volume grew by at least P %% "
                        f"(default {100 * DEFAULT_RULES.enlarge_fraction:g}; shrinking: the inverse ratio)")
    parser.add_argument("--min-change", type=non_negative, default=DEFAULT_RULES.min_change_mm3, metavar="MM3",
                        help="... and by at least MM3 (default: the volume of a "
                        f"{SMALLEST_LESION_MM:g} mm lesion, {DEFAULT_RULES.min_change_mm3:.1f})")
    parser.add_argument("--min-correlation", type=finite, default=DEFAULT_LIMITS.min_correlation, metavar="R",
                        help="refuse an alignment whose intensity correlation is below R "
                        f"(default {DEFAULT_LIMITS.min_correlation:g})")
    parser.add_argument("--allow-different-settings", action="store_true",
                        help="compare lesions found with different models or thresholds (flagged in the outputs)")
    add_common_detect_arguments(parser)
    parser.add_argument("--force-modality", action="store_true", help="run even if the model's modality differs")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..compare import compare

    if args.quiet:
        args.progress = "none" if args.progress == "bar" else args.progress
    report = make_reporter(args.progress)
    rules = ChangeRules(enlarge_fraction=args.enlarge_percent / 100.0, min_change_mm3=args.min_change)
    limits = QualityLimits(min_correlation=args.min_correlation)
    comparison = compare(
        args.prior, args.current, prior_scan=args.prior_scan, current_scan=args.current_scan,
        prior_lesions=args.prior_lesions, current_lesions=args.current_lesions,
        options=options_from(args, force_modality=args.force_modality), registration=args.registration,
        rules=rules, limits=limits, allow_different_settings=args.allow_different_settings, progress=report,
    )
    report("write", 0.95, f"writing outputs to {args.output}")
    comparison.write(args.output)
    report("done", 1.0, f"{len(comparison.changes)} change(s) written")
    if not args.quiet:
        stream = sys.stderr if args.progress == "jsonl" else sys.stdout
        print(change_report(comparison), file=stream)
    for warning in comparison.warnings:
        print(f"lesiondetect: warning: {warning}", file=sys.stderr)
    return 0


def change_report(comparison) -> str:
    """The registration quality, the counts per class and a fixed-width table of the changes."""
    quality, summary = comparison.registration.quality, comparison.summary()
    lines = [
        f"registration ({comparison.registration.method}): correlation {quality['correlation']:.2f}, "
        f"mask Dice {quality['mask_dice']:.2f}, rotation {quality['rotation_deg']:.1f} deg, "
        f"shift {quality['translation_mm']:.1f} mm",
        ", ".join(f"{count} {name}" for name, count in summary["counts"].items())
        + f"; total volume {summary['prior_total_volume_mm3']:.0f} -> {summary['current_total_volume_mm3']:.0f} mm3",
        f"{'change':<11}{'prior':<12}{'current':<12}{'mm3 before':>11}{'mm3 now':>10}{'%':>8}  certainty",
    ]
    for change in comparison.changes:
        row = change.as_row()
        percent = "" if row["volume_change_percent"] is None else f"{row['volume_change_percent']:+.0f}"
        lines.append(
            f"{change.change:<11}{row['prior_lesions'] or '-':<12}{row['current_lesions'] or '-':<12}"
            f"{change.prior_volume_mm3:>11.1f}{change.current_volume_mm3:>10.1f}{percent:>8}  {change.certainty}"
            + (f" ({row['notes']})" if row["notes"] else "")
        )
    return "\n".join(lines)
