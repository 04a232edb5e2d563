"""DICOM Segmentation output (`LesionDetectLib.writers.dicom_seg`), read back with pydicom and highdicom: every
segment's frames on the right source slices (per-frame positions and referenced instances against the source
series), the segment codes, the referenced UIDs, and the patient identifiers it carries. On a generated oblique
series (files named out of slice order) and on the real CT series with an inserted lesion."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED_DATA, needs_shared_data, write_threshold_bundle
from dicom_series import IDENTIFIERS, NOT_REQUIRED, rotation, write_oblique_series

highdicom = pytest.importorskip("highdicom", reason="the DICOM SEG writer needs highdicom (pip install highdicom)")
pydicom = pytest.importorskip("pydicom")

from LesionDetectLib import cli  # noqa: E402
from LesionDetectLib.io import read_volume  # noqa: E402
from LesionDetectLib.lesions import from_probability  # noqa: E402
from LesionDetectLib.result import DetectionResult  # noqa: E402
from LesionDetectLib.writers.dicom_seg import DicomSegError, write_dicom_seg  # noqa: E402

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def write_seg(path, result: DetectionResult, folder, **options):
    """`write_dicom_seg` of ``result``'s lesions over the series in ``folder``."""
    return write_dicom_seg(path, result.volume, result.label_map, result.lesions, result.model_name, folder, **options)


def bright_lesions(volume, level):
    """The intensity stand-in model: every voxel above ``level`` is lesion."""
    probability = (np.asarray(volume.array) > level).astype(np.float32)
    lesions, labels = from_probability(probability, volume, 0.5)
    return DetectionResult(volume, lesions, labels, probability, 0.5, "intensity")


@pytest.fixture(scope="module")
def oblique(tmp_path_factory):
    k, j, i = np.mgrid[0:12, 0:40, 0:48]
    array = np.full((12, 40, 48), -900, np.int16)
    array[1:11, 4:36, 4:44] = 40
    array[(i - 14) ** 2 + (j - 12) ** 2 + ((k - 4) * 2.5) ** 2 <= 30] = 300  # lesion 1 (larger)
    array[(i - 34) ** 2 + (j - 28) ** 2 + ((k - 8) * 2.5) ** 2 <= 12] = 300  # lesion 2
    direction = rotation((1, 1, 0.3), 35) @ np.diag([1, -1, 1])
    folder = write_oblique_series(tmp_path_factory.mktemp("series") / "oblique", array, direction,
                                  (0.8, 0.9, 2.5), (-61.5, 20.25, 133.0))
    return folder, bright_lesions(read_volume(folder), 200)


def functional(seg, frame, keyword):
    """A functional group of one frame: its own, else the one all frames share."""
    groups = frame if keyword in frame else seg.SharedFunctionalGroupsSequence[0]
    return groups[keyword][0]


def check_segmentation(path, source_folder, result):
    """The SEG at ``path`` against its source series and the result it was written from."""
    sources = {dataset.SOPInstanceUID or dataset.file_meta.MediaStorageSOPInstanceUID: dataset for dataset in
               (pydicom.dcmread(file) for file in sorted(source_folder.iterdir()))}
    anyone = next(iter(sources.values()))
    seg = pydicom.dcmread(path)
    assert seg.SOPClassUID == SEGMENTATION_STORAGE and seg.Modality == "SEG"
    assert seg.StudyInstanceUID == anyone.StudyInstanceUID and seg.FrameOfReferenceUID == anyone.FrameOfReferenceUID
    assert seg.SeriesInstanceUID != anyone.SeriesInstanceUID
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == anyone.SeriesInstanceUID
    assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} <= set(sources)
    assert len(seg.SegmentSequence) == len(result.lesions)
    for number, (segment, lesion) in enumerate(zip(seg.SegmentSequence, result.lesions), start=1):
        assert segment.SegmentNumber == number and segment.SegmentLabel == lesion.name
        assert segment.TrackingID == lesion.label and segment.SegmentAlgorithmType == "AUTOMATIC"
        assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"

    volume = result.volume
    lps_to_ijk = np.linalg.inv(volume.ijk_to_lps())
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    seen = {lesion.id: 0 for lesion in result.lesions}
    for frame, pixels in zip(seg.PerFrameFunctionalGroupsSequence, frames):
        number = functional(seg, frame, "SegmentIdentificationSequence").ReferencedSegmentNumber
        uid = functional(seg, frame, "DerivationImageSequence").SourceImageSequence[0].ReferencedSOPInstanceUID
        position = np.asarray(functional(seg, frame, "PlanePositionSequence").ImagePositionPatient, float)
        np.testing.assert_allclose(position, np.asarray(sources[uid].ImagePositionPatient, float), atol=1e-3)
        k = int(round((lps_to_ijk @ np.append(position, 1.0))[2]))
        lesion_id = result.lesions[number - 1].id
        np.testing.assert_array_equal(pixels.astype(bool), np.asarray(result.label_map)[k] == lesion_id)
        seen[lesion_id] += int(pixels.sum())
    assert seen == {lesion.id: lesion.voxel_count for lesion in result.lesions}  # every voxel, on its slice

    read = highdicom.seg.segread(path)
    assert [description.segment_label for description in (read.get_segment_description(n)
            for n in read.segment_numbers)] == [lesion.name for lesion in result.lesions]
    assert read.get_source_image_uids()[0][1] == anyone.SeriesInstanceUID
    return seg


def test_oblique_series_gives_frames_on_the_source_slices(oblique, tmp_path):
    folder, result = oblique
    assert len(result.lesions) == 2 and not np.allclose(result.volume.direction, np.eye(3))
    path = write_seg(tmp_path / "oblique.seg.dcm", result, folder)
    seg = check_segmentation(path, folder, result)
    orientation = functional(seg, seg.PerFrameFunctionalGroupsSequence[0], "PlaneOrientationSequence").ImageOrientationPatient
    np.testing.assert_allclose(orientation, pydicom.dcmread(next(folder.iterdir())).ImageOrientationPatient,
                               atol=1e-6)


def test_only_the_chosen_lesions_are_written_renumbered(oblique, tmp_path):
    folder, result = oblique
    seg = pydicom.dcmread(write_seg(tmp_path / "second.seg.dcm", result, folder, lesion_ids={2}))
    assert [(s.SegmentNumber, s.SegmentLabel) for s in seg.SegmentSequence] == [(1, "Lesion 2")]
    assert int(seg.pixel_array.sum()) == result.lesions[1].voxel_count


def test_seg_carries_only_the_identifiers_dicom_requires(oblique, tmp_path):
    folder, result = oblique
    seg = pydicom.dcmread(write_seg(tmp_path / "identified.seg.dcm", result, folder))
    assert {keyword: str(seg.get(keyword, "")) for keyword in IDENTIFIERS} == IDENTIFIERS
    assert [keyword for keyword in NOT_REQUIRED if keyword in seg] == []
    data = (tmp_path / "identified.seg.dcm").read_bytes()
    assert [value for value in NOT_REQUIRED.values() if value.encode() in data] == []


def test_no_lesion_writes_no_seg(oblique, tmp_path):
    folder, result = oblique
    empty = DetectionResult(result.volume, [], np.zeros_like(result.label_map), result.probability, 0.5, "x")
    assert write_seg(tmp_path / "none.seg.dcm", empty, folder) is None
    assert write_seg(tmp_path / "none.seg.dcm", result, folder, lesion_ids=set()) is None
    assert list(tmp_path.iterdir()) == []


def test_a_series_that_is_not_the_volumes_grid_is_refused(oblique, tmp_path):
    folder, result = oblique
    shifted = DetectionResult(result.volume.__class__(
        result.volume.array, result.volume.spacing, tuple(np.add(result.volume.origin, (0, 0, 1.0))),
        result.volume.direction), result.lesions, result.label_map, result.probability, 0.5, "x")
    with pytest.raises(DicomSegError, match="not at a slice position"):
        write_seg(tmp_path / "shifted.seg.dcm", shifted, folder)
    assert list(tmp_path.iterdir()) == []


def with_inserted_lesion(source, folder):
    """The real series rewritten uncompressed with a 9 mm sphere of 3000 HU inserted in slices 6-14, and the study
    and series UIDs its anonymiser emptied (a SEG must reference them; the empty SOP class and instance UIDs are
    left for the writer to take from the file meta information)."""
    import SimpleITK as sitk
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    for file in sorted(source.iterdir()):
        dataset = pydicom.dcmread(file)
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
        hounsfield = sitk.GetArrayFromImage(sitk.ReadImage(str(file)))[0].astype(np.float64)
        z = float(dataset.ImagePositionPatient[2])
        row, column = np.mgrid[0:dataset.Rows, 0:dataset.Columns]
        spacing = float(dataset.PixelSpacing[0])
        inside = ((row - 300) * spacing) ** 2 + ((column - 256) * spacing) ** 2 + (z + 785.5) ** 2 <= 9.0**2
        hounsfield[inside] = 3000
        stored = np.round((hounsfield - float(dataset.RescaleIntercept)) / float(dataset.RescaleSlope))
        dataset.PixelData = stored.astype(np.uint16 if dataset.PixelRepresentation == 0 else np.int16).tobytes()
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.save_as(folder / file.name, enforce_file_format=True)
    return folder


@needs_shared_data
def test_a_series_without_the_uids_to_reference_is_refused(tmp_path):
    result = bright_lesions(read_volume(SHARED_DATA / "real-ct-dicom"), -500)
    with pytest.raises(DicomSegError, match="lacks StudyInstanceUID"):
        write_seg(tmp_path / "real.seg.dcm", result, SHARED_DATA / "real-ct-dicom")
    assert list(tmp_path.iterdir()) == []


@needs_shared_data
def test_real_ct_series_with_an_inserted_lesion(tmp_path):
    folder = with_inserted_lesion(SHARED_DATA / "real-ct-dicom", tmp_path / "real")
    result = bright_lesions(read_volume(folder), 2500)
    assert len(result.lesions) == 1 and result.lesions[0].volume_mm3 > 2000
    path = write_seg(tmp_path / "real.seg.dcm", result, folder)
    check_segmentation(path, folder, result)


def test_cli_writes_the_seg_for_a_dicom_input_and_says_when_there_is_none(oblique, tmp_path, isolated_models,
                                                                          capsys):
    """``detect --dicom-seg`` with a threshold model: a SEG beside the other outputs; for a lesion-free series
    none (an earlier one removed), said in one line; for an image file none either, also said."""
    folder, _ = oblique
    bundle = write_threshold_bundle(tmp_path / "bundle")
    out = tmp_path / "out"
    arguments = ["--model", str(bundle), "--device", "cpu", "--dicom-seg", "--progress", "none"]
    assert cli.main(["detect", str(folder), "-o", str(out), *arguments]) == 0
    seg = pydicom.dcmread(out / "oblique.seg.dcm")
    with open(out / "oblique.lesions.csv", encoding="utf-8") as file:
        assert len(seg.SegmentSequence) == len(file.read().splitlines()) - 1 == 2
    capsys.readouterr()

    normal = np.full((4, 16, 16), -900, np.int16)
    normal[:, 3:13, 3:13] = 40  # soft tissue only
    blank = write_oblique_series(tmp_path / "blank" / "oblique", normal, np.eye(3), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    assert cli.main(["detect", str(blank), "-o", str(out), *arguments, "--quiet"]) == 0
    assert not (out / "oblique.seg.dcm").exists()
    assert capsys.readouterr().err.splitlines() == [
        f"lesiondetect: warning: {blank}: no lesions, so no DICOM SEG was written (a DICOM Segmentation needs at "
        "least one segment)"]

    image = tmp_path / "image.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(normal), str(image))
    assert cli.main(["detect", str(image), "-o", str(out), *arguments, "--quiet"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"lesiondetect: warning: {image}: the input is not a DICOM series, so no DICOM SEG was written"]


def test_cli_writes_a_seg_of_the_accepted_lesions_of_a_reviewed_table(oblique, tmp_path, capsys):
    """``dicom-seg``: a label map with the table's ids, the reviewed table, the source files → the accepted lesions
    only, in table order, a reader-added one SEMIAUTOMATIC; no accepted lesion: no file and one line."""
    folder, result = oblique
    labelmap = tmp_path / "labels.nrrd"
    relabelled = np.select([result.label_map == 1, result.label_map == 2], [7, 3], 0).astype(np.uint8)
    sitk.WriteImage(result.volume.with_array(relabelled).to_sitk(), str(labelmap))
    table = tmp_path / "reviewed.lesions.csv"
    table.write_text("id,name,label,status,comment,origin\n7,Lesion 1,L1,rejected,,model\n"
                     "3,Lesion 2,L2,accepted,a comment,reader\n", encoding="utf-8")
    out = tmp_path / "reviewed.seg.dcm"
    files = [str(path) for path in sorted(folder.iterdir())]
    assert cli.main(["dicom-seg", str(labelmap), "--table", str(table), "--source", *files, "-o", str(out),
                     "--status", "accepted"]) == 0
    seg = pydicom.dcmread(out)
    assert [(s.SegmentLabel, s.TrackingID, s.SegmentAlgorithmType) for s in seg.SegmentSequence] == [
        ("Lesion 2", "L2", "SEMIAUTOMATIC")]
    assert int(seg.pixel_array.sum()) == result.lesions[1].voxel_count
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(files[0]).SeriesInstanceUID
    capsys.readouterr()
    assert cli.main(["dicom-seg", str(labelmap), "--table", str(table), "--source", str(folder), "-o",
                     str(tmp_path / "none.seg.dcm"), "--status", "unreviewed"]) == 0
    assert capsys.readouterr().err == f"lesiondetect: {table}: no lesion to write, so no DICOM SEG was written\n"
    assert not (tmp_path / "none.seg.dcm").exists()
