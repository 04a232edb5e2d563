"""Post-processing alone, old against new in one process: from the model-grid probability to lesions and label map.

    python benchmarks/postprocess_versions.py --base REV [--repeats 5] [--only TEXT ...]

The package at git revision ``REV`` is unpacked as the module ``oldlib`` (its imports are relative), so both
versions run on the very same model-grid probability in this process, alternately, ``--repeats`` times; the
median is reported. Old: the whole map resampled onto the input grid, then `lesions.from_probability`. New:
`lesion_boxes.find_lesions`. Both measure surfaces, as `detect` does. Inputs and models as in `shipped_models.py`.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this working tree's package, not an installed one


def model_grid_probability(path: Path, model_name: str):
    """The volume, the model-grid probability and its grid, as `detect` computes them (current code)."""
    from LesionDetectLib import infer, load_model, preprocess, read_volume

    model = load_model(model_name)
    volume = read_volume(path)
    model_input = preprocess.prepare_input(volume, model.spec)
    probability, _ = infer.model_grid_probability(
        model.network, model_input, tuple(model.spec.patch_size), model.spec.overlap,
        infer.default_batch_size(model.spec.batch_size, "cpu"), "cpu", flip_axes=model.spec.flip_axes)
    return volume, probability, model_input.grid, model.spec


def side_by_side(label: str, path: Path, model_name: str, old_lesions, old_preprocess, repeats: int) -> str:
    """One table row: median seconds of the old and new post-processing of one input, and their agreement."""
    from LesionDetectLib import lesion_boxes

    volume, probability, grid, spec = model_grid_probability(path, model_name)
    settings = (spec.threshold, spec.min_lesion_mm3, None, True, spec.outline_threshold)

    def old():
        full = old_preprocess.to_input_grid(probability, grid, volume)
        return old_lesions.from_probability(full, volume, *settings)

    def new():
        return lesion_boxes.find_lesions(probability, grid, volume, *settings)

    seconds = {"old": [], "new": []}
    outputs = {}
    for repeat in range(repeats):
        for name, run in (("old", old), ("new", new)) if repeat % 2 == 0 else (("new", new), ("old", old)):
            started = time.perf_counter()
            outputs[name] = run()
            seconds[name].append(time.perf_counter() - started)
    old_s, new_s = (statistics.median(seconds[name]) for name in ("old", "new"))
    same = np.array_equal(outputs["old"][1], outputs["new"][1])
    return (f"{label:30s} {old_s:7.3f} {new_s:7.3f} {old_s / new_s:7.2f}x  {len(outputs['old'][0]):>3d} = "
            f"{len(outputs['new'][0]):<3d} {'identical' if same else 'DIFFER'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision of the old code")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="inputs whose label contains TEXT")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from compare_versions import extract_base
    from run import cpu_model
    from shipped_models import inputs, single_channel

    with tempfile.TemporaryDirectory() as temporary:
        shutil.move(str(extract_base(args.base, Path(temporary)) / "LesionDetectLib"), Path(temporary) / "oldlib")
        sys.path.insert(0, temporary)
        old_lesions, old_preprocess = (importlib.import_module(f"oldlib.{name}") for name in ("lesions", "preprocess"))
        print(f"{cpu_model()}, base {args.base}, median of {args.repeats} alternating runs in one process")
        print(f"{'input':30s} {'old s':>7s} {'new s':>7s} {'old/new':>8s}  lesions  label maps")
        for label, path, model_name, _ in single_channel(inputs()):
            if args.only and not any(text in label for text in args.only):
                continue
            print(side_by_side(label, path, model_name, old_lesions, old_preprocess, args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
