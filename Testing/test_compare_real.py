"""Follow-up on real MS scans (MSLesSeg patient 14, two time points; skipped without ../shared/data).

The expert masks stand in for detections, so no model is needed: a copy of the second scan, with one lesion
pasted in, one removed and one grown, is compared with the original moved by a known rigid motion.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from change_phantom import rotation
from conftest import SHARED_DATA, needs_shared_data

from LesionDetectLib.compare import compare, register
from LesionDetectLib.compare.registration import QualityLimits, check
from LesionDetectLib.errors import ComparisonError
from LesionDetectLib.io import read_volume
from LesionDetectLib.volume import Volume, apply_affine

pytestmark = [needs_shared_data, pytest.mark.shared_data, pytest.mark.slow]
MS = SHARED_DATA / "ms-lesion-mri"


def _moved(volume: Volume, motion: np.ndarray) -> Volume:
    """The same voxels with the patient moved by ``motion`` (4×4, LPS mm): only the header changes, exactly."""
    matrix = motion @ volume.ijk_to_lps()
    return replace(volume, origin=tuple(matrix[:3, 3]), direction=matrix[:3, :3] / np.asarray(volume.spacing))


def _components(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    image = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
    labels = sitk.GetArrayFromImage(image)
    return labels, [int(n) for n in np.bincount(labels.ravel())]


def _isolated_lesion(labels, sizes, spacing, taken=()) -> int:
    """A lesion of 50–500 voxels whose nearest other lesion is more than 8 mm away."""
    for label in range(1, len(sizes)):
        if label in taken or not 50 <= sizes[label] <= 500:
            continue
        others = sitk.GetImageFromArray(((labels > 0) & (labels != label)).astype(np.uint8))
        others.SetSpacing(spacing)
        distance = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(others, False, False, True))
        if distance[labels == label].min() > 8.0:
            return label
    raise AssertionError("no isolated lesion of 50–500 voxels")


@pytest.fixture(scope="module")
def follow_up():
    """(prior image, prior mask, current image, current mask, motion): the current edited, the prior moved.

    Removed and grown: two lesions of 50–500 voxels more than 8 mm from any other; grown by a 2-voxel dilation;
    pasted: a 3 mm radius sphere more than 15 mm from every lesion and from the brain's edge.
    """
    image = read_volume(MS / "mslesseg_P14_T2" / "flair.nii.gz")
    mask = read_volume(MS / "mslesseg_P14_T2" / "label.nii.gz").array > 0
    labels, sizes = _components(mask)
    array, edited = image.array.astype(np.float32), mask.copy()
    removed = _isolated_lesion(labels, sizes, image.spacing)
    grown = _isolated_lesion(labels, sizes, image.spacing, taken=(removed,))
    brain = array > 0
    normal = float(np.median(array[brain & ~mask]))
    bright = float(np.percentile(array[mask], 90))
    edited[labels == removed] = False
    array[labels == removed] = normal
    dilated = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray((labels == grown).astype(np.uint8)),
                                                       [2, 2, 2])) > 0
    array[dilated & ~mask & brain] = bright
    edited |= dilated & brain
    far = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(sitk.GetImageFromArray((~brain).astype(np.uint8)),
                                                              False, False, True))
    near_lesion = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(sitk.GetImageFromArray(mask.astype(np.uint8)),
                                                                      False, False, True))
    k, j, i = np.argwhere((far > 15) & (near_lesion > 15))[0]
    zz, yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1], : mask.shape[2]]
    pasted = (zz - k) ** 2 + (yy - j) ** 2 + (xx - i) ** 2 <= 9  # a 3-voxel (3 mm) radius sphere: 123 voxels
    array[pasted], edited[pasted] = bright, True
    current = image.with_array(array, name="P14 T2 edited")
    motion = np.eye(4)
    motion[:3, :3] = rotation((1.0, 2.0, 3.0), 5.0)
    motion[:3, 3] = (4.0, -6.0, 3.0)
    prior = _moved(image, motion)
    places = {name: apply_affine(image.ijk_to_lps(), np.argwhere(region).mean(0)[::-1])
              for name, region in (("new", pasted), ("resolved", labels == removed), ("enlarging", dilated & brain))}
    return prior, prior.with_array(mask.astype(np.uint8)), current, current.with_array(edited.astype(np.uint8)), motion, places


def test_pasted_removed_and_grown_lesions_are_exactly_the_changes(follow_up):
    prior, prior_mask, current, current_mask, motion, places = follow_up
    comparison = compare(prior, current, prior_lesions=prior_mask, current_lesions=current_mask)
    counts = comparison.summary()["counts"]
    total = len(comparison.prior.result.lesions)
    assert counts == {"new": 1, "enlarging": 1, "stable": total - 2, "shrinking": 0, "resolved": 1, "outside": 0}
    for change in comparison.changes:
        if change.change in places:  # each where it was made (centroids in the current scan's space)
            assert np.linalg.norm(np.asarray(change.centroid_lps) - places[change.change]) < 2.0, change
    points = apply_affine(current.ijk_to_lps(), np.argwhere(prior_mask.array > 0)[::25, ::-1])  # at the lesions
    found = comparison.registration.current_to_prior(points)
    expected = points @ motion[:3, :3].T + motion[:3, 3]
    assert np.linalg.norm(found - expected, axis=1).max() < 1.0


def test_same_patient_aligns_and_another_patient_is_refused():
    later = read_volume(MS / "mslesseg_P14_T2" / "flair.nii.gz")
    earlier = register(read_volume(MS / "mslesseg_P14_T1" / "flair.nii.gz"), later)
    assert earlier.quality["correlation"] > 0.8 and earlier.quality["rotation_deg"] < 3.0
    other = register(read_volume(MS / "mslesseg_P18_T1" / "flair.nii.gz"), later, check_quality=False)
    with pytest.raises(ComparisonError, match="another patient"):
        check(other, QualityLimits())
