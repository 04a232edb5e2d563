"""`lesiondetect dicom-seg LABELMAP --table LESIONS.csv --source DICOM... -o OUT.seg.dcm`: a DICOM Segmentation of
reviewed lesions (as the Slicer module exports them) over their source series. LABELMAP holds each lesion's table
``id`` as its value, on the series' grid; the table gives each lesion's name, label and origin; ``--status``
keeps the lesions with that review status (default: all). No lesion to write: no file, and one line says so."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import NamedTuple

from ..errors import InputImageError
from ..review import READER, STATUSES


class ReviewedLesion(NamedTuple):
    id: int
    name: str
    label: str


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("dicom-seg", help="DICOM Segmentation of reviewed lesions", description=__doc__)
    parser.add_argument("labelmap", help="label map image: each lesion's table id as its value")
    parser.add_argument("--table", required=True, type=Path, help="the lesions' .lesions.csv (id, name, label…)")
    parser.add_argument("--source", required=True, nargs="+", help="the source DICOM series: a folder or its files")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the .seg.dcm to write")
    parser.add_argument("--status", choices=STATUSES, action="append", help="keep lesions with this status")
    parser.add_argument("--model-name", default="review", help="the model named in the segments' algorithm")
    parser.set_defaults(run=run)


def reviewed_lesions(table: Path, statuses) -> tuple[list[ReviewedLesion], set[int]]:
    """The table's lesions with one of ``statuses`` (None: all) and the ids of those the reader added."""
    try:
        with open(table, newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        lesions = [ReviewedLesion(int(row["id"]), row["name"], row["label"]) for row in rows
                   if statuses is None or row.get("status", "unreviewed") in statuses]
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise InputImageError(f"{table}: not a lesion table with id, name and label columns ({error})") from None
    return lesions, {int(row["id"]) for row in rows if row.get("origin") == READER}


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io import read_volume
    from ..writers.atomic import check_writable
    from ..writers.dicom_seg import read_source_files, read_source_series, write_segmentation_object

    lesions, reader_added = reviewed_lesions(args.table, args.status)
    if not lesions:
        print(f"lesiondetect: {args.table}: no lesion to write, so no DICOM SEG was written", file=sys.stderr)
        return 0
    check_writable(args.output.parent)
    volume = read_volume(args.labelmap)
    sources = [Path(source) for source in args.source]
    datasets = (read_source_series(sources[0]) if len(sources) == 1 and sources[0].is_dir()
                else read_source_files(sources, sources[0].parent))
    write_segmentation_object(args.output, volume, np.rint(volume.array).astype(np.int64), lesions, datasets,
                              args.model_name, reader_added)
    return 0
