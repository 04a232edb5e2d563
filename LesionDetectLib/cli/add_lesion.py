"""`lesiondetect add-lesion INPUT --at R A S -o OUT_DIR`: the lesion at a point the reader chose, outlined by the
model on a local window with a threshold adapted to that lesion (see `LesionDetectLib.add_lesion`). Writes the
usual outputs with that one lesion; when nothing lesion-like is there it writes nothing and says so in one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputImageError
from ..progress import make_reporter
from .detect import add_common_detect_arguments

NOTHING_FOUND = "nothing lesion-like at the point; no lesion added"
"""The one line (and the final progress message) when no lesion is there; the Slicer module shows it."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("add-lesion", help="outline the lesion at a point (a missed lesion)",
                                   description=__doc__)
    parser.add_argument("input", help="image file or DICOM folder")
    parser.add_argument("--at", nargs=3, type=float, required=True, metavar=("R", "A", "S"),
                        help="the point in RAS mm (Slicer's coordinates; the file's own, without transforms)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--series-uid", help="DICOM series to read when a folder holds several")
    parser.add_argument("--force-modality", action="store_true", help="run even if the model's modality differs")
    add_common_detect_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..add_lesion import lesion_at, model_window_mm, window_probability
    from ..bundles import default_model_for, load_model
    from ..detect import check_modality
    from ..io import read_volume, validate_volume, volume_stem
    from ..lesions import effective_outline_threshold

    if args.quiet and args.progress == "bar":
        args.progress = "none"
    report = make_reporter(args.progress)
    report("read", 0.0, f"reading {args.input}")
    volume = read_volume(args.input, series_uid=args.series_uid)
    validate_volume(volume, source=str(args.input))
    report("load_model", 0.05, "loading model")
    model = load_model(args.model or default_model_for(volume.modality))
    check_modality(volume, model, args.force_modality)
    threshold = model.spec.threshold if args.threshold is None else args.threshold
    outline = effective_outline_threshold(threshold, model.spec.outline_threshold if args.outline_threshold is None
                                          else args.outline_threshold)
    right, anterior, superior = args.at
    try:
        result = lesion_at(volume, lambda window: window_probability(volume, window, model, args.device, report),
                           (-right, -anterior, superior), 0.5 * threshold, model.name, model_window_mm(model),
                           outline / threshold)
    except ValueError as error:
        raise InputImageError(f"{args.input}: {error}") from None
    if result is None:
        report("done", 1.0, NOTHING_FOUND)
        if not args.quiet:
            print(f"lesiondetect: {args.input}: {NOTHING_FOUND}", file=sys.stderr)
        return 0
    result.write(args.output, volume_stem(args.input))
    lesion = result.lesions[0]
    report("done", 1.0, f"lesion of {lesion.volume_mm3:.0f} mm3 (peak {result.settings['peak']:.2f})")
    return 0
