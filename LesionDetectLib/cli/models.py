"""`lesiondetect models list|show NAME|import PATH`: the installed model bundles."""

from __future__ import annotations

import argparse
import json

from ..bundles import default_model_for, import_model, list_models, load_model
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
    importing.add_argument("path", type=text, help="bundle folder or .zip")
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


def run_import(args: argparse.Namespace) -> int:
    target = import_model(args.path)
    print(f"imported into {target}")
    return 0
