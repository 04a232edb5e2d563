"""GPU against CPU: do the shipped models find the same lesions on a GPU (bf16 autocast) as on the CPU (float32)?

    python benchmarks/gpu_agreement.py [--device cuda]

For every input of `shipped_models.inputs`: lesions found on each device, Dice of the two lesion masks, the
largest probability difference, and how many CPU lesions have a device lesion whose centroid is within 3 mm.
"""

from __future__ import annotations

import argparse

import numpy as np
from shipped_models import inputs, read_inputs

MATCH_MM = 3.0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def matched(reference, other) -> int:
    """How many ``reference`` lesions have an ``other`` lesion with its centroid within `MATCH_MM`."""
    if not reference or not other:
        return 0
    others = np.array([lesion.centroid_lps for lesion in other])
    return sum(np.linalg.norm(others - lesion.centroid_lps, axis=1).min() <= MATCH_MM for lesion in reference)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    from LesionDetectLib import detect, load_model

    print(f"{'input':30s} {'model':18s} {'CPU':>4s} {args.device:>5s} {'matched':>8s} {'Dice':>7s} {'max |Δp|':>9s}")
    for case in inputs():
        label, model_name = case.label, case.model
        volume, model = read_inputs(case), load_model(model_name)
        on_cpu = detect(volume, model, device="cpu")
        on_device = detect(volume, model, device=args.device)
        agreement = dice(on_cpu.label_map > 0, on_device.label_map > 0)
        difference = float(np.abs(on_cpu.probability - on_device.probability).max())
        print(f"{label:30s} {model_name:18s} {len(on_cpu.lesions):4d} {len(on_device.lesions):5d} "
              f"{matched(on_cpu.lesions, on_device.lesions):8d} {agreement:7.4f} {difference:9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
