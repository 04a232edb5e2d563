"""``lesiondetect evaluate`` end to end on files written here: NIfTI references, lesion tables, seg.nrrd masks."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LesionDetectLib.cli import evaluate as evaluate_cli
from LesionDetectLib.volume import LPS_TO_RAS, Volume, apply_affine

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SPACING, ORIGIN = (0.9, 1.1, 2.5), (-40.0, 25.0, 10.0)
SHAPE_KJI = (16, 40, 40)
# voxel boxes (i0, i1, j0, j1, k0, k1), inclusive-exclusive; 4*4*3 voxels * 2.475 mm³ = 118.8 mm³ each
L1, L2, L3 = (5, 9, 5, 9, 3, 6), (25, 29, 25, 29, 10, 13), (10, 14, 20, 24, 5, 8)
FP_BOX = (30, 32, 5, 7, 2, 4)  # 8 voxels of predicted mask with no reference lesion


def direction() -> np.ndarray:
    c, s = math.cos(math.radians(25)), math.sin(math.radians(25))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.0, -1.0, 1.0])


def grid(value_boxes=()) -> Volume:
    array = np.zeros(SHAPE_KJI, np.uint8)
    for (i0, i1, j0, j1, k0, k1), value in value_boxes:
        array[k0:k1, j0:j1, i0:i1] = value
    return Volume(array, SPACING, ORIGIN, direction())


def centre(box, shift=(0.0, 0.0, 0.0)) -> tuple[float, float, float]:
    i0, i1, j0, j1, k0, k1 = box
    ijk = np.array([(i0 + i1 - 1) / 2, (j0 + j1 - 1) / 2, (k0 + k1 - 1) / 2]) + shift
    return tuple(float(v) for v in apply_affine(grid().ijk_to_lps(), ijk))


def write_nifti(volume: Volume, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path))


def write_table(path: Path, rows) -> None:
    """A ``.lesions.csv`` with the columns the evaluator reads (plus a few others, as ``detect`` writes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "confidence_max", "centroid_l", "centroid_p", "centroid_s_lps", "volume_mm3"])
        for number, (point, confidence) in enumerate(rows, start=1):
            writer.writerow([number, f"Lesion {number}", confidence, *point, 10.0])


def write_seg(volume: Volume, path: Path, crop=None, ras: bool = False) -> None:
    """A 3-D labelmap seg.nrrd (optionally a crop of the grid, optionally in RAS space)."""
    nrrd = pytest.importorskip("nrrd")
    array = volume.array
    start = np.zeros(3)
    if crop is not None:
        i0, i1, j0, j1, k0, k1 = crop
        array, start = array[k0:k1, j0:j1, i0:i1], np.array([i0, j0, k0], dtype=float)
    matrix = volume.ijk_to_lps()
    axes, origin = matrix[:3, :3], apply_affine(matrix, start)
    space = "left-posterior-superior"
    if ras:
        axes, origin, space = LPS_TO_RAS @ axes, LPS_TO_RAS @ origin, "right-anterior-superior"
    header = {"space": space, "space directions": axes.T, "space origin": origin, "kinds": ["domain"] * 3,
              "Segment0_ID": "Segment_1", "Segment0_Name": "Lesion 1", "Segment0_LabelValue": "1"}
    nrrd.write(str(path), np.ascontiguousarray(array.transpose(2, 1, 0)), header)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """c1: lesions L1 (found, 0.9) and L2 (missed), FP 0.6; c2: L3 (found 0.8, duplicate 0.7), FP 0.3;
    c3: lesion-free, FP 0.5. Predicted masks: c1 = L1 (label 1) + FP box (label 2, cropped grid, RAS);
    c2 = L3; c3 = FP box (label 1)."""
    write_nifti(grid([(L1, 1), (L2, 1)]), tmp_path / "refs" / "c1.nii.gz")
    write_nifti(grid([(L3, 2)]), tmp_path / "refs" / "c2.nii.gz")
    pred = tmp_path / "pred"
    write_table(pred / "c1.lesions.csv", [(centre(L1), 0.9), (centre(FP_BOX), 0.6)])
    write_table(pred / "c2.lesions.csv", [(centre(L3), 0.8), (centre(L3, (1, 0, 0)), 0.7), (centre((35, 36, 35, 36, 14, 15)), 0.3)])
    write_table(pred / "c3.lesions.csv", [(centre(FP_BOX), 0.5)])
    write_seg(grid([(L1, 1), (FP_BOX, 2)]), pred / "c1.seg.nrrd", crop=(3, 34, 3, 31, 1, 15), ras=True)
    write_seg(grid([(L3, 1)]), pred / "c2.seg.nrrd")
    write_seg(grid([(FP_BOX, 1)]), pred / "c3.seg.nrrd")
    return tmp_path


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lesiondetect")
    evaluate_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evaluate", *argv])


def run_cli(*argv: str) -> int:
    return evaluate_cli.run(parse(*argv))


def test_end_to_end_hand_computed(study: Path, capsys):
    out = study / "out"
    code = run_cli("--pred", str(study / "pred"), "--ref", str(study / "refs"), "--lesion-free", "c3",
                   "--out", str(out), "--bootstrap", "200", "--seed", "3")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        "froc.csv", "froc.png", "per_case.csv", "per_lesion.csv", "summary.json"]  # no temporary files left
    assert (out / "froc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert "Rule glioma" in summary["criterion"] and "within 3 mm" in summary["criterion"]
    assert "Rule glioma" in captured.out
    counts, metrics = summary["counts"], summary["metrics"]
    # lesions L1, L2, L3 (118.8 mm³ each, counted); scores L1 0.9, L3 0.8, L2 missed.
    # FPs 0.6 (c1), 0.3 (c2), 0.5 (c3); 0.7 is a duplicate of L3.
    assert (counts["cases"], counts["cases_without_lesions"], counts["reference_lesions"]) == (3, 1, 3)
    assert (counts["tp"], counts["fn"], counts["fp"], counts["duplicates"]) == (2, 1, 3, 1)
    assert metrics["sensitivity"]["value"] == pytest.approx(2 / 3)
    assert metrics["precision"]["value"] == pytest.approx(2 / 5)
    assert metrics["f1"]["value"] == pytest.approx(2 * 2 / (2 * 2 + 3 + 1))
    assert metrics["fp_per_case"]["value"] == pytest.approx(1.0)
    # FROC: 0.9 -> (1/3, 0), 0.8 -> (2/3, 0), then only FPs: the sensitivity stays 2/3 at every target rate
    assert metrics["cpm"]["value"] == pytest.approx(2 / 3)
    # Dice: c1 = 2*48 / (56 + 96) (L1 found, L2 missed, 8 FP voxels); c2 = 1; c3 = 0 (8 FP voxels, empty reference)
    assert metrics["dice"]["value"] == pytest.approx((96 / 152 + 1 + 0) / 3)
    low, high = metrics["sensitivity"]["ci95"]
    assert low <= 2 / 3 <= high
    froc = list(csv.DictReader((out / "froc.csv").open()))
    assert [row["threshold"] for row in froc] == ["inf", "0.9", "0.8", "0.6", "0.5", "0.3"]
    assert [int(row["false_positives"]) for row in froc] == [0, 0, 0, 1, 2, 3]
    per_case = {row["case"]: row for row in csv.DictReader((out / "per_case.csv").open())}
    assert per_case["c1"]["reference_lesions"] == "2" and per_case["c3"]["fp"] == "1"
    assert float(per_case["c1"]["reference_volume_mm3"]) == pytest.approx(2 * 48 * 0.9 * 1.1 * 2.5)
    rows = list(csv.DictReader((out / "per_lesion.csv").open()))
    references = [(r["case"], r["status"]) for r in rows if r["kind"] == "reference"]
    assert sorted(references) == [("c1", "fn"), ("c1", "tp"), ("c2", "tp")]
    statuses = sorted((r["case"], r["confidence"], r["status"]) for r in rows if r["kind"] == "prediction")
    assert statuses == [("c1", "0.6", "fp"), ("c1", "0.9", "tp"), ("c2", "0.3", "fp"), ("c2", "0.7", "duplicate"),
                        ("c2", "0.8", "tp"), ("c3", "0.5", "fp")]


def test_threshold_drops_low_confidence_lesions_from_counts_and_dice(study: Path, capsys):
    code = run_cli("--pred", str(study / "pred"), "--ref", str(study / "refs"), "--lesion-free", "c3",
                   "--threshold", "0.65", "--bootstrap", "0", "--json")
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["counts"]["tp"], summary["counts"]["fp"]) == (2, 0)
    # Dice without the FP lesions (ids below 0.65 removed from the label maps): c1 = 96/144, c2 = 1, c3 = 1 (both empty)
    assert summary["metrics"]["dice"]["value"] == pytest.approx((96 / 144 + 1 + 1) / 3)
    assert summary["metrics"]["cpm"]["value"] == pytest.approx(2 / 3)  # the FROC always uses every prediction


def test_rule_flags_are_applied(study: Path, capsys):
    code = run_cli("--pred", str(study / "pred"), "--ref", str(study / "refs"), "--rule", "ms",
                   "--min-volume-mm3", "200", "--bootstrap", "0", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["rule"] == {"name": "ms (modified)", "merge_distance_mm": 0.0, "min_volume_mm3": 200.0,
                               "hit_distance_mm": 3.0}
    # every lesion (118.8 mm³) is ignored: hits on them count neither way, sensitivity is undefined
    assert summary["counts"]["reference_lesions"] == 0 and summary["counts"]["ignored_lesions"] == 3
    assert summary["counts"]["fp"] == 2 and summary["counts"]["ignored_predictions"] == 3
    assert summary["metrics"]["sensitivity"]["value"] is None


def test_datalist_reference_with_filter(study: Path, capsys):
    cases = study / "data"
    for name in ("c1", "c2"):
        (cases / name).mkdir(parents=True)
        shutil.copy(study / "refs" / f"{name}.nii.gz", cases / name / "label.nii.gz")
    datalist = {"training": [{"image": "c1/flair.nii.gz", "label": "c1/label.nii.gz", "lesion_type": "glioma"}],
                "validation": [{"image": "c2/flair.nii.gz", "label": "c2/label.nii.gz", "lesion_type": "ms"}]}
    (cases / "dataset.json").write_text(json.dumps(datalist))
    code = run_cli("--pred", str(study / "pred"), "--ref", str(cases / "dataset.json"), "--bootstrap", "0", "--json")
    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out)["counts"]["reference_lesions"] == 3
    assert "c3" in captured.err  # the unused prediction is reported
    code = run_cli("--pred", str(study / "pred"), "--ref", str(cases / "dataset.json"), "--filter",
                   "lesion_type=ms", "--bootstrap", "0", "--json")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["counts"]["cases"] == 1 and summary["counts"]["tp"] == 1


def test_luna16_csv_reference(study: Path, capsys):
    table = study / "nodules.csv"
    table.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n"
                     "c1,{},{},{},6.0\n".format(*centre(L1)) + "c1,{},{},{},4.0\n".format(*centre(L2)))
    code = run_cli("--pred", str(study / "pred"), "--ref", str(table), "--lesion-free", "c2", "c3",
                   "--bootstrap", "0", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["rule"]["name"] == "luna16" and "inside the sphere" in summary["criterion"]
    # c1: L1 hit (0.9), L2 missed, FP 0.6; c2 lesion-free: 0.8, 0.7, 0.3 are FPs; c3: 0.5 FP
    assert (summary["counts"]["tp"], summary["counts"]["fn"], summary["counts"]["fp"]) == (1, 1, 5)
    assert summary["metrics"]["dice"]["value"] is None


def test_missing_predictions_are_a_dataset_error(study: Path, capsys):
    write_nifti(grid([(L1, 1)]), study / "refs" / "c4.nii.gz")
    code = run_cli("--pred", str(study / "pred"), "--ref", str(study / "refs"), "--bootstrap", "0")
    captured = capsys.readouterr()
    assert code == 6
    assert captured.err.startswith("lesiondetect: error:") and "c4" in captured.err
    code = run_cli("--pred", str(study / "pred"), "--ref", str(study / "refs"), "--bootstrap", "0",
                   "--allow-missing", "--json")
    captured = capsys.readouterr()
    assert code == 0 and "c4" in captured.err
    assert json.loads(captured.out)["counts"]["fn"] == 2  # L2 of c1 and L1 of c4


def test_usage_errors():
    with pytest.raises(SystemExit) as raised:
        parse("--pred", "p", "--ref", "r", "--hit-mm", "-1")
    assert raised.value.code == 2
    assert run_cli("--pred", "/nonexistent/pred", "--ref", "/nonexistent/ref") == 6


@pytest.mark.skipif(not (REPO / "LesionDetectLib" / "__main__.py").exists(),
                    reason="LesionDetectLib/__main__.py does not exist yet")
def test_python_dash_m_evaluate(study: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "LesionDetectLib", "evaluate", "--pred", str(study / "pred"), "--ref",
         str(study / "refs"), "--lesion-free", "c3", "--out", str(study / "out"), "--bootstrap", "50"],
        capture_output=True, text=True, encoding="utf-8", env=env, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((study / "out" / "summary.json").read_text())["counts"]["tp"] == 2


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "ms-lesion-mri" / "patient07" / "label.nii.gz").exists(),
                    reason="../shared/data/ms-lesion-mri/patient07 is absent (real data is not in this checkout)")
def test_real_ms_reference_against_itself(tmp_path: Path, capsys):
    from LesionDetectLib.evaluation import reference_lesions, resolve_rule
    from LesionDetectLib.io import read_mask

    label = SHARED / "ms-lesion-mri" / "patient07" / "label.nii.gz"
    (tmp_path / "refs").mkdir()
    shutil.copy(label, tmp_path / "refs" / "patient07.nii.gz")
    mask = read_mask(label)
    lesions = reference_lesions(mask, resolve_rule("ms")).lesions
    write_table(tmp_path / "pred" / "patient07.lesions.csv", [(lesion.centroid_lps, 1.0) for lesion in lesions])
    write_seg(mask, tmp_path / "pred" / "patient07.seg.nrrd")
    code = run_cli("--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "refs"), "--rule", "ms",
                   "--bootstrap", "100", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["counts"]["reference_lesions"] > 10
    assert summary["metrics"]["sensitivity"]["value"] == 1.0
    assert summary["counts"]["fp"] == 0
    assert summary["metrics"]["dice"]["value"] == 1.0
