"""The module's Sample Data: the sample scans shipped with the library, each with its published checksum; a scan of
several sequences loads them all with one click."""

from __future__ import annotations

import os
import pathlib

from . import library

# (sample name in Sample Data, its (file in LesionDetectLib/sample_data, node name) pairs): one click loads every
# sequence of the scan, the main input first; a channel's node name contains the channel's (the panel fills by name)
SAMPLES = (
    ("LesionDetect MS FLAIR + T1", (("ms_flair.nrrd", "MSFLAIR"), ("ms_t1.nrrd", "MST1"))),
    ("LesionDetect sarcoma CT", (("ct_sarcoma.nrrd", "SarcomaCT"),)),
)


def registerSampleData() -> None:
    """Add the sample volumes shipped with the library to the Sample Data module, with their published checksums."""
    import SampleData

    folder = os.path.join(library.libraryFolder(), "sample_data")
    for sampleName, files in SAMPLES:
        fileNames = [fileName for fileName, _ in files]
        if all(os.path.isfile(os.path.join(folder, fileName)) for fileName in fileNames):
            SampleData.SampleDataLogic.registerCustomSampleDataSource(
                category="LesionDetect", sampleName=sampleName,
                thumbnailFileName=os.path.join(library.MODULE_FOLDER, "Resources", "Icons", "LesionDetect.png"),
                uris=[pathlib.Path(folder, fileName).as_uri() for fileName in fileNames],
                fileNames=[f"LesionDetect_{fileName}" for fileName in fileNames],
                nodeNames=[nodeName for _, nodeName in files],
                checksums=[expectedChecksum(folder, fileName) for fileName in fileNames], loadFileType="VolumeFile",
            )


def expectedChecksum(folder: str, fileName: str) -> str | None:
    """``SHA256:<hex>`` for ``fileName`` from the ``SHA256SUMS`` file published with it, or None if it has none.
    The checksum is read, never computed here: computed from the file it is meant to verify, it would prove nothing."""
    try:
        with open(os.path.join(folder, "SHA256SUMS"), encoding="utf-8") as sums:
            for digest, _, name in (line.strip().partition(" ") for line in sums):
                if name.strip().lstrip("*") == fileName and len(digest) == 64:
                    return f"SHA256:{digest.lower()}"
    except OSError:
        pass
    return None
