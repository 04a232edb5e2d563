"""`lesiondetect demo`: detection end to end on the real sample volume shipped in the package."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..batch import run_cases
from ..bundles import load_model
from ..evaluation import Prediction, match_case, reference_lesions, resolve_rule
from ..io import read_volume, volume_stem
from ..model_spec import ModelSpec
from ..overview import write_overview
from ..progress import make_reporter
from ..result import DetectionResult
from ..samples import DEMO_SAMPLE, SAMPLES, Sample, sample_path
from ..volume import Volume
from .common import lesion_table, path
from .detect import add_common_detect_arguments, options_from


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run detection on a shipped real sample", description=__doc__)
    parser.add_argument("-o", "--output", type=path, default=Path("lesiondetect-demo"), help="output folder")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sample", choices=sorted(SAMPLES), default=DEMO_SAMPLE,
                       help=f"which shipped sample (default {DEMO_SAMPLE})")
    which.add_argument("--ct", dest="sample", action="store_const", const="ct-sarcoma",
                       help="the CT sample (same as --sample ct-sarcoma)")
    which.add_argument("--ms", dest="sample", action="store_const", const="ms-flair",
                       help="the MS sample, FLAIR and T1 (same as --sample ms-flair)")
    add_common_detect_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sample = SAMPLES[args.sample]
    print(f"sample: {sample.description}\ncredit: {sample.credit}")
    image = sample_path(sample.image)
    args.model = args.model or sample.model
    spec = load_model(args.model).spec
    options = options_from(args, channels=sample_channels(sample, spec.needed_channels))
    summary = run_cases([image], args.output, options, make_reporter("none" if args.quiet else args.progress))
    if summary.failed:
        raise next(iter(summary.failed.values()))
    result = summary.written[image]
    reference = read_volume(sample_path(sample.reference))
    picture = write_overview(args.output / f"{volume_stem(image)}.overview.png", result, reference.array)
    print(f"model: {result.model_name} (threshold {result.threshold}, outline {result.settings['outline_threshold']})")
    note = training_note(sample, spec)
    if note:
        print(note)
    print(lesion_table(result.lesions))
    print(agreement(result, reference, sample.rule))
    print(f"outputs written to {args.output.resolve()}; overview picture: {picture.name}")
    return 0


def sample_channels(sample: Sample, needed: list[str]) -> tuple[tuple[str, Path], ...]:
    """The sample's other sequences that the model needs (``needed``: its channels), as ``--channel`` gives them;
    none for a one-channel model, so ``--model ms-flair-lesions`` runs on the FLAIR alone."""
    wanted = {name.casefold() for name in needed}
    return tuple((name, sample_path(file)) for name, file in sample.channels.items() if name.casefold() in wanted)


def agreement(result: DetectionResult, reference: Volume, rule: str) -> str:
    """How the detections compare with the sample's reference mask, counted with ``lesiondetect evaluate``'s rule."""
    counts = match_case("sample", [Prediction.from_lesion(lesion) for lesion in result.lesions],
                        reference_lesions(reference, resolve_rule(rule))).counts()
    return (f"against the reference mask ({rule} rule): {counts.tp} of {counts.lesions} reference lesions found, "
            f"{counts.fp} detection(s) outside them")


def training_note(sample: Sample, spec: ModelSpec) -> str | None:
    """Whether the model trained on the sample: a warning when it did (then the demo shows fit, not accuracy),
    a statement when its provenance shows the sample was held out; None when the provenance says neither."""
    dataset = spec.provenance.get("dataset", {})
    if sample.case_id in dataset.get("training_case_ids", ()):
        return (f"note: this case ({sample.case_id}) was one of the {spec.name} model's training cases, so the "
                "demo shows what the model learned, not how well it finds lesions in new scans (see its "
                "cross-validated accuracy in the README)")
    if sample.case_id in dataset.get("validation_case_ids", ()):
        return (f"note: this case ({sample.case_id}) was held out of the {spec.name} model's training (its "
                "validation case), so the demo shows the model on a scan it has never seen")
    return None
