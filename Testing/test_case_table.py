"""`lesiondetect detect cases.csv`: a case table names each case's sequences for a multi-channel model; outputs
lie on each case's first channel, --resume skips exactly the finished cases, and table mistakes stop the run
before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from channel_scans import CENTRE_LPS, FLAIR_DIRECTION, rotation, sphere
from conftest import write_threshold_bundle

from LesionDetectLib.case_table import read_case_table
from LesionDetectLib.cli import main
from LesionDetectLib.errors import InputImageError
from LesionDetectLib.io import read_volume


@pytest.fixture
def model(tmp_path) -> Path:
    return write_threshold_bundle(
        tmp_path / "two", name="two-channel", input_channels=["FLAIR", "T1"],
        network={"name": "IntensityThreshold", "kwargs": {"in_channels": 2, "out_channels": 1, "level": 0.75,
                                                          "scale": 40.0}})


def write(volume, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path))
    return str(path)


@pytest.fixture
def cases(tmp_path) -> Path:
    """Two patients' FLAIR and T1 (the T1 on other grids) in per-patient folders, all files named alike."""
    for patient, t1_direction in (("p1", np.eye(3)), ("p2", rotation(0, 25) @ rotation(1, -15))):
        write(sphere((36, 32, 24), (1.0, 1.2, 1.5), FLAIR_DIRECTION, name="flair"), tmp_path / patient / "flair.nii.gz")
        write(sphere((40, 40, 34), (0.9, 1.0, 1.1), t1_direction, name="t1"), tmp_path / patient / "t1.nii.gz")
    table = tmp_path / "cases.csv"
    table.write_text("case,FLAIR,t1\np1,p1/flair.nii.gz,p1/t1.nii.gz\n\np2,p2/flair.nii.gz,p2/t1.nii.gz\n")
    return table


def detect_table(table: Path, out: Path, model: Path, *extra: str) -> int:
    """`lesiondetect detect TABLE` in this process (the CT threshold model on files named like MR sequences)."""
    return main(["detect", str(table), "-o", str(out), "--model", str(model), "--device", "cpu", "--progress", "none",
                 "--quiet", "--force-modality", *extra])


def test_each_row_is_one_case_on_its_first_channels_grid_and_resume_is_exact(cases, model, tmp_path):
    out = tmp_path / "out"
    assert detect_table(cases, out, model) == 0
    for patient in ("p1", "p2"):
        label = read_volume(out / f"{patient}.seg.nrrd")
        assert label.same_geometry(read_volume(cases.parent / patient / "flair.nii.gz"))
        found = np.argwhere(label.array > 0)
        assert len(found) > 0
        centre_ijk = found.mean(axis=0)[::-1]
        centre_lps = label.ijk_to_lps()[:3, :3] @ centre_ijk + label.ijk_to_lps()[:3, 3]
        assert np.linalg.norm(centre_lps - CENTRE_LPS) < 1.5
    finished = (out / "p1.lesions.csv").stat().st_mtime_ns
    (out / "p2.lesions.csv").unlink()
    assert detect_table(cases, out, model, "--resume") == 0
    assert (out / "p1.lesions.csv").stat().st_mtime_ns == finished  # skipped
    assert (out / "p2.lesions.csv").is_file()  # redone


def test_a_column_that_is_not_a_model_channel_fails_that_case_by_name(cases, model, tmp_path, capsys):
    table = tmp_path / "wrong.csv"
    table.write_text(cases.read_text().replace(",t1", ",T2", 1))
    assert detect_table(table, tmp_path / "out", model) != 0
    error = capsys.readouterr().err
    assert "channel 'T2' is not an input of this model (its channels: FLAIR, T1)" in error
    assert not list((tmp_path / "out").glob("*.seg.nrrd"))


@pytest.mark.parametrize(("text", "message"), [
    ("", "the case table is empty"),
    ("FLAIR,T1\n", "no case rows below the header"),
    ("case\np1\n", "the header names no channel column"),
    ("FLAIR,flair\na.nii.gz,b.nii.gz\n", "column 'flair' appears twice"),
    ("FLAIR,,T1\na,b,c\n", "header column 2 has no name"),
    ("case,FLAIR,T1\np1,p1/flair.nii.gz,\n", "row 2 (case p1): no T1 path"),
    ("FLAIR,T1\np1/flair.nii.gz,p1/t1.nii.gz,extra\n", "row 2 has 3 cells for 2 columns"),
    ("FLAIR,T1\np1/flair.nii.gz,p1/t1.nii.gz\np2/flair.nii.gz,p2/t1.nii.gz\n",
     "rows 2 and 3 both write flair.* (give each a 'case' name)"),
    ("case,FLAIR,T1\na,p1/flair.nii.gz,p1/t1.nii.gz\nb,p1/flair.nii.gz,p2/t1.nii.gz\n",
     "rows 2 and 3 give the same FLAIR file"),
    ("case,FLAIR,T1\n../up,p1/flair.nii.gz,p1/t1.nii.gz\n", "the case name '../up' is not a plain file name"),
])
def test_table_mistakes_are_named_before_any_case_runs(text, message, tmp_path):
    table = tmp_path / "cases.csv"
    table.write_text(text)
    with pytest.raises(InputImageError, match="^" + str(table)) as caught:
        read_case_table(table)
    assert message in str(caught.value)


def test_a_table_goes_alone_and_its_problems_stop_the_run(cases, model, tmp_path, capsys):
    out = tmp_path / "out"
    assert detect_table(cases, out, model, "--channel", "T1=x.nii.gz") != 0
    assert "give it alone, without other inputs or --channel" in capsys.readouterr().err
    broken = tmp_path / "broken.csv"
    broken.write_text("case,FLAIR,T1\np1,p1/flair.nii.gz,\np2,p2/flair.nii.gz,p2/t1.nii.gz\n")
    assert detect_table(broken, out, model) != 0
    assert "row 2 (case p1): no T1 path" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_paths_are_relative_to_the_table_and_the_first_column_is_the_reference(cases):
    table = read_case_table(cases)
    assert [case.stem for case in table.cases] == ["p1", "p2"]
    assert table.cases[1].channels == (("FLAIR", cases.parent / "p2" / "flair.nii.gz"),
                                       ("t1", cases.parent / "p2" / "t1.nii.gz"))
    assert table.references() == [cases.parent / "p1" / "flair.nii.gz", cases.parent / "p2" / "flair.nii.gz"]
