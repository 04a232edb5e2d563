"""Build the CT training datalist: the 45 sarcoma crops, the 2 whole chest CTs with a lung lesion, and the real
lesion-free CTs as negatives.

    python tools/make_ct_datalist.py ../shared/data OUT

OUT receives ``datalist.json`` (MONAI datalist with ``case``, ``source`` and ``lesion_type`` per case), links
``ct-soft-tissue-sarcoma`` and ``ct-lung-lesions`` to the annotated cases, and ``negatives/<case>/{image,
label}.nii.gz``: each lesion-free CT (the DICOM series read with LesionDetect's own reader) with an all-zero label
on its exact grid. Train on it with ``--allow-empty-labels``; the ``lesion_type`` values "lesion-free trunk" and "lesion-free crop"
let ``tools/crossvalidate.py --lesion-free "lesion-free trunk=ct-tumour"`` count false positives per whole scan.

Sources are chosen so that k-fold splits (dealt round-robin within each source) put the two lung CTs in
different folds, and the two whole lesion-free trunk CTs in different folds: each is then validated by a model
that trained on the other.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LesionDetectLib.io import read_volume

WHOLE_TRUNK = "whole lesion-free trunk CT"
PARTIAL = "lesion-free CT crop"
NEGATIVES = {  # case id -> (path under the shared data folder, source); README there: sources and licences
    "torso-ct-3mm": ("real-ct-nifti/ct_3mm.nii.gz", WHOLE_TRUNK),  # TotalSegmentator test data, Apache-2.0
    "trunk-ct-ccth-a01": ("real-ct-nifti/ccth_a01_trunk.nii.gz", WHOLE_TRUNK),  # TCIA CC-Tumor-Heterogeneity, CC BY 4.0
    "aorta-ct-crop": ("real-ct-nifti/ct_1p5mm_crop.nii.gz", PARTIAL),  # TotalSegmentator, Apache-2.0
    "chest-abdomen-ct-dicom": ("real-ct-dicom", PARTIAL),  # TotalSegmentator, Apache-2.0
}
LESION_FREE_TYPES = {WHOLE_TRUNK: "lesion-free trunk", PARTIAL: "lesion-free crop"}  # scored apart
ANNOTATED = ("ct-soft-tissue-sarcoma", "ct-lung-lesions")


def write_negative(source: Path, target: Path) -> None:
    """The lesion-free CT as NIfTI and an all-zero label on the same grid."""
    target.mkdir(parents=True, exist_ok=True)
    image = read_volume(source).to_sitk()
    sitk.WriteImage(image, str(target / "image.nii.gz"))
    label = sitk.GetImageFromArray(np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8))
    label.CopyInformation(image)
    sitk.WriteImage(label, str(target / "label.nii.gz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shared_data", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    datalists = []
    for name in ANNOTATED:
        link = args.out / name
        if not link.exists():
            link.symlink_to((args.shared_data / name).resolve())
        datalists.append(json.loads((args.shared_data / f"{name}.json").read_text()))
    datalist = {**datalists[0], "name": "ct-lesions", "training": [item for d in datalists for item in d["training"]]}
    for case, (source_path, source) in NEGATIVES.items():
        write_negative(args.shared_data / source_path, args.out / "negatives" / case)
        datalist["training"].append({
            "image": f"negatives/{case}/image.nii.gz", "label": f"negatives/{case}/label.nii.gz", "case": case,
            "source": source, "lesion_type": LESION_FREE_TYPES[source], "lesions": 0,
        })
    datalist["numTraining"] = len(datalist["training"])
    datalist["description"] = (
        "Real CT in HU: soft-tissue sarcoma crops of the extremities and whole chest CTs with one labelled lung "
        f"lesion each (label > 0), plus {len(NEGATIVES)} real lesion-free CTs (two whole trunks, an aorta crop, "
        "a chest/abdomen slab) with empty labels as negatives."
    )
    (args.out / "datalist.json").write_text(json.dumps(datalist, indent=2))


if __name__ == "__main__":
    main()
