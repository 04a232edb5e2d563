"""The lesions as a DICOM Segmentation object (``<stem>.seg.dcm``) over the DICOM series they were found in.

Written with highdicom (pydicom underneath), so that the object is a valid Segmentation IOD without hand-written
DICOM: one binary segment per lesion, coded as the ``.seg.nrrd`` codes it (SCT 49755003 "Morphologically Altered
Structure" / SCT 52988006 "Lesion"), with frames referencing the source series' instances, so that Slicer's DICOM
module (QuantitativeReporting) and PACS viewers show it over the original images.

The label map is on the volume SimpleITK read from the series; each source instance is matched to its slice of
that grid from its own Image Position and Orientation (never by file order), and a series whose geometry differs
from the volume's is refused. From the source, highdicom copies what a Segmentation must carry for an archive to
file it (Patient and General Study modules: patient name, ID, birth date and sex, study UID, date, time, ID,
accession number, referring physician): this file is the one output that holds patient identifiers.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputImageError, LesionDetectError
from ..lesions import Lesion
from ..volume import Volume
from .atomic import atomic_output
from .segmentation import lesion_color

LESION_CATEGORY = ("49755003", "SCT", "Morphologically Altered Structure")
LESION_TYPE = ("52988006", "SCT", "Lesion")
"""The codes of `segmentation.TERMINOLOGY`, the ``.seg.nrrd``'s terminology entry."""
SERIES_NUMBER = 9001
SERIES_DESCRIPTION = "LesionDetect lesions"
POSITION_TOLERANCE_MM = 0.01
NOT_CARRIED = frozenset({
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "OperatorsName",
    "PerformingPhysicianName", "PhysiciansOfRecord", "OtherPatientIDs", "OtherPatientIDsSequence",
    "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers",
})
"""Identifying attributes that no module of the Segmentation requires; removed wherever highdicom copied them
(it describes the source's equipment, institution included, in the Contributing Equipment Sequence)."""


class DicomSegError(LesionDetectError):
    """The DICOM Segmentation could not be made (highdicom missing, or a series that does not fit the volume)."""


def _imports():
    try:
        import highdicom
        import pydicom
    except ImportError:
        raise DicomSegError("writing a DICOM Segmentation needs highdicom: pip install highdicom") from None
    return highdicom, pydicom


def read_source_series(folder: str | Path, series_uid: str | None = None) -> list:
    """The series' instances as pydicom datasets without pixel data (the series chosen as `io.read_volume` does)."""
    from ..dicom_folders import dicom_series

    series = dicom_series(Path(folder))
    if series_uid is None and len(series) == 1:
        series_uid = next(iter(series))
    if series_uid not in series:
        raise InputImageError(f"{folder}: no single DICOM series to reference; choose one with --series-uid")
    return read_source_files(series[series_uid], folder)


def read_source_files(files: Sequence[str | Path], where: str | Path) -> list:
    """The instances in ``files`` as pydicom datasets without pixel data; ``where`` names them in errors."""
    _, pydicom = _imports()
    try:
        datasets = [pydicom.dcmread(str(name), stop_before_pixels=True) for name in files]
    except (OSError, pydicom.errors.InvalidDicomError) as error:
        raise InputImageError(f"{where}: a source image cannot be read as DICOM: {error}") from None
    for dataset in datasets:
        _check_uids(dataset, where)
    return datasets


def _check_uids(dataset, folder) -> None:
    """The UIDs a Segmentation references; SOP class and instance UIDs may come from the file meta information
    (they are the same by definition); `DicomSegError` if any is missing."""
    meta = getattr(dataset, "file_meta", None)
    for keyword, fallback in (("SOPClassUID", "MediaStorageSOPClassUID"),
                              ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
        if not dataset.get(keyword) and meta is not None and meta.get(fallback):
            setattr(dataset, keyword, meta.get(fallback))
    missing = [keyword for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                                       "FrameOfReferenceUID") if not dataset.get(keyword)]
    if missing:
        raise DicomSegError(f"{folder}: the series lacks {', '.join(missing)}, which a DICOM Segmentation must "
                            "reference (an anonymiser may have removed them)")


def slice_order(volume, datasets: Sequence) -> list[int]:
    """For each slice k of ``volume``, the index of the dataset that is that slice; `DicomSegError` unless the
    series and the volume have the same grid (size, orientation, slice positions)."""
    size_i, size_j, size_k = volume.shape_ijk
    if len(datasets) != size_k:
        raise DicomSegError(f"the series has {len(datasets)} images, the volume {size_k} slices")
    matrix = volume.ijk_to_lps()
    row_axis, column_axis = matrix[:3, 0] / volume.spacing[0], matrix[:3, 1] / volume.spacing[1]
    order: dict[int, int] = {}
    for index, dataset in enumerate(datasets):
        orientation = np.asarray(dataset.ImageOrientationPatient, float)
        if (int(dataset.Columns), int(dataset.Rows)) != (size_i, size_j) or not (
                np.allclose(orientation[:3], row_axis, atol=1e-4) and np.allclose(orientation[3:], column_axis, atol=1e-4)):
            raise DicomSegError(f"image {index + 1} of the series does not lie on the volume's grid")
        ijk = np.linalg.solve(matrix[:3, :3], np.asarray(dataset.ImagePositionPatient, float) - matrix[:3, 3])
        k = int(round(ijk[2]))
        expected = matrix[:3, :3] @ np.array([0.0, 0.0, k]) + matrix[:3, 3]
        if not 0 <= k < size_k or k in order or np.linalg.norm(expected - np.asarray(
                dataset.ImagePositionPatient, float)) > POSITION_TOLERANCE_MM + 1e-3 * volume.spacing[2]:
            raise DicomSegError(f"image {index + 1} of the series is not at a slice position of the volume")
        order[k] = index
    return [order[k] for k in range(size_k)]


def segment_descriptions(lesions: Sequence, model_name: str, reader_added: Collection[int] = ()) -> list:
    """One description per lesion, numbered 1…n in the order given; a lesion in ``reader_added`` (ids) is
    SEMIAUTOMATIC (outlined by the model where the reader pointed), the others AUTOMATIC."""
    highdicom, pydicom = _imports()
    from pydicom.sr.codedict import codes

    from .. import __version__

    algorithm = highdicom.AlgorithmIdentificationSequence(
        name=f"LesionDetect {model_name}"[:64], family=codes.cid7162.ArtificialIntelligence, version=__version__)
    descriptions = []
    for number, lesion in enumerate(lesions, start=1):
        rgb = [int(round(255 * channel)) for channel in lesion_color(lesion.id)]
        descriptions.append(highdicom.seg.SegmentDescription(
            segment_number=number, segment_label=lesion.name,
            segmented_property_category=pydicom.sr.coding.Code(*LESION_CATEGORY),
            segmented_property_type=pydicom.sr.coding.Code(*LESION_TYPE),
            algorithm_type="SEMIAUTOMATIC" if lesion.id in reader_added else "AUTOMATIC",
            algorithm_identification=algorithm, tracking_id=lesion.label, tracking_uid=highdicom.UID(),
            display_color=highdicom.color.CIELabColor.from_rgb(*rgb),
        ))
    return descriptions


def _remove_not_carried(dataset) -> None:
    """Delete the `NOT_CARRIED` attributes from ``dataset`` and every item of its sequences."""
    for keyword in NOT_CARRIED & set(dataset.dir()):
        delattr(dataset, keyword)
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _remove_not_carried(item)


def write_dicom_seg(path: str | Path, volume: Volume, label_map: np.ndarray, lesions: Sequence[Lesion],
                    model_name: str, source_folder: str | Path, series_uid: str | None = None,
                    lesion_ids: Collection[int] | None = None, reader_added: Collection[int] = ()) -> Path | None:
    """Write the lesions (all, or those in ``lesion_ids``) of ``label_map`` as a DICOM Segmentation referencing the
    series in ``source_folder`` that ``volume`` was read from. Returns None, writing nothing, when there is no
    lesion to write: a Segmentation needs at least one segment."""
    lesions = [lesion for lesion in sorted(lesions, key=lambda lesion: lesion.id)
               if lesion_ids is None or lesion.id in lesion_ids]
    if not lesions:
        return None
    return write_segmentation_object(path, volume, label_map, lesions, read_source_series(source_folder, series_uid),
                                     model_name, reader_added)


def write_segmentation_object(path: str | Path, volume, label_map: np.ndarray, lesions: Sequence, datasets: Sequence,
                              model_name: str, reader_added: Collection[int] = ()) -> Path:
    """The DICOM Segmentation of ``lesions`` (objects with ``id``, ``name``, ``label``; ``id`` is the lesion's
    value in ``label_map``, on ``volume``'s grid) over the source instances ``datasets``."""
    highdicom, _ = _imports()
    from .. import __version__

    order = slice_order(volume, datasets)
    labels = np.asarray(label_map)
    numbered = np.zeros(labels.shape, np.uint8 if len(lesions) < 256 else np.uint16)
    for number, lesion in enumerate(lesions, start=1):
        numbered[labels == lesion.id] = number
    try:
        segmentation = highdicom.seg.Segmentation(
            source_images=[datasets[index] for index in order], pixel_array=numbered,  # frame k = slice k
            segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segment_descriptions(lesions, model_name, reader_added),
            series_instance_uid=highdicom.UID(), series_number=SERIES_NUMBER, sop_instance_uid=highdicom.UID(),
            instance_number=1, manufacturer="LesionDetect", manufacturer_model_name=model_name[:64],
            software_versions=__version__, device_serial_number="0", series_description=SERIES_DESCRIPTION,
            content_label="LESIONS", content_description="Lesions detected by LesionDetect",
        )
    except (ValueError, AttributeError, TypeError) as error:  # a source series highdicom cannot reference
        raise DicomSegError(f"the DICOM Segmentation could not be made: {error}") from error
    _remove_not_carried(segmentation)
    path = Path(path)
    with atomic_output(path) as temporary:
        segmentation.save_as(temporary)
    return path


def write_case_dicom_seg(source: str | Path, path: str | Path, volume: Volume, label_map: np.ndarray,
                         lesions: Sequence[Lesion], model_name: str, series_uid: str | None = None) -> str | None:
    """``detect --dicom-seg`` for one case: the SEG of every lesion at ``path`` when ``source`` is a DICOM series
    folder; else (no series, no lesion) no SEG, an earlier one at ``path`` removed, and the one-line reason."""
    path = Path(path)
    written = (write_dicom_seg(path, volume, label_map, lesions, model_name, source, series_uid)
               if Path(source).is_dir() and lesions else None)
    if written is not None:
        return None
    path.unlink(missing_ok=True)
    if not Path(source).is_dir():
        return "the input is not a DICOM series, so no DICOM SEG was written"
    return "no lesions, so no DICOM SEG was written (a DICOM Segmentation needs at least one segment)"
