"""`writers.write_all`: every output of a result written at once, all or nothing (a failure keeps the previous
outputs); each file's content is tested in test_writers_<module>.py."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import nrrd
import numpy as np
import pytest
import slicerio
from writer_inputs import SHAPE_KJI, hidden, make_volume, snapshot

from LesionDetectLib import writers
from LesionDetectLib.errors import OutputError
from LesionDetectLib.lesions import TABLE_COLUMNS
from LesionDetectLib.result import DetectionResult


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
