"""Output files: Slicer segmentation, point list, lesion table, probability map, surfaces — and atomicity."""

from __future__ import annotations

import csv
import errno
import json
import math
import os
from pathlib import Path

import nrrd
import numpy as np
import pytest
import slicerio
from conftest import oblique_direction

from LesionDetectLib import writers
from LesionDetectLib.errors import OutputError
from LesionDetectLib.lesions import TABLE_COLUMNS, Lesion
from LesionDetectLib.result import DetectionResult
from LesionDetectLib.volume import Volume, apply_affine
from LesionDetectLib.writers.atomic import atomic_output, check_writable

SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "schemas"
MARKUPS_SCHEMA = SCHEMAS / "markups-schema-v1.0.3.json"
SPACING = (0.7, 0.9, 2.5)
ORIGIN = (-31.25, 17.5, -102.0)
SHAPE_KJI = (16, 30, 34)
TERMINOLOGY = {
    "contextName": "Segmentation category and type - 3D Slicer General Anatomy list",
    "category": ["SCT", "49755003", "Morphologically Altered Structure"],
    "type": ["SCT", "52988006", "Lesion"],
    "anatomicContextName": "Anatomic codes - DICOM master list",
}


def make_volume() -> Volume:
    """Oblique and mirrored (det −1), anisotropic, off-origin grid."""
    direction = oblique_direction() @ np.diag([1.0, 1.0, -1.0])
    return Volume(np.zeros(SHAPE_KJI, np.float32), SPACING, ORIGIN, direction, name="case")


def make_lesion(lesion_id: int, mask: np.ndarray, volume: Volume, confidence: float, area=None) -> Lesion:
    """A lesion record computed from its voxels (centroid through ``volume.ijk_to_lps()``)."""
    k, j, i = np.nonzero(mask)
    ijk = np.stack([i, j, k], axis=1).astype(float)
    centroid_ijk = ijk.mean(axis=0)
    count = int(mask.sum())
    volume_mm3 = count * volume.voxel_volume_mm3
    return Lesion(
        id=lesion_id, confidence_max=confidence, confidence_mean=confidence - 0.05, voxel_count=count,
        volume_mm3=volume_mm3, centroid_ijk=tuple(float(v) for v in centroid_ijk),
        centroid_lps=tuple(float(v) for v in apply_affine(volume.ijk_to_lps(), centroid_ijk)),
        bbox_ijk_min=(int(i.min()), int(j.min()), int(k.min())), bbox_ijk_max=(int(i.max()), int(j.max()), int(k.max())),
        equivalent_diameter_mm=(6 * volume_mm3 / math.pi) ** (1 / 3), longest_axial_diameter_mm=7.25,
        surface_area_mm2=area, sphericity=None if area is None else 0.8123456789,
    )


def make_result(volume: Volume | None = None) -> DetectionResult:
    """Two lesions at known voxels: a ball (lesion 1) and a box (lesion 2)."""
    volume = volume or make_volume()
    kk, jj, ii = np.indices(SHAPE_KJI)
    ball = ((ii - 9) * SPACING[0]) ** 2 + ((jj - 11) * SPACING[1]) ** 2 + ((kk - 5) * SPACING[2]) ** 2 <= 4.5**2
    box = np.zeros(SHAPE_KJI, bool)
    box[9:12, 18:24, 22:28] = True
    label_map = np.zeros(SHAPE_KJI, np.uint16)
    label_map[ball], label_map[box] = 1, 2
    probability = np.random.default_rng(1).uniform(0, 0.3, SHAPE_KJI).astype(np.float32)
    probability[ball], probability[box] = 0.9, 0.7
    lesions = [make_lesion(1, ball, volume, 0.9, area=123.456789), make_lesion(2, box, volume, 0.7)]
    return DetectionResult(
        volume, lesions, label_map, probability, threshold=0.5, model_name="test-model",
        settings={"device": "cpu", "bundle": Path("/models/test"), "patch": (32, 32, 32)}, warnings=["a warning"],
    )


def physical_box(volume: Volume, lesion: Lesion) -> tuple[np.ndarray, np.ndarray]:
    """LPS axis-aligned box around the lesion's voxels (their outer faces, ±0.5 voxel)."""
    low, high = np.array(lesion.bbox_ijk_min) - 0.5, np.array(lesion.bbox_ijk_max) + 0.5
    corners = np.array([[a, b, c] for a in (low[0], high[0]) for b in (low[1], high[1]) for c in (low[2], high[2])])
    lps = apply_affine(volume.ijk_to_lps(), corners)
    return lps.min(axis=0), lps.max(axis=0)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".")]


@pytest.fixture
def result() -> DetectionResult:
    return make_result()


@pytest.fixture
def written(tmp_path, result) -> tuple[dict[str, Path], DetectionResult]:
    return result.write(tmp_path / "out", save_probability=True, surface_format="vtp"), result


def test_write_all_names_and_returns_every_output(written, tmp_path):
    paths, _ = written
    out = tmp_path / "out"
    assert paths == {
        "segmentation": out / "case.seg.nrrd", "points": out / "case.mrk.json",
        "table_csv": out / "case.lesions.csv", "table_json": out / "case.lesions.json",
        "probability": out / "case.probability.nrrd", "surfaces": out / "case.surfaces",
    }
    assert all(path.exists() for path in paths.values())
    assert hidden(out) == []
    assert (paths["points"].stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_segmentation_reads_back_with_slicerio(written):
    paths, result = written
    volume = result.volume
    segmentation = slicerio.read_segmentation(str(paths["segmentation"]))
    assert np.array_equal(segmentation["ijkToLPS"], volume.ijk_to_lps())  # exact, not approximately
    assert segmentation["masterRepresentation"] == "Binary labelmap"
    assert segmentation["containedRepresentationNames"] == ["Binary labelmap"]
    assert segmentation["referenceImageExtentOffset"] == [0, 0, 0]
    voxels = segmentation["voxels"]  # slicerio reads [i, j, k]
    assert voxels.dtype == np.uint8 and np.array_equal(voxels, result.label_map.transpose(2, 1, 0))
    size_i, size_j, size_k = volume.shape_ijk
    segments = segmentation["segments"]
    assert [s["name"] for s in segments] == ["Lesion 1", "Lesion 2"]
    for segment, lesion in zip(segments, result.lesions):
        assert segment["id"] == f"Lesion_{lesion.id}"
        assert segment["labelValue"] == lesion.id and segment["layer"] == 0
        assert segment["extent"] == [0, size_i - 1, 0, size_j - 1, 0, size_k - 1]  # see segmentation.py
        assert segment["terminology"] == TERMINOLOGY
        assert segment["status"] == "inprogress"
        assert segment["nameAutoGenerated"] is False and segment["colorAutoGenerated"] is False
        red, green, blue = segment["color"]
        assert red > 0.85 and red > green > blue  # red-orange
        assert int(slicerio.segment_mask(segmentation, lesion.name).sum()) == lesion.voxel_count
    assert segments[0]["color"] != segments[1]["color"]


def test_segmentation_header_geometry_with_pynrrd(written):
    paths, result = written
    volume = result.volume
    header = nrrd.read_header(str(paths["segmentation"]))
    assert header["space"] == "left-posterior-superior"
    assert header["type"] in ("uint8", "unsigned char") and header["encoding"] == "gzip"
    assert list(header["sizes"]) == list(volume.shape_ijk)
    expected_directions = (np.asarray(volume.direction) @ np.diag(volume.spacing)).T
    assert np.array_equal(header["space directions"], expected_directions)
    assert np.array_equal(header["space origin"], np.array(volume.origin))
    assert header["Segment0_Tags"] == (
        "Segmentation.Status:inprogress|TerminologyEntry:Segmentation category and type - 3D Slicer General Anatomy "
        "list~SCT^49755003^Morphologically Altered Structure~SCT^52988006^Lesion~^^~Anatomic codes - DICOM master "
        "list~^^~^^|"
    )
    assert "Segmentation_ConversionParameters" not in header


def test_segmentation_reads_in_itk_as_slicer_does(written):
    """Slicer reads .seg.nrrd through ITK's NRRD reader: geometry and the segment fields must come through."""
    import SimpleITK as sitk

    paths, result = written
    image = sitk.ReadImage(str(paths["segmentation"]))
    volume = Volume.from_sitk(image)
    assert volume.same_geometry(result.volume, tolerance=1e-12)
    assert np.array_equal(volume.array, result.label_map)
    assert image.GetMetaData("Segment1_Name") == "Lesion 2" and image.GetMetaData("Segment1_LabelValue") == "2"
    assert image.GetMetaData("Segmentation_MasterRepresentation") == "Binary labelmap"


def test_segmentation_uses_uint16_above_255_lesions(tmp_path):
    volume = Volume(np.zeros((4, 10, 10), np.float32), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    label_map = np.arange(1, 401, dtype=np.uint16).reshape(4, 10, 10)
    lesions = [make_lesion(n, label_map == n, volume, 0.9) for n in range(1, 401)]
    path = writers.write_segmentation(tmp_path / "many.seg.nrrd", volume, label_map, lesions)
    segmentation = slicerio.read_segmentation(str(path))
    assert segmentation["voxels"].dtype == np.uint16 and len(segmentation["segments"]) == 400
    assert segmentation["segments"][399]["labelValue"] == 400


def test_segmentation_rejects_labels_without_lesions(tmp_path, result):
    result.label_map[0, 0, 0] = 7
    with pytest.raises(ValueError, match="only 2 lesions"):
        writers.write_segmentation(tmp_path / "bad.seg.nrrd", result.volume, result.label_map, result.lesions)
    assert list(tmp_path.iterdir()) == []


needs_schema = pytest.mark.skipif(
    not MARKUPS_SCHEMA.is_file(), reason=f"Slicer markups schema {MARKUPS_SCHEMA} is absent (../shared/schemas)"
)


@needs_schema
@pytest.mark.parametrize("lesion_count", [2, 0])
def test_points_validate_against_slicer_schema(tmp_path, result, lesion_count):
    import jsonschema

    path = writers.write_points(tmp_path / "points.mrk.json", result.lesions[:lesion_count], result.volume.name)
    jsonschema.validate(json.loads(path.read_text()), json.loads(MARKUPS_SCHEMA.read_text()))


def test_points_sit_on_the_centroids_in_lps(written):
    paths, result = written
    document = json.loads(paths["points"].read_text())
    assert document["@schema"].endswith("/markups-schema-v1.0.3.json#")
    (markup,) = document["markups"]
    assert markup["type"] == "Fiducial" and markup["coordinateSystem"] == "LPS" and markup["coordinateUnits"] == "mm"
    assert markup["name"] == "case lesion points"
    points = markup["controlPoints"]
    assert [p["id"] for p in points] == ["1", "2"] and [p["label"] for p in points] == ["L1", "L2"]
    for point, lesion in zip(points, result.lesions):
        assert point["position"] == list(lesion.centroid_lps)
        assert np.allclose(np.array(point["position"]) * [-1, -1, 1], lesion.centroid_ras, atol=1e-12)
        assert point["description"] == lesion.description()
        assert point["positionStatus"] == "defined"
        # Slicer's reader accepts only floating-point literals in position and orientation vectors
        assert all(isinstance(v, float) for v in point["position"] + point["orientation"])
    # lesion 1's centroid is the centre of its ball: voxel (9, 11, 5)
    assert np.allclose(points[0]["position"], apply_affine(result.volume.ijk_to_lps(), [9, 11, 5]), atol=1e-9)


def test_table_csv_columns_and_values(written):
    paths, result = written
    with paths["table_csv"].open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == TABLE_COLUMNS
    assert len(rows) == 3
    for cells, lesion in zip(rows[1:], result.lesions):
        expected = lesion.as_row()
        for column, cell in zip(TABLE_COLUMNS, cells):
            value = expected[column]
            if value is None:
                assert cell == ""
            elif isinstance(value, str):
                assert cell == value
            elif isinstance(value, (int, np.integer)):
                assert cell == str(int(value))
            else:
                assert cell == repr(float(value))
    assert rows[1][TABLE_COLUMNS.index("surface_area_mm2")] == "123.4568"
    assert rows[2][TABLE_COLUMNS.index("sphericity")] == ""
    assert paths["table_csv"].read_bytes().count(b"\r") == 0


def test_table_json_content_and_byte_determinism(written, tmp_path):
    paths, result = written
    text = paths["table_json"].read_text(encoding="utf-8")
    document = json.loads(text)
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    volume = result.volume
    assert document["format"] == "lesiondetect.lesions" and document["version"] == 1
    assert document["input"] == {
        "name": "case", "shape_ijk": list(volume.shape_ijk), "spacing": list(SPACING), "origin_lps": list(ORIGIN),
        "direction_lps": np.asarray(volume.direction).tolist(),
    }
    assert document["model"] == "test-model" and document["threshold"] == 0.5
    assert document["settings"] == {"device": "cpu", "bundle": "/models/test", "patch": [32, 32, 32]}
    assert document["warnings"] == ["a warning"]
    assert [set(row) for row in document["lesions"]] == [set(TABLE_COLUMNS)] * 2
    for row, lesion in zip(document["lesions"], result.lesions):
        assert row == {key: (None if value is None else value) for key, value in lesion.as_row().items()}
    again = writers.write_table_json(tmp_path / "again.json", result.volume, result.lesions, model_name="test-model",
                                     threshold=0.5, settings=result.settings, warnings=result.warnings)
    assert again.read_bytes() == paths["table_json"].read_bytes()
    csv_again = writers.write_table_csv(tmp_path / "again.csv", result.lesions)
    assert csv_again.read_bytes() == paths["table_csv"].read_bytes()


def test_probability_map_on_the_input_grid(written):
    import SimpleITK as sitk

    paths, result = written
    image = sitk.ReadImage(str(paths["probability"]))
    volume = result.volume
    assert image.GetPixelID() == sitk.sitkFloat32
    assert np.allclose(image.GetSpacing(), volume.spacing, atol=1e-12)
    assert np.allclose(image.GetOrigin(), volume.origin, atol=1e-12)
    assert np.allclose(np.reshape(image.GetDirection(), (3, 3)), volume.direction, atol=1e-12)
    assert np.array_equal(sitk.GetArrayFromImage(image), result.probability)
    assert nrrd.read_header(str(paths["probability"]))["space"] == "left-posterior-superior"


def _read_mesh(path: Path):
    from vtkmodules.vtkIOGeometry import vtkSTLReader
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    reader = vtkXMLPolyDataReader() if path.suffix == ".vtp" else vtkSTLReader()
    reader.SetFileName(str(path))
    reader.Update()
    return reader, reader.GetOutput()


@pytest.mark.parametrize("fmt", ["vtp", "stl"])
def test_surfaces_lie_inside_each_lesion_box_in_lps(tmp_path, result, fmt):
    files = writers.write_surfaces(tmp_path / "surfaces", result.volume, result.label_map, result.lesions, fmt)
    assert [f.name for f in files] == [f"lesion_001.{fmt}", f"lesion_002.{fmt}"]
    for path, lesion in zip(files, result.lesions):
        reader, mesh = _read_mesh(path)
        assert mesh.GetNumberOfPoints() > 20
        if fmt == "vtp":
            assert mesh.GetFieldData().GetAbstractArray("SPACE").GetValue(0) == "LPS"
        else:
            assert "SPACE=LPS" in reader.GetHeader()
        low, high = physical_box(result.volume, lesion)
        bounds = np.array(mesh.GetBounds()).reshape(3, 2)
        assert np.all(bounds[:, 0] >= low - 0.05) and np.all(bounds[:, 1] <= high + 0.05)
        centre = bounds.mean(axis=1)
        assert np.linalg.norm(centre - np.array(lesion.centroid_lps)) < 1.0
    assert hidden(tmp_path) == []


def test_rewrite_without_optional_outputs_removes_stale_ones(written, tmp_path, result):
    paths, _ = written
    again = result.write(tmp_path / "out")
    assert set(again) == {"segmentation", "points", "table_csv", "table_json"}
    assert not paths["probability"].exists() and not paths["surfaces"].exists()
    assert hidden(tmp_path / "out") == []


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_in_the_middle_keeps_previous_outputs(written, tmp_path, result, monkeypatch, error):
    out = tmp_path / "out"
    before = snapshot(out)

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(writers, "write_table_json", failing)
    result.lesions = result.lesions[:1]  # a different result: nothing of it may show
    result.label_map[result.label_map == 2] = 0
    with pytest.raises(type(error)):
        result.write(out, save_probability=True, surface_format="vtp")
    assert snapshot(out) == before
    assert hidden(out) == []


def test_full_disk_is_an_output_error_and_keeps_previous_outputs(written, tmp_path, result, monkeypatch):
    out = tmp_path / "out"
    before = snapshot(out)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(nrrd, "write", full)
    with pytest.raises(OutputError) as caught:
        result.write(out, save_probability=True, surface_format="stl")
    assert str(caught.value) == f"cannot write {out / 'case.seg.nrrd'}: No space left on device"
    assert caught.value.exit_code == 5
    assert snapshot(out) == before and hidden(out) == []


def test_simpleitk_write_failure_is_an_output_error(tmp_path, result, monkeypatch):
    import SimpleITK as sitk

    def failing(*args, **kwargs):
        raise RuntimeError(
            "Exception thrown in SimpleITK ImageFileWriter_Execute: itkNrrdImageIO.cxx:1349:\n"
            'ITK ERROR: Write: Error writing x.nrrd:\n[nrrd] nrrdSave: couldn\'t fopen("x.nrrd","wb"): No space left on device\n'
        )

    monkeypatch.setattr(sitk, "WriteImage", failing)
    out = tmp_path / "out"
    with pytest.raises(OutputError) as caught:
        result.write(out, save_probability=True)
    assert str(caught.value) == f"cannot write {out / 'case.probability.nrrd'}: No space left on device"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("previous", [True, False])
def test_failure_while_publishing_restores_all_or_nothing(tmp_path, result, monkeypatch, previous):
    out = tmp_path / "out"
    if previous:
        result.write(out, save_probability=True, surface_format="vtp")
    before = snapshot(out) if previous else {}
    real_replace = os.replace
    target = out / "case.lesions.csv"

    def replace(source, destination):
        if Path(destination) == target:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError, match="case.lesions.csv"):
        result.write(out, save_probability=True, surface_format="stl")
    monkeypatch.undo()
    assert snapshot(out) == before
    assert hidden(out) == []
    if not previous:
        assert list(out.iterdir()) == []


def test_unwritable_folder_raises_output_error_naming_it(tmp_path, result):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    folder = blocker / "sub"  # cannot be created, even by root
    with pytest.raises(OutputError, match=str(folder)) as caught:
        check_writable(folder)
    assert caught.value.exit_code == 5 and "\n" not in str(caught.value)
    with pytest.raises(OutputError, match="file.txt"):
        result.write(folder)
    assert blocker.read_text() == "not a folder"


def test_atomic_output_is_private_until_published_and_cleaned_on_error(tmp_path):
    target = tmp_path / "table.csv"
    with atomic_output(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".table.csv.")
        assert temporary.suffix == ".csv" and (temporary.stat().st_mode & 0o777) == 0o600
        temporary.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new" and hidden(tmp_path) == []
    for error in (ValueError("bad"), KeyboardInterrupt()):
        with pytest.raises(type(error)), atomic_output(target) as temporary:
            temporary.write_text("half")
            raise error
        assert target.read_text() == "new" and hidden(tmp_path) == []


def test_zero_lesions_write_valid_empty_files(tmp_path):
    volume = make_volume()
    empty = DetectionResult(volume, [], np.zeros(SHAPE_KJI, np.uint16), np.zeros(SHAPE_KJI, np.float32), 0.5, "m")
    paths = empty.write(tmp_path / "out", save_probability=True, surface_format="stl")
    segmentation = slicerio.read_segmentation(str(paths["segmentation"]))
    assert segmentation["segments"] == []
    assert np.array_equal(segmentation["ijkToLPS"], volume.ijk_to_lps())
    assert segmentation["voxels"].shape == volume.shape_ijk and not segmentation["voxels"].any()
    assert not any(key.startswith("Segment0_") for key in nrrd.read_header(str(paths["segmentation"])))
    assert json.loads(paths["points"].read_text())["markups"][0]["controlPoints"] == []
    assert paths["table_csv"].read_text().splitlines() == [",".join(TABLE_COLUMNS)]
    assert json.loads(paths["table_json"].read_text())["lesions"] == []
    assert paths["surfaces"].is_dir() and list(paths["surfaces"].iterdir()) == []


def test_bad_arguments_are_rejected_before_writing(tmp_path, result):
    with pytest.raises(ValueError, match="surface format"):
        result.write(tmp_path / "out", surface_format="obj")
    with pytest.raises(ValueError, match="stem"):
        result.write(tmp_path / "out", stem="../escape")
    assert not (tmp_path / "out").exists()
