"""Write the shipped `flair-hyperintensity-baseline` bundle: a fixed rule, NOT a trained model.

It marks FLAIR voxels more than 3 standard deviations above the brain's mean intensity (after the MR
percentile clip + z-score of `preprocess.normalise_intensity`). The level 3 is the textbook "3 SD" rule,
fixed before looking at any result. It exists so that the pipeline and the demo run end to end; the
trained `brain-mri-lesions` model supersedes it.

    python tools/make_baseline_model.py LesionDetectLib/models/flair-hyperintensity-baseline
"""

import sys

from LesionDetectLib.bundles import save_bundle
from LesionDetectLib.networks import build_network

LEVEL_SD, SCALE = 3.0, 8.0
KWARGS = {"in_channels": 1, "out_channels": 1, "level": LEVEL_SD, "scale": SCALE}
SPEC = {
    "name": "flair-hyperintensity-baseline",
    "version": "0.1.0",
    "description": "Untrained fixed-rule baseline: FLAIR voxels > 3 SD above the brain mean (not a trained model)",
    "modality": "MR",
    "intended_use": "Pipeline demonstration and a baseline for comparison only. Not trained, not for diagnosis.",
    "input_channels": ["FLAIR"],
    "network": {"name": "IntensityThreshold", "kwargs": KWARGS},
    "spacing": [1.0, 1.0, 1.0],
    "intensity": {"kind": "mr", "percentiles": [0.0, 100.0]},  # no clip: the rule needs the bright tail
    "patch_size": [64, 64, 64],
    "overlap": 0.0,
    "batch_size": 4,
    "labels": {"0": "background", "1": "lesion"},
    "threshold": 0.5,
    "min_lesion_mm3": 10.0,
    "provenance": {"training": "none: a fixed rule (z-score > 3 on skull-stripped FLAIR)",
                   "script": "tools/make_baseline_model.py"},
    "metrics": {},
}

if __name__ == "__main__":
    save_bundle(sys.argv[1], SPEC, build_network("IntensityThreshold", KWARGS).state_dict())
