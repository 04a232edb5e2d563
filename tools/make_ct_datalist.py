"""Build the CT training datalist: the 45 sarcoma crops plus the real lesion-free CTs as negatives.

    python tools/make_ct_datalist.py ../shared/data OUT

OUT receives ``datalist.json`` (MONAI datalist with ``case``, ``source`` and ``lesion_type`` per case), a link
``ct-soft-tissue-sarcoma`` to the crops, and ``negatives/<case>/{image,label}.nii.gz``: each lesion-free CT
(the DICOM series read with LesionDetect's own reader) with an all-zero label on its exact grid. Train on it
with ``--allow-empty-labels``; ``lesion_type`` "none" lets ``tools/crossvalidate.py --lesion-free none=ct-tumour``
count their false positives per whole scan.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LesionDetectLib.io import read_volume

NEGATIVES = {  # case id -> path under the shared data folder (README there: TotalSegmentator test data, Apache-2.0)
    "torso-ct-3mm": "real-ct-nifti/ct_3mm.nii.gz",
    "aorta-ct-crop": "real-ct-nifti/ct_1p5mm_crop.nii.gz",
    "chest-abdomen-ct-dicom": "real-ct-dicom",
}
SARCOMA = "ct-soft-tissue-sarcoma"


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
    link = args.out / SARCOMA
    if not link.exists():
        link.symlink_to((args.shared_data / SARCOMA).resolve())
    datalist = json.loads((args.shared_data / f"{SARCOMA}.json").read_text())
    for case, source in NEGATIVES.items():
        write_negative(args.shared_data / source, args.out / "negatives" / case)
        datalist["training"].append({
            "image": f"negatives/{case}/image.nii.gz", "label": f"negatives/{case}/label.nii.gz", "case": case,
            "source": "TotalSegmentator test data (lesion-free)", "lesion_type": "none", "lesions": 0,
        })
    datalist["numTraining"] = len(datalist["training"])
    datalist["description"] += (f" Plus {len(NEGATIVES)} real lesion-free CTs (whole torso, aorta crop, "
                                 "chest/abdomen slab) as negatives.")
    (args.out / "datalist.json").write_text(json.dumps(datalist, indent=2))


if __name__ == "__main__":
    main()
