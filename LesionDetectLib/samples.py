"""Real sample volumes shipped inside the package (licensed for redistribution, credited)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_FOLDER = Path(__file__).parent / "sample_data"


@dataclass(frozen=True)
class Sample:
    case_id: str  # its id in the training data sets, so that a model trained on it can say so
    image: str
    reference: str
    description: str
    credit: str
    rule: str  # the lesion rule (``evaluation.RULES``) that scores detections against ``reference``
    model: str  # the shipped model made for this kind of scan (the demo's default)
    channels: dict[str, str] = field(default_factory=dict)  # other sequences of the same scan: {channel name: file}


DEMO_SAMPLE = "ct-sarcoma"  # the sample `lesiondetect demo` runs without --sample
SAMPLES = {
    "ms-flair": Sample(
        case_id="patient07",
        image="ms_flair.nrrd",
        reference="ms_flair_lesions.nrrd",
        description="real brain FLAIR and T1 MRI of a multiple-sclerosis patient (Ljubljana MS data set, patient 07; "
        "skull-stripped, in MNI space), cropped to the brain, 1 mm, with the multi-rater consensus lesion mask",
        credit="Lesjak et al., Neuroinformatics 2017, doi:10.1007/s12021-017-9348-7 (CC BY)",
        rule="ms",
        model="ms-flair-t1-lesions",
        channels={"T1": "ms_t1.nrrd"},
    ),
    "ct-sarcoma": Sample(
        case_id="STS_019",
        image="ct_sarcoma.nrrd",
        reference="ct_sarcoma_lesions.nrrd",
        description="real CT of a soft-tissue sarcoma of the extremities (TCIA Soft-tissue-Sarcoma, case STS_019 "
        "of the IBSI validation crops, 5 cm around the tumour, 0.98×0.98×3.27 mm), with the tumour outline",
        credit="Vallières et al., TCIA 2015, doi:10.7937/K9/TCIA.2015.7GO2GSKS; Phys Med Biol 2015, "
        "doi:10.1088/0031-9155/60/14/5471; Clark et al., J Digit Imaging 2013 (CC BY 3.0)",
        rule="ct-tumour",
        model="ct-tumours",
    ),
}


def sample_path(file_name: str) -> Path:
    return SAMPLE_FOLDER / file_name
