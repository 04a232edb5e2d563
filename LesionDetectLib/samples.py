"""Real sample volumes shipped inside the package (licensed for redistribution, credited)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SAMPLE_FOLDER = Path(__file__).parent / "sample_data"


@dataclass(frozen=True)
class Sample:
    image: str
    reference: str
    description: str
    credit: str


SAMPLES = {
    "ms-flair": Sample(
        image="ms_flair.nrrd",
        reference="ms_flair_lesions.nrrd",
        description="real brain FLAIR MRI of a multiple-sclerosis patient (Ljubljana MS data set, patient 07), "
        "cropped to the brain, 1 mm, with the multi-rater consensus lesion mask",
        credit="Lesjak et al., Neuroinformatics 2017, doi:10.1007/s12021-017-9348-7 (CC BY)",
    ),
}


def sample_path(file_name: str) -> Path:
    return SAMPLE_FOLDER / file_name
