"""``lesiondetect evaluate``: lesion-wise sensitivity, FP per case, precision, F1, FROC/CPM, Dice, bootstrap CIs."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

from ..errors import LesionDetectError
from ..evaluation.reference import RULES, resolve_rule
from . import ERROR_PREFIX
from .common import distance_mm, fraction, key_value, lesion_volume, seed, text, whole_number

MAX_BOOTSTRAP = 100_000

DESCRIPTION = """\
Compare predictions (PRED_DIR/<case>.lesions.csv or .mrk.json, and <case>.seg.nrrd for Dice) with reference
lesions: a label folder (<case>.nii.gz or <case>/label.nii.gz), an MSD dataset.json / MONAI datalist, or a
LUNA16-style CSV (case, coordX, coordY, coordZ, diameter_mm in LPS mm).

Rules (reference lesions and the hit criterion):
  glioma, ct-tumour  parts closer than 6 mm form one lesion; lesions < 50 mm3 ignored; hit within 3 mm
  ms                 each 26-connected component is a lesion; lesions < 10 mm3 ignored; hit within 3 mm
  luna16             CSV spheres; hit inside the sphere (default for a CSV reference)
Each reference lesion counts once; more predictions hitting an already-hit lesion are not false positives;
a prediction hitting only an ignored lesion counts neither way. The criterion is printed with the results.
Outputs in --out: summary.json, per_case.csv, per_lesion.csv, froc.csv, froc.png.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``evaluate`` sub-command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="lesion-wise evaluation of predictions against reference masks (FROC, CPM, Dice)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pred", required=True, type=text, metavar="PRED_DIR", help="folder of prediction files")
    parser.add_argument("--ref", required=True, type=text, metavar="LABEL_DIR_OR_DATASET",
                        help="label folder, dataset.json/datalist, or LUNA16-style CSV")
    parser.add_argument("-o", "--out", type=text, metavar="OUT_DIR", help="write the reports into this folder")
    parser.add_argument("--rule", choices=sorted(RULES),
                        help="lesion rule (default: glioma for masks, luna16 for a CSV)")
    parser.add_argument("--merge-mm", type=distance_mm, metavar="MM",
                        help="join mask parts closer than this into one lesion (0: no merging)")
    parser.add_argument("--min-volume-mm3", type=lesion_volume, metavar="MM3",
                        help="ignore reference lesions smaller than this")
    parser.add_argument("--hit-mm", type=distance_mm, metavar="MM",
                        help="a predicted centroid hits a lesion within this distance of it")
    parser.add_argument("--threshold", type=fraction, default=0.0, metavar="P",
                        help="confidence of the operating point (default 0: every prediction)")
    parser.add_argument("--base-dir", type=text, metavar="DIR", help="base of the datalist's relative paths")
    parser.add_argument("--split", choices=("all", "training", "validation"), default="all",
                        help="datalist lists to evaluate (default: all)")
    parser.add_argument("--filter", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="only datalist items with this field value (e.g. lesion_type=glioma); repeatable")
    parser.add_argument("--lesion-free", nargs="+", action="extend", default=[], type=text, metavar="CASE",
                        help="cases without lesions (names, a folder of their files, or a .txt list): FPs only")
    parser.add_argument("--allow-missing", action="store_true",
                        help="count cases without prediction files as having no detections")
    parser.add_argument("--bootstrap", type=whole_number(0, MAX_BOOTSTRAP), default=1000, metavar="N",
                        help=f"bootstrap resamples of the cases for 95%% CIs (0: none; default 1000; at most {MAX_BOOTSTRAP})")
    parser.add_argument("--seed", type=seed, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--no-plot", action="store_true", help="do not write froc.png")
    parser.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; prints the table (or JSON) on stdout, messages on stderr; returns the exit code."""
    from ..evaluation.report import format_table, summary_dict, write_report
    from ..evaluation.run import evaluate

    try:
        base = args.rule or ("luna16" if str(args.ref).lower().endswith(".csv") else "glioma")
        rule = resolve_rule(base, args.merge_mm, args.min_volume_mm3, args.hit_mm)
        result = evaluate(
            args.pred, args.ref, rule=rule, threshold=args.threshold, base_dir=args.base_dir,
            split=args.split, filters=args.filter, lesion_free=args.lesion_free,
            allow_missing=args.allow_missing, n_resamples=args.bootstrap, seed=args.seed,
        )
        for warning in result.warnings:
            print(f"lesiondetect: warning: {warning}", file=sys.stderr)
        if args.out:
            plot = not args.no_plot and importlib.util.find_spec("matplotlib") is not None
            if not args.no_plot and not plot:
                print("lesiondetect: warning: matplotlib is not installed: froc.png not written", file=sys.stderr)
            paths = write_report(result, args.out, plot=plot)
            print(f"lesiondetect: wrote {', '.join(p.name for p in paths.values())} to {args.out}",
                  file=sys.stderr)
        print(json.dumps(summary_dict(result), indent=2) if args.json else format_table(result))
        return 0
    except LesionDetectError as exc:
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr)
        return exc.exit_code

