"""Follow-up comparison on a synthetic head: known motion recovered, exactly the known changes reported, outputs.

The prior and current scans lie on different oblique, anisotropic grids with non-zero origins, and the patient
moved by a known rigid motion (6°, 9.5 mm) between them (`change_phantom`).
"""

from __future__ import annotations

import json
from dataclasses import replace

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from change_phantom import (
    CURRENT_LESIONS,
    GROWING,
    NEW,
    PRIOR_LESIONS,
    RESOLVED,
    SHRINKING,
    STABLE_A,
    STABLE_B,
    Sphere,
    rigid,
    rotation,
    scan,
    scanner_point,
)
from conftest import oblique_direction

from LesionDetectLib.compare import ChangeRules, QualityLimits, compare, from_labels, read_results, register
from LesionDetectLib.compare import output as compare_output
from LesionDetectLib.compare.changes import find_changes
from LesionDetectLib.compare.registration import check
from LesionDetectLib.errors import ComparisonError
from LesionDetectLib.volume import lps_to_ras

MOTION = rigid((1.0, 1.0, 2.0), 6.0, (5.0, -7.0, 4.0))  # patient at the prior scan → at the current scan
CURRENT_GRID = dict(spacing=(2.0, 1.7, 2.6), direction=oblique_direction())
PRIOR_GRID = dict(spacing=(1.8, 2.2, 2.0), direction=rotation((0.0, 1.0, 0.0), 25.0) @ np.diag([1.0, -1.0, 1.0]))
EXPECTED = {  # lesion → (class, index in the prior's lesions, index in the current's)
    "stable A": ("stable", STABLE_A, STABLE_A),
    "stable B": ("stable", STABLE_B, STABLE_B),
    "growing": ("enlarging", GROWING[0], GROWING[1]),
    "shrinking": ("shrinking", SHRINKING[0], SHRINKING[1]),
    "resolved": ("resolved", RESOLVED, None),
    "new": ("new", None, NEW),
}


@pytest.fixture(scope="module")
def scans():
    current = scan(CURRENT_LESIONS, MOTION, name="current", **CURRENT_GRID)
    prior = scan(PRIOR_LESIONS, np.eye(4), name="prior", **PRIOR_GRID)
    return prior, current


@pytest.fixture(scope="module")
def comparison(scans):
    (prior, prior_mask), (current, current_mask) = scans
    return compare(prior, current, prior_lesions=prior_mask, current_lesions=current_mask)


def _lesion_at(result, centre_lps, volume):
    """The id of the lesion whose label covers the voxel nearest ``centre_lps``."""
    ijk = np.rint(np.linalg.solve(volume.ijk_to_lps()[:3, :3], np.asarray(centre_lps) - volume.origin)).astype(int)
    return int(result.label_map[ijk[2], ijk[1], ijk[0]])


def test_grids_differ_and_are_oblique(scans):
    (prior, _), (current, _) = scans
    assert not prior.same_geometry(current)
    for volume in (prior, current):
        assert not np.allclose(volume.direction, np.diag(np.sign(np.diag(volume.direction))))
        assert len(set(volume.spacing)) == 3 and np.linalg.norm(volume.origin) > 10


def test_registration_recovers_the_known_motion_within_a_millimetre_at_every_lesion(comparison):
    registration = comparison.registration
    for sphere in CURRENT_LESIONS + PRIOR_LESIONS:
        found = registration.current_to_prior(scanner_point(MOTION, sphere.centre)[None])[0]
        assert np.linalg.norm(found - sphere.centre) < 1.0, sphere
    assert registration.quality["rotation_deg"] == pytest.approx(6.0, abs=1.0)
    assert registration.quality["correlation"] > 0.9 and registration.quality["inside_fraction"] == 1.0


def test_exactly_the_known_changes_are_reported(comparison):
    prior, current = comparison.prior, comparison.current
    assert len(comparison.changes) == len(EXPECTED)
    for name, (expected, before, after) in EXPECTED.items():
        prior_ids = () if before is None else (_lesion_at(prior.result, before.centre, prior.volume),)
        current_ids = () if after is None else (
            _lesion_at(current.result, scanner_point(MOTION, after.centre), current.volume),)
        found = [change for change in comparison.changes if (change.prior_ids, change.current_ids) == (prior_ids, current_ids)]
        assert len(found) == 1 and found[0].change == expected, (name, found, comparison.changes)
    summary = comparison.summary()
    assert summary["counts"] == {"new": 1, "enlarging": 1, "stable": 2, "shrinking": 1, "resolved": 1, "outside": 0}
    assert summary["new_or_enlarging"] == 2
    assert summary["prior_total_volume_mm3"] == pytest.approx(sum(lesion.volume_mm3 for lesion in prior.result.lesions))


def test_volumes_diameters_and_centroids_of_the_changes(comparison):
    by_class = {change.change: change for change in comparison.changes}
    growing = by_class["enlarging"]
    ratio = (GROWING[1].radius / GROWING[0].radius) ** 3
    assert growing.current_volume_mm3 / growing.prior_volume_mm3 == pytest.approx(ratio, rel=0.15)
    assert growing.current_diameter_mm > growing.prior_diameter_mm
    resolved = by_class["resolved"]
    assert resolved.current_volume_mm3 == 0 and resolved.volume_change_percent == -100.0
    assert np.linalg.norm(np.asarray(resolved.centroid_lps) - scanner_point(MOTION, RESOLVED.centre)) < 1.5
    new = by_class["new"]
    assert new.prior_volume_mm3 == 0 and new.volume_change_percent is None and new.overlap_dice is None
    assert np.linalg.norm(np.asarray(new.centroid_lps) - scanner_point(MOTION, NEW.centre)) < 1.5
    assert by_class["stable"].overlap_dice > 0.6


def test_classification_rule_and_its_limits():
    rules = ChangeRules(enlarge_fraction=0.5, min_change_mm3=14.0)
    assert rules.classify(100.0, 150.0) == "enlarging" and rules.classify(100.0, 149.0) == "stable"
    assert rules.classify(150.0, 100.0) == "shrinking" and rules.classify(149.0, 100.0) == "stable"
    assert rules.classify(10.0, 20.0) == "stable"  # +100 % but only 10 mm³: smaller than a 3 mm lesion
    assert ChangeRules().min_change_mm3 == pytest.approx(np.pi / 6 * 27)


def test_a_stricter_rule_turns_the_growth_stable(comparison):
    strict = find_changes(comparison.prior, comparison.current, comparison.registration, ChangeRules(enlarge_fraction=2.0))
    classes = sorted(change.change for change in strict)
    assert classes == ["new", "resolved", "stable", "stable", "stable", "stable"]  # ×2.6 and ×0.34 are within ×3


def test_uncertain_changes_say_why(comparison):
    # a new lesion right beside a prior one: the prior lesion is 1.5 mm away, so it may be the same one moved
    beside = Sphere((STABLE_A.offset[0] + STABLE_A.radius + 4.5, *STABLE_A.offset[1:]), 3.0)
    image, mask = scan(CURRENT_LESIONS + (beside,), MOTION, name="current", **CURRENT_GRID)
    found = find_changes(comparison.prior, from_labels(image, mask), comparison.registration, comparison.rules)
    new = [change for change in found if change.change == "new"]
    near = [change for change in new if any("prior lesion lies" in note for note in change.notes)]
    assert len(new) == 2 and len(near) == 1 and near[0].certainty == "low"
    far = next(change for change in new if change is not near[0])
    assert far.certainty == "high" and not far.notes


def test_probability_near_the_threshold_makes_a_new_lesion_uncertain(comparison):
    prior = comparison.prior
    almost = np.zeros(prior.volume.array.shape, np.float32)
    spot = _lesion_at(comparison.current.result, scanner_point(MOTION, NEW.centre), comparison.current.volume)
    assert spot > 0
    centre = np.linalg.solve(prior.volume.ijk_to_lps()[:3, :3], NEW.centre - prior.volume.origin)
    k, j, i = np.rint(centre[::-1]).astype(int)
    almost[k - 1 : k + 2, j - 1 : j + 2, i - 1 : i + 2] = 0.42  # below the 0.5 threshold, within its 0.2 margin
    hinted = replace(prior, probability=almost)
    changes = find_changes(hinted, comparison.current, comparison.registration, comparison.rules)
    new = next(change for change in changes if change.change == "new")
    assert new.certainty == "low" and any("probability reaches 0.42" in note for note in new.notes)


def test_another_patient_is_refused(scans):
    (prior, _), _ = scans
    other, _ = scan((Sphere((3.0, 8.0, -5.0), 4.0),), MOTION, patient=1, name="other", **CURRENT_GRID)
    registration = register(prior, other, check_quality=False)
    assert registration.quality["correlation"] < 0.6 and registration.quality["inside_fraction"] == 1.0
    with pytest.raises(ComparisonError, match="another patient"):
        check(registration, QualityLimits())
    check(registration, QualityLimits(min_correlation=0.5, min_mask_dice=0.5))  # the limits can be lowered


def test_another_body_region_is_refused(scans):
    _, (current, _) = scans
    slab, _ = scan(PRIOR_LESIONS, np.eye(4), field_of_view=0.3, name="slab", **PRIOR_GRID)
    with pytest.raises(ComparisonError, match="another body region"):
        register(slab, current)


def test_no_registration_trusts_the_scanner_coordinates(scans):
    (prior, prior_mask), _ = scans
    still, still_mask = scan(CURRENT_LESIONS, np.eye(4), name="current", **CURRENT_GRID)
    found = compare(prior, still, prior_lesions=prior_mask, current_lesions=still_mask, registration="none")
    assert np.allclose(found.registration.matrix_lps, np.eye(4))
    assert found.summary()["counts"]["stable"] == 2
    with pytest.raises(ComparisonError, match="with the scanner coordinates as they are"):
        compare(prior, scans[1][0], prior_lesions=prior_mask, current_lesions=scans[1][1], registration="none",
                limits=QualityLimits(min_correlation=0.95))


def test_different_settings_are_refused_or_flagged(scans, comparison):
    (prior, _), (current, _) = scans
    detected = replace(comparison.current.result, settings={**comparison.current.result.settings,
                                                            "model": "some-model", "threshold": 0.4})
    with pytest.raises(ComparisonError, match="different settings"):
        compare(comparison.prior.result, detected)
    flagged = compare(comparison.prior.result, detected, allow_different_settings=True)
    assert any("model" in warning for warning in flagged.warnings)
    assert any("threshold" in warning for warning in flagged.warnings)


def test_different_modalities_are_refused(comparison):
    ct = replace(comparison.current.result, volume=replace(comparison.current.volume, modality="CT"))
    with pytest.raises(ComparisonError, match="compare like with like"):
        compare(comparison.prior.result, ct)


def test_transform_file_and_slicer_matrix_align_the_prior_with_the_current(comparison, tmp_path):
    registration = comparison.registration
    comparison.write(tmp_path)
    transform = sitk.ReadTransform(str(tmp_path / "prior_to_current.tfm"))
    point = scanner_point(MOTION, STABLE_A.centre)
    assert np.allclose(transform.TransformPoint(point.tolist()), registration.current_to_prior(point[None])[0], atol=1e-6)
    # Slicer reads an ITK file as the prior's transform *from* parent, in RAS: F·M·F; to parent is its inverse
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    assert np.allclose(np.linalg.inv(flip @ registration.matrix_lps @ flip), registration.prior_to_current_ras)
    prior_ras = np.append(lps_to_ras(STABLE_A.centre), 1.0)
    moved = registration.prior_to_current_ras @ prior_ras
    assert np.linalg.norm(moved[:3] - lps_to_ras(scanner_point(MOTION, STABLE_A.centre))) < 1.0


def test_outputs_carry_the_changes(comparison, tmp_path):
    paths = comparison.write(tmp_path)
    assert {path.name for path in tmp_path.iterdir()} == {path.name for path in paths.values()}
    rows = (tmp_path / "change.csv").read_text().splitlines()
    assert len(rows) == 1 + len(comparison.changes) and rows[0].startswith("change_id,change,certainty")
    document = json.loads((tmp_path / "change.json").read_text())
    assert document["format"] == "lesiondetect.change" and document["summary"]["counts"]["new"] == 1
    assert document["registration"]["quality"]["correlation"] > 0.9
    assert document["prior"]["lesions_from"] == "labels" and document["rules"]["enlarge_fraction"] == 0.5
    current = json.loads((tmp_path / "current.lesions.json").read_text())["lesions"]
    assert sorted(row["change"] for row in current) == ["enlarging", "new", "shrinking", "stable", "stable"]
    assert "change" in (tmp_path / "current.lesions.csv").read_text().splitlines()[0].split(",")
    prior = json.loads((tmp_path / "prior.lesions.json").read_text())["lesions"]
    assert sorted(row["change"] for row in prior) == ["enlarging", "resolved", "shrinking", "stable", "stable"]
    new_id = next(row["id"] for row in current if row["change"] == "new")
    header = nrrd.read_header(str(tmp_path / "current.seg.nrrd"))
    segment = next(key[: -len("_LabelValue")] for key, value in header.items()
                   if key.endswith("_LabelValue") and value == str(new_id))
    assert header[f"{segment}_Color"] == "0 0.85 1"
    assert (tmp_path / "change.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_write_leaves_the_previous_outputs(comparison, tmp_path, monkeypatch):
    comparison.write(tmp_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compare_output, "_write_png", broken)
    with pytest.raises(Exception, match="No space left"):
        comparison.write(tmp_path)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before  # no temporaries, nothing new


def test_results_folders_compare_like_the_results_themselves(comparison, tmp_path):
    for side, timepoint in (("prior", comparison.prior), ("current", comparison.current)):
        timepoint.result.write(tmp_path / side, stem="scan")
        sitk.WriteImage(timepoint.volume.to_sitk(), str(tmp_path / side / "scan.nrrd"))
    read = read_results(tmp_path / "prior")
    assert read.source == "results" and read.probability is None
    assert [lesion.voxel_count for lesion in read.result.lesions] == [
        lesion.voxel_count for lesion in comparison.prior.result.lesions]
    again = compare(tmp_path / "prior", tmp_path / "current" / "scan.lesions.json")
    assert [(c.change, c.prior_ids, c.current_ids) for c in again.changes] == [
        (c.change, c.prior_ids, c.current_ids) for c in comparison.changes]


def test_results_need_their_own_scan(comparison, tmp_path):
    comparison.prior.result.write(tmp_path, stem="scan")
    with pytest.raises(Exception, match="need their scan"):
        read_results(tmp_path)
    with pytest.raises(Exception, match="found on another scan"):
        read_results(tmp_path, scan=comparison.current.volume)


def test_edited_segmentation_is_refused(comparison, tmp_path):
    comparison.prior.result.write(tmp_path, stem="scan")
    table = tmp_path / "scan.lesions.json"
    document = json.loads(table.read_text())
    document["lesions"][0]["voxel_count"] += 5
    table.write_text(json.dumps(document))
    with pytest.raises(Exception, match="do not match the segmentation"):
        read_results(tmp_path, scan=comparison.prior.volume)


def test_labels_on_another_grid_are_carried_onto_the_scan(scans):
    (prior, prior_mask), _ = scans
    coarse = sitk.Resample(prior_mask.to_sitk(), [40, 40, 40], sitk.Transform(), sitk.sitkNearestNeighbor,
                           prior.origin, (2.5, 2.5, 2.5), np.asarray(prior.direction).ravel().tolist(), 0, sitk.sitkUInt8)
    from LesionDetectLib.volume import Volume

    timepoint = from_labels(prior, Volume.from_sitk(coarse, name="coarse"))
    assert timepoint.result.label_map.shape == prior.array.shape and len(timepoint.result.lesions) == len(PRIOR_LESIONS)


def test_the_same_scans_give_the_same_change_tables(scans, comparison, tmp_path):
    """ITK's registration sums in a varying order: the alignment agrees to about 1e-7 mm, the tables byte for byte."""
    (prior, prior_mask), (current, current_mask) = scans
    again = compare(prior, current, prior_lesions=prior_mask, current_lesions=current_mask)
    assert np.allclose(again.registration.matrix_lps, comparison.registration.matrix_lps, atol=1e-6)
    comparison.write(tmp_path / "first")
    again.write(tmp_path / "second")
    for name in ("change.csv", "current.lesions.csv", "prior.lesions.csv", "current.lesions.json", "prior.lesions.json"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name


def test_options_that_do_not_fit_the_input_are_refused(comparison, scans):
    (prior, prior_mask), (current, _) = scans
    with pytest.raises(ComparisonError, match="holds results already"):
        compare(comparison.prior.result, current, prior_lesions=prior_mask)
    with pytest.raises(ComparisonError, match="is a scan"):
        compare(prior, current, prior_scan=prior)
