"""Case-level k-fold cross-validation of a training recipe, with the default threshold chosen on the folds.

For each fold: ``lesiondetect train DATALIST --folds K --fold F`` (plus the recipe flags given after ``--``),
then ``lesiondetect detect`` on that fold's validation cases (never seen in its training) with
``--save-probability`` (a multi-channel case's first channel as the input, the others as ``--channel NAME=PATH``,
as its fold's ``split.json`` lists them; ``--channels`` / ``--channel-key`` go in the recipe flags). Every case is validated exactly once. The saved probability maps are then
re-thresholded at each (threshold, outline threshold, minimum lesion volume) of a grid and evaluated with
``lesiondetect evaluate`` under each lesion type's rule; the setting maximising the mean over the lesion types
of (F1 + Dice) / 2 is the one to ship (``selected`` in ``cv_summary.json``). With ``--max-lesion-free-fp N``
only settings with at most N false positives per lesion-free case are eligible (when none is, the one with the
fewest). ``--report`` types (e.g. scans whose other findings are not annotated) are evaluated and printed, but
choose nothing. Everything is written under OUT
(fold bundles, predictions, ``evaluation/t<threshold>-m<mm3>/<lesion type>/summary.json`` and
``cv_summary.json``); a stopped run resumes, keeping finished folds, detections and evaluations.

    python tools/crossvalidate.py DATALIST OUT --folds 5 --rules glioma=glioma "multiple sclerosis=ms" -- \\
        --recipe cpu --spacing 2 --epochs 20
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
OUTLINE_THRESHOLDS = (None, 0.3, 0.5, 0.7)  # None: outline at the threshold; else only those below it
MIN_VOLUMES_MM3 = (10.0, 50.0, 200.0)


def lesiondetect(*args: str) -> None:
    """Run one `lesiondetect` command, failing loudly."""
    command = [sys.executable, "-m", "LesionDetectLib", *args]
    print("$ lesiondetect " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def datalist_items(datalist: Path) -> dict[str, dict]:
    data = json.loads(datalist.read_text())
    return {item["case"]: item for item in data["training"] + data.get("validation", [])}


def run_fold(datalist: Path, out: Path, folds: int, fold: int, recipe_args: list[str]) -> None:
    model_dir = out / f"fold{fold}"
    if not (model_dir / "model.json").exists():
        resume = ["--resume"] if (model_dir / "checkpoints").exists() else []
        lesiondetect("train", str(datalist), "-o", str(model_dir), "--folds", str(folds), "--fold", str(fold),
                     "--progress", "none", *resume, *recipe_args)
    items = datalist_items(datalist)
    split = json.loads((model_dir / "split.json").read_text())
    for case in split["validation"]:
        target = out / "probabilities" / case
        image, *channels = case_inputs(datalist, items[case], split.get("channels", {}).get(case))
        if not (target / f"{Path(image).name.split('.')[0]}.probability.nrrd").exists():
            lesiondetect("detect", image, "-o", str(target), "--model", str(model_dir), "--save-probability",
                         "--progress", "none", "--quiet", *channels)


def case_inputs(datalist: Path, item: dict, channels: dict[str, str] | None) -> list[str]:
    """``detect``'s arguments for a case: its (first channel's) image, then ``--channel NAME=PATH`` for the others."""
    if not channels:
        return [str(datalist.parent / item["image"])]
    (_, first), *others = channels.items()
    return [first] + [part for name, path in others for part in ("--channel", f"{name}={path}")]


def make_grid(thresholds, outlines, volumes) -> dict[str, tuple[float, float, float | None]]:
    """Setting name → (threshold, minimum volume, outline threshold); outlines only below their threshold."""
    return {
        setting_name(threshold, volume, outline): (threshold, volume, outline)
        for threshold in thresholds for outline in outlines for volume in volumes
        if outline is None or outline < threshold
    }


def rethreshold(out: Path, threshold: float, min_volume_mm3: float, outline_threshold: float | None) -> Path:
    """Predictions of one setting from the saved probability maps (as `detect` makes them)."""
    import SimpleITK as sitk

    from LesionDetectLib.lesions import from_probability
    from LesionDetectLib.result import DetectionResult
    from LesionDetectLib.volume import Volume

    target = out / "predictions" / setting_name(threshold, min_volume_mm3, outline_threshold)
    partial = target.with_name(target.name + ".partial")  # renamed when complete, so a stopped run redoes it
    shutil.rmtree(partial, ignore_errors=True)
    for case_dir in sorted((out / "probabilities").iterdir()):
        for probability_path in case_dir.glob("*.probability.nrrd"):
            stem = probability_path.name[: -len(".probability.nrrd")]
            probability = Volume.from_sitk(sitk.ReadImage(str(probability_path)))
            spec = json.loads((case_dir / f"{stem}.lesions.json").read_text())["settings"]
            lesions, label_map = from_probability(probability.array, probability, threshold, min_volume_mm3,
                                                  measure_surfaces=False, outline_threshold=outline_threshold)
            result = DetectionResult(probability, lesions, label_map, probability.array, threshold, spec["model"])
            result.write(partial / case_dir.name, stem)
    partial.rename(target)
    return target


def evaluate(args: argparse.Namespace, setting: str, lesion_type: str, rule: str) -> dict:
    """``lesiondetect evaluate`` of the cases tagged ``lesion_type``; its ``summary.json`` (kept from an earlier run)."""
    report = args.out / "evaluation" / setting / lesion_type.replace(" ", "-")
    if (report / "summary.json").exists():
        return json.loads((report / "summary.json").read_text())
    predictions = args.out / "predictions" / setting
    if not predictions.exists():
        rethreshold(args.out, *args.grid[setting])
    lesiondetect("evaluate", "--pred", str(predictions), "--ref", str(args.reference), "--rule", rule,
                 "--filter", f"lesion_type={lesion_type}", "-o", str(report), "--threshold", "0")
    return json.loads((report / "summary.json").read_text())


def validated_datalist(datalist: Path, out: Path) -> Path:
    """The datalist's items that some fold validated (all of them, unless ``--only-folds`` ran a subset), with
    absolute paths, as ``OUT/validated.json``: the reference of every evaluation."""
    data = json.loads(datalist.read_text())
    done = {folder.name for folder in (out / "probabilities").iterdir()}
    items = [{**item, **{key: str((datalist.parent / first(item[key])).resolve()) for key in ("image", "label")}}
             for item in data["training"] + data.get("validation", []) if item["case"] in done]
    target = out / "validated.json"
    target.write_text(json.dumps({**data, "training": items, "validation": [], "numTraining": len(items)}, indent=1))
    return target


def first(path: str | list[str]) -> str:
    """A datalist path, or the first of a multi-channel ``image`` list (the grid the reference lies on)."""
    return path[0] if isinstance(path, list) else path


def setting_name(threshold: float, min_volume_mm3: float, outline_threshold: float | None = None) -> str:
    outline = "" if outline_threshold is None else f"-o{outline_threshold:.2f}"
    return f"t{threshold:.2f}{outline}-m{min_volume_mm3:g}"


def outline_value(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def value(metrics: dict, name: str) -> float:
    """A metric of ``summary.json`` (null, when undefined, counts as 0)."""
    return metrics[name]["value"] or 0.0


def selection_score(scores: dict[str, dict]) -> float:
    """Mean over the lesion types of (lesion-wise F1 + whole-case Dice) / 2.

    F1 alone rewards a degenerate setting: on crops centred on their tumour, one component covering the whole
    crop has its centroid on the tumour and "hits" it. Dice counts the outline, so such a setting loses.
    """
    return sum(value(s["metrics"], "f1") + value(s["metrics"], "dice") for s in scores.values()) / (2 * len(scores))


def brief(metrics: dict) -> str:
    return (f"sens {value(metrics, 'sensitivity'):.2f} FP/case {value(metrics, 'fp_per_case'):.1f} "
            f"F1 {value(metrics, 'f1'):.2f} Dice {value(metrics, 'dice'):.2f}")


def eligible(grid: dict[str, dict], max_lesion_free_fp: float | None) -> list[str]:
    """The settings allowed to be chosen: all, or those within the lesion-free false-positive limit."""
    if max_lesion_free_fp is None or not any(entry["lesion_free"] for entry in grid.values()):
        return list(grid)

    def fp(name: str) -> float:
        return max(value(score["metrics"], "fp_per_case") for score in grid[name]["lesion_free"].values())

    within = [name for name in grid if fp(name) <= max_lesion_free_fp + 1e-9]
    return within or [min(grid, key=fp)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datalist", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rules", nargs="+", required=True, metavar="LESION_TYPE=RULE",
                        help="lesion types whose scores choose the setting, each with its matching rule")
    parser.add_argument("--lesion-free", nargs="*", default=[], metavar="LESION_TYPE=RULE",
                        help="types of lesion-free cases: their false positives are reported, not optimised")
    parser.add_argument("--report", nargs="*", default=[], metavar="LESION_TYPE=RULE",
                        help="lesion types evaluated and reported that choose nothing")
    parser.add_argument("--only-folds", nargs="+", type=int, metavar="F",
                        help="train and validate only these folds (a partial cross-validation, reported as such)")
    parser.add_argument("--thresholds", nargs="+", type=float, default=THRESHOLDS, help="the grid's thresholds")
    parser.add_argument("--outline-thresholds", nargs="+", type=outline_value, default=OUTLINE_THRESHOLDS,
                        metavar="T|none", help="the grid's outline thresholds (none: at the threshold)")
    parser.add_argument("--min-volumes", nargs="+", type=float, default=MIN_VOLUMES_MM3, metavar="MM3",
                        help="the grid's minimum lesion volumes")
    parser.add_argument("--max-lesion-free-fp", type=float, metavar="N",
                        help="choose only among settings with at most N false positives per lesion-free case")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args, recipe_args = parser.parse_args(argv[:split]), argv[split + 1 :]
    args.grid = make_grid(args.thresholds, args.outline_thresholds, args.min_volumes)
    rules = dict(item.split("=", 1) for item in args.rules)
    lesion_free = dict(item.split("=", 1) for item in args.lesion_free)
    reported = dict(item.split("=", 1) for item in args.report)
    for fold in args.only_folds or range(args.folds):
        run_fold(args.datalist, args.out, args.folds, fold, recipe_args)
    args.reference = validated_datalist(args.datalist, args.out)
    present = {item.get("lesion_type") for item in json.loads(args.reference.read_text())["training"]}
    rules, lesion_free, reported = ({kind: rule for kind, rule in kinds.items() if kind in present}
                                    for kinds in (rules, lesion_free, reported))  # a partial CV may lack some
    grid: dict[str, dict] = {}
    for name, (threshold, min_volume, outline) in args.grid.items():
        scores, free, other = ({lesion_type: evaluate(args, name, lesion_type, rule)
                                for lesion_type, rule in kinds.items()} for kinds in (rules, lesion_free, reported))
        grid[name] = {"threshold": threshold, "outline_threshold": outline, "min_lesion_mm3": min_volume,
                      "scores": scores, "lesion_free": free, "reported": other}
    selected = max(eligible(grid, args.max_lesion_free_fp), key=lambda name: selection_score(grid[name]["scores"]))
    rule_text = "highest mean over the lesion types of (lesion-wise F1 + whole-case Dice) / 2"
    if args.max_lesion_free_fp is not None:
        rule_text += f", among settings with at most {args.max_lesion_free_fp:g} false positives per lesion-free case"
    folds = sorted(args.only_folds or range(args.folds))
    summary = {"selected": selected, "grid": grid, "selection": rule_text, "folds": args.folds, "folds_run": folds}
    (args.out / "cv_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    for name, entry in grid.items():
        print(f"{name}{' *' if name == selected else '  '} " + "  ".join(
            f"{kind}: {brief(score['metrics'])}" for kind, score in {**entry["scores"], **entry["reported"]}.items()) + "".join(
            f"  {kind}: FP/case {value(score['metrics'], 'fp_per_case'):.2f}" for kind, score in entry["lesion_free"].items()))


if __name__ == "__main__":
    main()
