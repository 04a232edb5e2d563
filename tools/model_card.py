"""Ship a trained bundle with its cross-validated evidence.

    python tools/model_card.py FINAL_BUNDLE --cv NAME=CV_DIR [NAME=CV_DIR ...] --chosen NAME \\
        --docs docs/models/MODEL --ship LesionDetectLib/models/MODEL [--credit "SOURCE=licence; citation" ...] \\
        [--keep NAME ...]

FINAL_BUNDLE is the model to ship: trained on all cases (``lesiondetect train … --val-fraction 0``), or one of
the chosen configuration's fold models (then its validation cases stay unseen by the shipped model); each CV_DIR
is a ``tools/crossvalidate.py`` output of one configuration, and ``--chosen`` names the configuration the final
model was trained with. The tool
- copies the bundle to ``--ship`` with the chosen configuration's selected threshold, outline threshold and
  minimum lesion volume as its defaults and ``metrics.cross_validation`` added to ``model.json`` (the chosen
  configuration's metrics at its selected threshold and minimum lesion volume, with bootstrap CIs, per
  lesion type, and every configuration's summary); the weights are stored as float16 (half the size; the
  network still computes in float32) with their new checksum;
- copies the evidence to ``--docs``: the final training log and curves, each configuration's
  ``cv_summary.json``, and the chosen configuration's FROC plots, FROC tables and per-case results;
- prints a Markdown table of every configuration for the README's model card.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
from pathlib import Path

from LesionDetectLib.bundles import open_bundle
from LesionDetectLib.model_spec import SPEC_FILE, WEIGHTS_FILE, ModelSpec

RECIPE_KEYS = ("spacing", "patch_size", "network_kwargs", "loss", "positive_fraction", "hard_negative_fraction",
               "heavy_augment", "copy_paste", "flip_axes", "epochs", "iterations_per_epoch", "seed", "select_metric")
EVIDENCE = ("froc.png", "froc.csv", "per_case.csv", "summary.json")


def configuration(cv_dir: Path) -> dict:
    """The recipe (its first trained fold's) and the selected setting's scores of one cross-validated
    configuration."""
    summary = json.loads((cv_dir / "cv_summary.json").read_text())
    folds = sorted(cv_dir.glob("fold*/" + SPEC_FILE))
    recipe = json.loads(folds[0].read_text())["provenance"]["training"]["recipe"]
    selected = summary["grid"][summary["selected"]]
    return {
        "recipe": {key: recipe[key] for key in RECIPE_KEYS if key in recipe},
        "selection": summary["selection"],
        "folds": len(folds),
        "folds_run": summary.get("folds_run"),
        "threshold": selected["threshold"],
        "outline_threshold": selected.get("outline_threshold"),
        "min_lesion_mm3": selected["min_lesion_mm3"],
        "by_lesion_type": {kind: brief(score) for kind, score in selected["scores"].items()},
        "lesion_free": {kind: brief(score) for kind, score in selected.get("lesion_free", {}).items()},
        "reported": {kind: brief(score) for kind, score in selected.get("reported", {}).items()},
    }


def earlier_configurations(final: Path, names: list[str]) -> dict[str, dict]:
    """Configurations named ``names`` from the cross-validation already recorded in ``final``'s model.json."""
    recorded = json.loads((final / SPEC_FILE).read_text()).get("metrics", {}).get("cross_validation", {})
    missing = set(names) - set(recorded.get("configurations", {}))
    if missing:
        raise SystemExit(f"--keep: {final / SPEC_FILE} records no configuration {', '.join(sorted(missing))}")
    return {name: recorded["configurations"][name] for name in names}


def brief(summary: dict) -> dict:
    """Counts, metrics with their CIs, and FROC points of an evaluation ``summary.json``."""
    return {"counts": summary["counts"], "metrics": summary["metrics"],
            "froc_sensitivity_at_fp_per_case": summary["froc_sensitivity_at_fp_per_case"]}


def ship(final: Path, target: Path, cross_validation: dict, credits: dict[str, str], **fields: str) -> None:
    """Copy the bundle with the chosen configuration's cross-validated setting (threshold, outline threshold,
    minimum lesion volume) as its defaults, the cross-validated metrics, and the training data's licences and
    citations (``provenance.dataset.credits``, per source) in its ``model.json`` (validated), and the weights
    stored as float16; ``fields`` (e.g. ``version``, ``description``) replace the bundle's when given."""
    spec = json.loads((final / SPEC_FILE).read_text())
    spec.update({key: value for key, value in fields.items() if value})
    chosen = cross_validation["configurations"][cross_validation["chosen"]]
    spec.update({key: chosen[key] for key in ("threshold", "outline_threshold", "min_lesion_mm3")})
    spec["metrics"] = {**spec.get("metrics", {}), "cross_validation": cross_validation}
    dataset = spec.setdefault("provenance", {}).setdefault("dataset", {})
    unknown = set(credits) - set(dataset.get("sources", {}))
    if unknown:
        raise SystemExit(f"--credit names sources the model was not trained on: {', '.join(sorted(unknown))}")
    dataset["credits"] = credits or dataset.get("credits", {})  # none given: keep those recorded
    ModelSpec.from_dict(spec, source=str(final / SPEC_FILE))
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    weights = half_precision(final / WEIGHTS_FILE)
    (staging / WEIGHTS_FILE).write_bytes(weights)
    spec["weights"]["sha256"] = hashlib.sha256(weights).hexdigest()
    (staging / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    open_bundle(staging).network("cpu")  # the checksum verifies and the weights load
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def half_precision(weights: Path) -> bytes:
    """A state dict file with its floating-point tensors as float16: a 2.4 M-parameter UNet ships in 4.9 MB
    instead of 9.8 MB; `Model.network` loads them into float32 parameters."""
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    buffer = io.BytesIO()
    torch.save({key: value.half() if value.is_floating_point() else value for key, value in state.items()}, buffer)
    return buffer.getvalue()


def copy_evidence(final: Path, cv_dirs: dict[str, Path], chosen: str, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    for name in ("training_log.csv", "training_curves.png"):
        shutil.copyfile(final / name, docs / f"final_{name}")
    for name, cv_dir in cv_dirs.items():
        shutil.copyfile(cv_dir / "cv_summary.json", docs / f"cv_summary_{name}.json")
    summary = json.loads((cv_dirs[chosen] / "cv_summary.json").read_text())
    for kind_dir in sorted((cv_dirs[chosen] / "evaluation" / summary["selected"]).iterdir()):
        for name in EVIDENCE:
            if (kind_dir / name).exists():
                shutil.copyfile(kind_dir / name, docs / f"cv_{kind_dir.name}_{name}")


def markdown(configurations: dict[str, dict], chosen: str) -> str:
    rows = ["| config | grid (mm) | threshold (outline) / min mm³ | lesion type | sensitivity [95% CI] | FP per case "
            "| F1 | Dice |",
            "|---|---|---|---|---|---|---|---|"]
    for name, config in configurations.items():
        outline = config.get("outline_threshold")
        setting = (f"| {name}{' (shipped)' if name == chosen else ''} | {config['recipe']['spacing'][0]:g} | "
                   f"{config['threshold']:g}{'' if outline is None else f' ({outline:g})'} / "
                   f"{config['min_lesion_mm3']:g} |")
        for kind, score in {**config["by_lesion_type"], **config.get("reported", {})}.items():
            m = score["metrics"]
            rows.append(f"{setting} {kind} ({score['counts']['cases']} cases, {score['counts']['reference_lesions']} "
                        f"lesions) | {cell(m['sensitivity'])} | {cell(m['fp_per_case'])} | {cell(m['f1'])} | "
                        f"{cell(m['dice'])} |")
        for kind, score in config["lesion_free"].items():  # only false positives mean something there
            rows.append(f"{setting} {kind}: lesion-free ({score['counts']['cases']} cases) | – | "
                        f"{cell(score['metrics']['fp_per_case'])} | – | – |")
    return "\n".join(rows)


def cell(metric: dict) -> str:
    value = metric["value"]
    low, high = next(v for k, v in metric.items() if k.startswith("ci"))
    if value is None:
        return "–"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]" if low is not None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("final", type=Path)
    parser.add_argument("--cv", nargs="+", required=True, metavar="NAME=CV_DIR")
    parser.add_argument("--chosen", required=True)
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--ship", type=Path, required=True)
    parser.add_argument("--credit", nargs="*", default=[], metavar="SOURCE=LICENCE AND CITATION",
                        help="licence and citation of each training data source (as named in the datalist)")
    parser.add_argument("--version", help="the shipped model's version (default: the bundle's)")
    parser.add_argument("--description", help="the shipped model's one-line description (default: the bundle's)")
    parser.add_argument("--keep", nargs="*", default=[], metavar="NAME",
                        help="configurations cross-validated earlier, kept as they are in FINAL_BUNDLE's model.json")
    args = parser.parse_args()
    cv_dirs = {name: Path(folder) for name, folder in (item.split("=", 1) for item in args.cv)}
    configurations = {**earlier_configurations(args.final, args.keep),
                      **{name: configuration(folder) for name, folder in cv_dirs.items()}}
    cross_validation = {
        "chosen": args.chosen,
        "selection": "per configuration, the threshold, outline threshold and minimum lesion volume chosen on the "
                     "cross-validation folds by the rule recorded with it (its 'selection'); then the "
                     "configuration with the highest such score",
        "configurations": configurations,
    }
    ship(args.final, args.ship, cross_validation, dict(item.split("=", 1) for item in args.credit),
         version=args.version, description=args.description)
    copy_evidence(args.final, cv_dirs, args.chosen, args.docs)
    print(markdown(configurations, args.chosen))


if __name__ == "__main__":
    main()
