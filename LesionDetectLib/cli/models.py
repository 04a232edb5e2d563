"""`lesiondetect models list|show NAME|import PATH`: the installed model bundles."""

from __future__ import annotations

import argparse
import json

from ..bundles import default_model_for, import_model, list_models, load_model
from ..errors import ModelBundleError
from .common import text


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list, show or import model bundles", description=__doc__)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="installed models")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=run_list)
    show = actions.add_parser("show", help="a model's model.json")
    show.add_argument("name", type=text, help="model name or bundle path")
    show.set_defaults(run=run_show)
    importing = actions.add_parser("import", help="copy a bundle into the user models folder "
                                   "($LESIONDETECT_MODELS, default ~/.lesiondetect/models)")
    importing.add_argument("path", type=text, help="bundle folder or .zip: LesionDetect's own (model.json) or a "
                           "MONAI bundle (configs/metadata.json, configs/inference.json|yaml, models/model.pt)")
    importing.add_argument("--lesion-labels", type=label_list, metavar="N[,N...]",
                           help="MONAI bundle: the output labels (softmax classes or sigmoid channels) that are "
                           "lesions, when its metadata.json does not say")
    importing.add_argument("--name", type=text, help="MONAI bundle: the installed model's name "
                           "(default: the bundle's folder or zip name)")
    importing.add_argument("--set", dest="overrides", type=override, action="append", default=[],
                           metavar="KEY=VALUE", help="MONAI bundle: replace a literal inference setting before "
                           "reading it, e.g. --set whether_raw_luna16=true or --set displayable_configs#highres=false")
    importing.set_defaults(run=run_import)


def run_list(args: argparse.Namespace) -> int:
    entries = list_models()
    if args.json:
        print(json.dumps([entry.to_dict() for entry in entries], indent=2))
        return 0
    width = max((len(entry.name) for entry in entries), default=0) + 2
    defaults = {default_model_for(modality): modality for modality in {entry.modality for entry in entries}}
    for entry in entries:
        marker = f"default {defaults[entry.name]}" if entry.name in defaults else ""
        print(f"{entry.name:<{width}}{entry.version:<10}{entry.modality:<4}{entry.source:<9}{marker:<12}"
              f"{entry.description}")
    if not entries:
        print("no models installed; import one with 'lesiondetect models import PATH'")
    return 0


def run_show(args: argparse.Namespace) -> int:
    model = load_model(args.name)
    print(json.dumps({**model.spec.to_dict(), "location": str(model.location)}, indent=2, sort_keys=True))
    return 0


def label_list(value: str) -> list[int]:
    try:
        labels = [int(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: a comma-separated list of label numbers, e.g. 1,2") from None
    if any(label < 0 for label in labels):
        raise argparse.ArgumentTypeError(f"{value!r}: label numbers are 0 or more")
    return labels


def override(value: str) -> tuple[str, object]:
    key, equals, literal = value.partition("=")
    try:
        parsed = json.loads(literal)
    except ValueError:
        parsed = None if not equals else literal  # plain text
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"{value!r}: KEY=VALUE, VALUE a JSON literal (true, 3.0, [1, 2]) or text")
    return key, parsed


def run_import(args: argparse.Namespace) -> int:
    from ..monai_bundle.importer import import_monai_bundle, is_monai_bundle

    if is_monai_bundle(args.path):
        target = import_monai_bundle(args.path, args.lesion_labels, args.name, dict(args.overrides))
    elif args.lesion_labels is not None or args.name or args.overrides:
        raise ModelBundleError(f"{args.path}: --lesion-labels, --name and --set are for MONAI bundles "
                               "(configs/metadata.json); this is not one")
    else:
        target = import_model(args.path)
    print(f"imported into {target}")
    return 0
