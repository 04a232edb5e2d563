"""Old code against new, side by side in one run: warm speed per scan, and whether the outputs agree.

    python benchmarks/compare_versions.py --base REV [--repeats 3] [--device cpu] [--only TEXT ...]

The package at git revision ``REV`` (``git archive``, models included) and this working tree's package run the
same inputs as `shipped_models.py` (the synthetic 512×512×300 CT, the shipped samples, and the real scans in
``../shared/data`` when present). Each run is a fresh process per (input, version) that loads the model, runs
read → detect → write once to warm up and once timed; versions alternate and repeats are interleaved, so that
load on a shared machine hits both alike; the median is reported, with the ratio old / new.

Agreement of the outputs of the last repeat (same model version required): lesion count, Dice of the union
of all lesion masks and of each lesion with the lesion it overlaps most, centroid distance (mm), and the
largest difference of each table column, against the tolerances in ``TOLERANCES``. Differences are printed,
never hidden; the exit status is 1 when one is out of tolerance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
OUT = HERE / "out" / "compare_versions"

# column: (kind, tolerance): "abs" in the column's unit, "rel" as a fraction of the old value
TOLERANCES = {
    "voxel_count": ("rel", 0.01), "volume_mm3": ("rel", 0.01), "equivalent_diameter_mm": ("abs", 0.5),
    "longest_axial_diameter_mm": ("abs", 0.5), "surface_area_mm2": ("rel", 0.05), "sphericity": ("rel", 0.05),
    "confidence_max": ("abs", 1e-3), "confidence_mean": ("abs", 1e-3),
}
MIN_DICE = 0.99
MAX_CENTROID_MM = 1.0


def worker(request: dict) -> dict:
    """In a fresh process with the version's package first on the path: warm-up run, then one timed run."""
    import LesionDetectLib
    from LesionDetectLib import detect, load_model, read_volume

    model = load_model(request["model"])
    weights = Path(LesionDetectLib.__file__).parent / "models" / request["model"] / "weights.pt"
    seconds = {}
    for _ in ("warm-up", "timed"):
        started = time.perf_counter()
        volume = read_volume(request["path"])
        read = time.perf_counter()
        result = detect(volume, model, device=request["device"])
        detected = time.perf_counter()
        result.write(request["out_dir"])
        seconds = {"read": read - started, "detect": detected - read, "write": time.perf_counter() - detected,
                   "total": time.perf_counter() - started}
    return {"seconds": seconds, "lesions": len(result.lesions), "package": LesionDetectLib.__file__,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "model_version": model.spec.version,
            "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else None}


def extract_base(revision: str, into: Path) -> Path:
    """``LesionDetectLib`` at ``revision`` unpacked under ``into``; returns the folder to put on the path."""
    archive = subprocess.run(["git", "archive", revision, "LesionDetectLib"], cwd=REPOSITORY, check=True,
                             capture_output=True).stdout
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(into, filter="data")
    return into


def run_worker(root: Path, request: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(request)],
                          cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def labels_of(out_dir: Path) -> np.ndarray:
    import SimpleITK as sitk

    [segmentation] = out_dir.glob("*.seg.nrrd")
    return sitk.GetArrayFromImage(sitk.ReadImage(str(segmentation)))


def rows_of(out_dir: Path) -> tuple[list[dict], list[str]]:
    [table] = out_dir.glob("*.lesions.json")
    document = json.loads(table.read_text())
    return document["lesions"], document["warnings"]


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def agreement(old_dir: Path, new_dir: Path) -> dict:
    """How far the new outputs are from the old (module docstring)."""
    old_labels, new_labels = labels_of(old_dir), labels_of(new_dir)
    (old_rows, old_warnings), (new_rows, new_warnings) = rows_of(old_dir), rows_of(new_dir)
    report = {"lesions": [len(old_rows), len(new_rows)], "union_dice": dice(old_labels > 0, new_labels > 0),
              "ids_identical": bool(np.array_equal(old_labels, new_labels)),
              "warnings_identical": old_warnings == new_warnings, "warnings": [old_warnings, new_warnings],
              "worst_lesion_dice": 1.0, "worst_centroid_mm": 0.0, "columns": {}}
    new_by_id = {row["id"]: row for row in new_rows}
    for old in old_rows:
        mask = old_labels == old["id"]
        overlapping = np.bincount(new_labels[mask].ravel(), minlength=2)[1:]
        if not overlapping.any():
            report["worst_lesion_dice"] = 0.0
            continue
        new_id = int(np.argmax(overlapping)) + 1
        new = new_by_id[new_id]
        report["worst_lesion_dice"] = min(report["worst_lesion_dice"], dice(mask, new_labels == new_id))
        distance = float(np.linalg.norm([new[c] - old[c] for c in ("centroid_l", "centroid_p", "centroid_s_lps")]))
        report["worst_centroid_mm"] = max(report["worst_centroid_mm"], distance)
        for column, (kind, _) in TOLERANCES.items():
            if old[column] is None or new[column] is None:
                difference = 0.0 if old[column] == new[column] else float("inf")
            else:
                difference = abs(new[column] - old[column]) / (abs(old[column]) if kind == "rel" else 1.0)
            report["columns"][column] = max(report["columns"].get(column, 0.0), difference)
    report["within_tolerance"] = (
        report["lesions"][0] == report["lesions"][1] and report["union_dice"] >= MIN_DICE
        and report["worst_lesion_dice"] >= MIN_DICE and report["worst_centroid_mm"] <= MAX_CENTROID_MM
        and all(report["columns"][c] <= tolerance for c, (_, tolerance) in TOLERANCES.items() if c in report["columns"])
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="git revision of the old code")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="inputs whose label contains TEXT")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if not args.base:
        parser.error("--base REV is required")
    sys.path.insert(0, str(HERE))
    from run import cpu_model
    from shipped_models import inputs, single_channel

    cases = [case[:3] for case in single_channel(inputs()) if not args.only or any(text in case.label for text in args.only)]
    with tempfile.TemporaryDirectory() as temporary:
        versions = {"old": extract_base(args.base, Path(temporary)), "new": REPOSITORY}
        results = {(label, version): [] for label, _, _ in cases for version in versions}
        for repeat in range(args.repeats):
            for label, path, model in cases:
                for version in (list(versions) if repeat % 2 == 0 else list(versions)[::-1]):
                    request = {"path": str(path), "model": model, "device": args.device,
                               "out_dir": str(OUT / version / slug(label))}
                    result = run_worker(versions[version], request)
                    results[label, version].append(result)
                    print(f"  {label} / {version} (run {repeat + 1}/{args.repeats}): {result}", file=sys.stderr, flush=True)
    print(f"{cpu_model()}, {os.cpu_count()} cores, device {args.device}, base {args.base}, "
          f"median of {args.repeats} interleaved fresh-process warm runs; load average {os.getloadavg()}")
    print(f"{'input':30s} {'model':18s} {'old s':>7s} {'new s':>7s} {'old/new':>8s}  stages old → new (read, detect, "
          "write); peak GiB old → new")
    failed = False
    for label, _, model in cases:
        old, new = ([r for r in results[label, v] if "error" not in r] for v in ("old", "new"))
        if not old or not new:
            print(f"{label:30s} {model:18s} failed: {[r for v in versions for r in results[label, v] if 'error' in r]}")
            failed = True
            continue
        median = {v: {k: statistics.median(r["seconds"][k] for r in runs) for k in old[0]["seconds"]}
                  for v, runs in (("old", old), ("new", new))}
        stages = ", ".join(f"{median['old'][k]:.2f} → {median['new'][k]:.2f}" for k in ("read", "detect", "write"))
        print(f"{label:30s} {model:18s} {median['old']['total']:7.2f} {median['new']['total']:7.2f} "
              f"{median['old']['total'] / median['new']['total']:7.2f}x  {stages}; "
              f"{max(r['peak_rss_gib'] for r in old):.2f} → {max(r['peak_rss_gib'] for r in new):.2f}")
        pinned = (old[-1]["model_version"], old[-1]["weights_sha256"]) == (new[-1]["model_version"], new[-1]["weights_sha256"])
        report = agreement(OUT / "old" / slug(label), OUT / "new" / slug(label))
        columns = ", ".join(f"{c} {d:.2g}" for c, d in report["columns"].items())
        print(f"{'':30s} model {new[-1]['model_version']} {'same in both' if pinned else 'DIFFERS'}; lesions "
              f"{report['lesions'][0]} → {report['lesions'][1]}; union Dice {report['union_dice']:.5f}; worst lesion "
              f"Dice {report['worst_lesion_dice']:.5f}; worst centroid {report['worst_centroid_mm']:.2g} mm; label maps "
              f"{'identical' if report['ids_identical'] else 'differ'}; warnings "
              f"{'identical' if report['warnings_identical'] else 'differ: ' + repr(report['warnings'])}")
        print(f"{'':30s} largest column differences (rel for volume/count/area/sphericity, abs otherwise): {columns}")
        print(f"{'':30s} {'within tolerance' if report['within_tolerance'] and pinned else 'OUT OF TOLERANCE'}")
        failed |= not (report["within_tolerance"] and pinned)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
