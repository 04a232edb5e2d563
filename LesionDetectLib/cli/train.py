"""`lesiondetect train DATASET -o MODEL_DIR`: train a lesion detector on annotated scans into a model bundle.

DATASET is a Medical Segmentation Decathlon dataset.json / MONAI datalist (or a folder holding one), or an
nnU-Net-style folder with imagesTr/ and labelsTr/. A multi-channel dataset lists one image path per channel
(Decathlon style, named by dataset.json's modality or --channels) or holds further sequences under other
keys (--channel-key T1=t1); every channel is resampled onto the first one's grid and becomes one input
channel of the network, in that order. Every file is checked before training starts. The
recipe starts from the preset (--recipe cpu|gpu; gpu when CUDA is available) and each option below
overrides one of its values. Under torchrun the same command trains with DistributedDataParallel:

  torchrun --nproc_per_node=4 -m LesionDetectLib train DATASET -o MODEL_DIR
  torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_backend=c10d \\
           --rdzv_endpoint=HOST:29500 -m LesionDetectLib train DATASET -o MODEL_DIR   (one per machine)
"""

from __future__ import annotations

import argparse
import json
import math

from ..errors import LesionDetectError
from ..input_checks import REQUIREMENT_CHECKS
from ..model_spec import MAX_HU, MAX_PATCH, MAX_WINDOW_VOXELS, SAFE_NAME, SPACING_RANGE_MM, non_finite_numbers
from ..networks import MONAI_NETWORKS
from ..progress import MODES, make_reporter, step_bar_reporter
from ..training.recipe import CACHE_MODES, LESION_RULES, LOSSES, PRESETS, SELECT_METRICS
from .common import (
    MAX_BATCH,
    batch_size,
    device,
    fraction,
    key_value,
    lesion_volume,
    number,
    overlap,
    positive_int,
    probability,
    seed,
    text,
    whole_number,
)

MAX_FOLDS, MAX_WORKERS = 100, 256


def _triple(kind, low, high):
    """One or three numbers (``1.5`` or ``1,1,2`` or ``1x1x2``), each from ``low`` to ``high``."""
    def parse(text: str):
        try:
            values = [kind(v) for v in text.replace("x", ",").split(",") if v.strip()]
        except ValueError:
            values = []
        if len(values) == 1:
            values *= 3
        if len(values) != 3 or not all(math.isfinite(v) and low <= v <= high for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: give one or three numbers from {low} to {high}, e.g. 2 or 1,1,2")
        return tuple(values)

    return parse


def _intensity(text: str) -> dict:
    """``ct``, ``ct:LOW,HIGH`` (HU window) or ``mr``, ``mr:LOW,HIGH`` (foreground percentiles): finite, LOW < HIGH."""
    kind, _, values = text.partition(":")
    kind = kind.strip().lower()
    if kind not in ("ct", "mr"):
        raise argparse.ArgumentTypeError(f"{text!r}: use ct:LOW,HIGH (HU window) or mr:LOW,HIGH (percentiles)")
    key, bound = ("window", MAX_HU) if kind == "ct" else ("percentiles", None)
    if not values:
        return {"kind": kind}
    try:
        low, high = (float(v) for v in values.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: two numbers after the colon, e.g. ct:-200,300") from None
    inside = -bound <= low and high <= bound if bound else low >= 0 and high <= 100
    if not (math.isfinite(low) and math.isfinite(high) and low < high and inside):
        limits = f"within ±{bound:g} HU" if bound else "within 0-100"
        raise argparse.ArgumentTypeError(f"{text!r}: LOW below HIGH, both {limits}")
    return {"kind": kind, key: [low, high]}


def _axes(text: str) -> tuple[int, ...]:
    """``0``, ``0,1,2`` or ``none``: distinct model-grid axes."""
    if text.strip().lower() == "none":
        return ()
    try:
        axes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        axes = (-1,)
    if not set(axes) <= {0, 1, 2} or len(set(axes)) != len(axes):
        raise argparse.ArgumentTypeError(f"{text!r}: distinct axes among 0, 1, 2 (e.g. 0 or 0,1,2), or none")
    return axes


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"channels\": [8, 16, 32, 64]}'")
    bad = non_finite_numbers(value)
    if bad:
        raise argparse.ArgumentTypeError(f"{bad[0][0]} is {bad[0][1]}: every number must be finite")
    if value.get("pretrained", False) is not False:
        raise argparse.ArgumentTypeError("pretrained must be false: nothing is downloaded")
    return value


def _model_name(text: str) -> str:
    if not SAFE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain folder name (letters, digits, space, '.', '_', "
                                         "'+', '-'; not starting with '.')")
    return text


def channel_list(text: str) -> tuple[str, ...]:
    """``FLAIR,T1``: distinct non-empty channel names."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r}: channel names separated by commas, e.g. FLAIR,T1")
    return names


def preset_table() -> str:
    """The presets' values, one recipe field a line (``cpu / gpu`` where they differ)."""
    cpu, gpu = (PRESETS[name]().to_dict() for name in ("cpu", "gpu"))
    lines = ["recipe presets (cpu / gpu where they differ; None: decided from the dataset):"]
    for key, value in cpu.items():
        shown = json.dumps(value) if value == gpu[key] else f"{json.dumps(value)} / {json.dumps(gpu[key])}"
        lines.append(f"  {key.replace('_', '-')}: {shown}")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a lesion detector on annotated scans", description=__doc__, epilog=preset_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", metavar="DATASET", type=text, help="dataset.json / datalist, or a folder")
    parser.add_argument("-o", "--output", dest="model_dir", required=True, type=text, metavar="MODEL_DIR",
                        help="folder for the bundle, log, curves and checkpoints")
    parser.add_argument("--recipe", choices=sorted(PRESETS), help="preset to start from (default: gpu if CUDA, else cpu)")
    parser.add_argument("--resume", action="store_true", help="continue the run in MODEL_DIR from its last checkpoint")
    parser.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--progress", choices=MODES, default="bar", help="bar, jsonl or none (default: bar)")

    split = parser.add_argument_group("validation split (case level, stratified by the 'source' tag)")
    split.add_argument("--folds", type=whole_number(2, MAX_FOLDS), help="K-fold cross-validation over all cases")
    split.add_argument("--fold", type=whole_number(0, MAX_FOLDS - 1), help="which fold validates (0…K-1; default 0)")
    split.add_argument("--val-fraction", type=fraction,
                       help="fraction of cases that validate; 0 trains on all (default: the dataset's "
                            "validation list, else 0.2)")
    split.add_argument("--allow-empty-labels", action="store_true", help="accept lesion-free cases (empty labels)")
    split.add_argument("--filter", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                       help="only datalist items with this field value (e.g. 'lesion_type=multiple sclerosis'); "
                            "repeatable")

    inputs = parser.add_argument_group("input channels (default: one, the image)")
    inputs.add_argument("--channels", type=channel_list, metavar="NAME,NAME",
                        help="names of the channels a case's 'image' lists, in order (default: dataset.json's "
                             "modality / channel_names), e.g. FLAIR,T1")
    inputs.add_argument("--channel-key", dest="channel_keys", action="append", type=key_value, default=[],
                        metavar="NAME=KEY", help="a further channel held under another datalist key, e.g. T1=t1 "
                        "(repeatable; after the image's channels, in the order given)")

    model = parser.add_argument_group("the model")
    model.add_argument("--name", type=_model_name, help="model name (default: the dataset's name)")
    model.add_argument("--description", type=text, help="one line for model listings")
    model.add_argument("--modality", choices=("CT", "MR"), help="default: from dataset.json, else guessed")
    model.add_argument("--intensity", type=_intensity,
                       help="ct:LOW,HIGH HU window (default ct:-200,300) or mr:LOW,HIGH percentiles (default mr:0.5,99.5)")
    model.add_argument("--input-requirement", dest="input_requirements", action="append",
                       choices=sorted(REQUIREMENT_CHECKS), metavar="NAME",
                       help="what inputs must be like, checked with a warning at detection "
                            f"({', '.join(sorted(REQUIREMENT_CHECKS))}; repeatable)")
    model.add_argument("--spacing", type=_triple(float, *SPACING_RANGE_MM),
                       help="model grid spacing in mm (one or three values)")
    model.add_argument("--patch-size", type=_triple(int, 1, MAX_PATCH), help="patch size in voxels (one or three values)")
    model.add_argument("--network", choices=MONAI_NETWORKS, help="MONAI network (default: the preset's UNet)")
    model.add_argument("--network-kwargs", type=_json_object,
                       help="JSON kwargs merged into the preset's (or replacing them with another --network)")
    model.add_argument("--threshold", type=probability, help="the bundle's default probability threshold")
    model.add_argument("--min-lesion-mm3", type=lesion_volume, help="the bundle's minimum lesion volume")
    model.add_argument("--overlap", type=overlap, help="sliding-window overlap in [0, 0.9]")
    model.add_argument("--sw-batch-size", type=batch_size, help="sliding-window batch (validation and the bundle)")
    model.add_argument("--flip-axes", type=_axes, metavar="AXES",
                       help="test-time augmentation: also predict mirrored along these model-grid axes "
                            "(0 = left-right, 1 = front-back, 2 = up-down; e.g. 0 or 0,1,2; 'none' for none)")

    optimise = parser.add_argument_group("optimisation")
    optimise.add_argument("--loss", choices=LOSSES)
    optimise.add_argument("--lr", type=number(0.0, 10.0, low_open=True), help="AdamW peak learning rate")
    optimise.add_argument("--weight-decay", type=number(0.0, 10.0))
    optimise.add_argument("--warmup-epochs", type=whole_number(0, 10**6))
    optimise.add_argument("--epochs", type=positive_int)
    optimise.add_argument("--iterations-per-epoch", type=positive_int)
    optimise.add_argument("--batch-size", type=whole_number(1, MAX_BATCH),
                          help="cases per step (each gives --samples-per-case patches)")
    optimise.add_argument("--samples-per-case", type=whole_number(1, MAX_BATCH))
    optimise.add_argument("--positive-fraction", type=fraction, help="share of patches centred on a lesion")
    optimise.add_argument("--hard-negative-fraction", type=fraction,
                          help="share of patches centred where the network fired outside the lesions at the last "
                               "mining pass over the training cases (0 = no mining)")
    optimise.add_argument("--mining-interval", type=positive_int, help="epochs between hard-negative mining passes")
    optimise.add_argument("--centre-jitter", type=number(0.0, 1.0, high_open=True),
                          help="how far a patch's sampled voxel (e.g. a lesion voxel) may lie from the patch centre, "
                               "in half patch sides (default 0: at the centre; centred lesions teach a network to "
                               "fire at every sliding window's centre)")
    optimise.add_argument("--amp", action=argparse.BooleanOptionalAction, help="mixed precision on CUDA")
    optimise.add_argument("--seed", type=seed)

    augment = parser.add_argument_group("augmentation")
    augment.add_argument("--flip", action=argparse.BooleanOptionalAction)
    augment.add_argument("--affine", action=argparse.BooleanOptionalAction, help="small rotations and scaling")
    augment.add_argument("--rotate-degrees", type=number(0.0, 180.0))
    augment.add_argument("--scale-range", type=number(0.0, 1.0, high_open=True))
    augment.add_argument("--intensity-augment", action=argparse.BooleanOptionalAction)
    augment.add_argument("--heavy-augment", action=argparse.BooleanOptionalAction,
                         help="also bias fields, gamma contrast, blur/sharpening and simulated thick slices")
    augment.add_argument("--copy-paste", type=fraction, metavar="P",
                         help="probability of pasting annotated lesions into a sample (TumorCP; 0 = off)")

    checks = parser.add_argument_group("validation and running")
    checks.add_argument("--val-interval", type=positive_int, help="validate every N epochs")
    checks.add_argument("--lesion-rule", choices=LESION_RULES,
                        help="lesion matching rule for cases without a known lesion_type tag")
    checks.add_argument("--select-metric", choices=SELECT_METRICS,
                        help="metric choosing the best checkpoint (last: the final epoch, so that "
                             "cross-validation folds choose nothing)")
    checks.add_argument("--num-workers", type=whole_number(0, MAX_WORKERS), help="data loader worker processes")
    checks.add_argument("--cache", choices=CACHE_MODES, help="where prepared cases are kept")
    parser.set_defaults(run=run, check=check)


RECIPE_OPTIONS = (
    "name", "description", "modality", "intensity", "input_requirements", "spacing", "patch_size", "threshold", "min_lesion_mm3",
    "overlap", "sw_batch_size", "flip_axes", "loss", "lr", "weight_decay", "warmup_epochs", "epochs", "iterations_per_epoch", "batch_size",
    "samples_per_case", "positive_fraction", "hard_negative_fraction", "mining_interval", "centre_jitter", "amp", "seed", "flip", "affine", "rotate_degrees", "scale_range",
    "intensity_augment", "heavy_augment", "copy_paste", "val_interval", "lesion_rule", "select_metric", "num_workers", "cache",
)


def recipe_changes(args: argparse.Namespace):
    """The options given on the command line, as recipe changes (a `Recipe` for a new run)."""
    from ..training.recipe import default_preset, preset

    changes = {key: getattr(args, key) for key in RECIPE_OPTIONS if getattr(args, key, None) is not None}
    if "input_requirements" in changes:
        changes["input_requirements"] = tuple(changes["input_requirements"])
    if changes.get("intensity") and set(changes["intensity"]) == {"kind"}:
        kind = changes.pop("intensity")["kind"]
        changes.setdefault("modality", "CT" if kind == "ct" else "MR")
    if args.network is not None or args.network_kwargs is not None:
        base = preset(args.recipe or default_preset())
        same = args.network in (None, base.network)
        changes["network"] = args.network or base.network
        changes["network_kwargs"] = {**(base.network_kwargs if same else {}), **(args.network_kwargs or {})}
    if args.resume:
        return changes or None
    return preset(args.recipe or default_preset()).updated(**changes)


def check(args: argparse.Namespace) -> str | None:
    """What no single option's type can see: --fold needs --folds (and excludes --val-fraction), and the options
    must make a valid recipe whose sliding window fits a bundle (checked before anything is read or trained)."""
    if args.fold is not None and args.folds is None:
        return "--fold needs --folds (K-fold cross-validation)"
    if args.fold is not None and args.fold >= args.folds:
        return f"--fold must be from 0 to {args.folds - 1} for --folds {args.folds}"
    if args.folds is not None and args.val_fraction is not None:
        return "give either --folds/--fold or --val-fraction, not both"
    if args.resume:
        return None  # the options change the recipe of the checkpoint, which is read when training starts
    recipe = recipe_changes(args)
    try:
        recipe.check()
    except LesionDetectError as error:
        return str(error)
    if math.prod(recipe.patch_size) * recipe.sw_batch_size > MAX_WINDOW_VOXELS:
        return (f"--patch-size {'x'.join(map(str, recipe.patch_size))} with --sw-batch-size {recipe.sw_batch_size} "
                f"is more than the {MAX_WINDOW_VOXELS} voxels a bundle's sliding-window batch may hold")
    return None


def run(args: argparse.Namespace) -> int:
    from ..training import train
    from ..training.channel_layout import ChannelOptions
    from ..training.dataset import load_dataset

    channels = ChannelOptions(args.channels or (), tuple(args.channel_keys))
    if args.filter or channels.names or channels.keys:
        dataset = load_dataset(args.dataset, filters=args.filter, channels=channels)
    else:
        dataset = args.dataset
    report = make_reporter(args.progress, bar=step_bar_reporter)
    result = train(
        dataset, args.model_dir, recipe_changes(args), folds=args.folds, fold=args.fold,
        val_fraction=args.val_fraction, resume=args.resume, device=args.device,
        allow_empty_labels=args.allow_empty_labels, progress=report,
    )
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    validation = result.metrics.get("validation", {})
    summary = f"model bundle written to {result.bundle} after {result.epochs} epochs"
    if validation:
        summary += (f"; best epoch {validation['epoch']}: Dice {validation['dice']:.3f}, "
                    f"lesion sensitivity {validation['sensitivity']:.3f}, F1 {validation['f1']:.3f}")
    report("done", 1.0, summary)
    if args.progress != "jsonl":
        print(summary)
        print(f"import it with: lesiondetect models import {result.bundle}")
    return 0
