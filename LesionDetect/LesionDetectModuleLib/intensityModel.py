"""A stand-in for ``python -m LesionDetectLib detect``, for tests: the 'model' calls every voxel brighter than
``LEVEL`` a lesion, and the outputs are written by the library's own post-processing and writers.

Run as ``python intensityModel.py INPUT.nrrd OUTPUT_FOLDER [--warning TEXT] [--hang] [--crash]
[--drop-last-segment] [--add-at R A S]`` (``--add-at``: as ``add-lesion``, the library's own local outline of the
lesion at that point, or no file when nothing is there); it prints ``--progress jsonl`` lines like the real command. It needs LesionDetectLib only
(no slicer, no torch), so it runs in a plain Python or ``PythonSlicer`` process.

``python intensityModel.py compare PRIOR CURRENT -o OUTPUT …`` stands in for the model of ``compare`` only: it
writes each scan's bright regions as a label image beside OUTPUT and runs the library's real ``compare`` (the
same registration, matching and outputs) with them as ``--prior-lesions`` and ``--current-lesions``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

LEVEL = 250.0
STEM = "volume"


def report(stage: str, fraction: float, message: str) -> None:
    print(json.dumps({"stage": stage, "fraction": fraction, "message": message}), flush=True)


def intensityProbability(volume) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(volume.array.astype(np.float32) - LEVEL) / 10.0))


def writeAddedLesion(inputPath: str, outputFolder: str, ras) -> int:
    """The lesion at ``ras`` (the file's RAS) as ``volume.*`` outputs, or none; returns the number written."""
    from LesionDetectLib.add_lesion import lesion_at
    from LesionDetectLib.io import read_volume

    right, anterior, superior = ras
    result = lesion_at(read_volume(inputPath), intensityProbability, (-right, -anterior, superior), 0.25, "intensity")
    if result is not None:
        result.write(outputFolder, STEM)
    return 0 if result is None else 1


def writeOutputs(inputPath: str, outputFolder: str, dropLastSegment: bool = False) -> int:
    """Detect the bright regions of ``inputPath`` and write ``volume.*`` outputs; returns the number of lesions."""
    from LesionDetectLib.io import read_volume
    from LesionDetectLib.lesions import from_probability
    from LesionDetectLib.result import DetectionResult
    from LesionDetectLib.writers import write_segmentation

    volume = read_volume(inputPath)
    probability = intensityProbability(volume)
    lesions, labels = from_probability(probability, volume, 0.5)
    result = DetectionResult(volume, lesions, labels, probability, 0.5, "intensity")
    paths = result.write(outputFolder, STEM)
    if dropLastSegment and lesions:  # an inconsistent output: one segment fewer than table rows
        kept = np.where(labels == len(lesions), 0, labels)
        write_segmentation(paths["segmentation"], volume, kept, lesions[:-1])
    return len(lesions)


def compareWithIntensityLesions(arguments: list[str]) -> None:
    """``compare PRIOR CURRENT -o OUTPUT …`` with the scans' bright regions as their lesions; exits the process."""
    import SimpleITK as sitk

    from LesionDetectLib import cli
    from LesionDetectLib.io import read_volume

    prior, current, output = arguments[0], arguments[1], arguments[arguments.index("-o") + 1]
    labels = []
    for side, path in (("prior", prior), ("current", current)):
        volume = read_volume(path)
        labels.append(os.path.join(os.path.dirname(os.path.abspath(output)), f"{side}-intensity-lesions.nrrd"))
        mask = volume.with_array((intensityProbability(volume) > 0.5).astype(np.uint8))
        sitk.WriteImage(mask.to_sitk(), labels[-1])
    sys.argv = ["lesiondetect", "compare", *arguments, "--prior-lesions", labels[0], "--current-lesions", labels[1]]
    cli.run_command()


def main() -> None:
    if sys.argv[1:2] == ["compare"]:
        compareWithIntensityLesions(sys.argv[2:])
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--warning", default=None)
    parser.add_argument("--hang", action="store_true", help="wait to be cancelled")
    parser.add_argument("--crash", action="store_true", help="die with a traceback and no progress line")
    parser.add_argument("--drop-last-segment", action="store_true")
    parser.add_argument("--add-at", nargs=3, type=float, default=None)
    args = parser.parse_args()
    if args.crash:
        raise RuntimeError("CUDA error: out of memory")
    report("read", 0.0, "reading")
    if args.warning:
        report("warning", 0.1, args.warning)
    if args.hang:
        time.sleep(120)
    report("inference", 0.5, "thresholding")
    count = (writeAddedLesion(args.input, args.output, args.add_at) if args.add_at
             else writeOutputs(args.input, args.output, args.drop_last_segment))
    report("done", 1.0, f"{count} lesion(s)")


if __name__ == "__main__":
    main()
