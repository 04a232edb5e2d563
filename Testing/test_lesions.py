"""Post-processing on hand-made probability maps: components, sizes in mm³, diameters, order, filters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import box_centroid_lps, make_volume

from LesionDetectLib.lesions import from_probability, longest_axial_diameter
from LesionDetectLib.volume import Volume

SPACING = (0.8, 0.9, 2.5)


def probability_volume():
    """Three boxes with different sizes and confidences on an oblique grid."""
    volume = make_volume(spacing=SPACING, lesions=())
    probability = np.zeros(volume.array.shape, np.float32)
    probability[2:4, 2:6, 2:5] = 0.7      # 2×4×3 = 24 voxels, max 0.7
    probability[10:15, 20:30, 20:30] = 0.9  # 5×10×10 = 500 voxels, max 0.9 (mean 0.9)
    probability[12, 25, 25] = 0.95           # peak inside the big one
    probability[20:22, 35:37, 30:32] = 0.6  # 8 voxels
    return volume, probability


def test_components_sorted_by_confidence_with_exact_volumes():
    volume, probability = probability_volume()
    lesions, label_map = from_probability(probability, volume, threshold=0.5, measure_surfaces=False)
    assert [lesion.id for lesion in lesions] == [1, 2, 3]
    assert [lesion.voxel_count for lesion in lesions] == [500, 24, 8]
    voxel = 0.8 * 0.9 * 2.5
    assert lesions[0].volume_mm3 == pytest.approx(500 * voxel)
    assert lesions[0].confidence_max == pytest.approx(0.95)
    assert lesions[0].confidence_mean == pytest.approx((499 * 0.9 + 0.95) / 500, rel=1e-6)
    assert [int((label_map == n).sum()) for n in (1, 2, 3)] == [500, 24, 8]
    assert lesions[0].bbox_ijk_min == (20, 20, 10) and lesions[0].bbox_ijk_max == (29, 29, 14)
    np.testing.assert_allclose(lesions[0].centroid_ijk, (24.5, 24.5, 12.0), atol=1e-9)
    box = (slice(10, 15), slice(20, 30), slice(20, 30))
    np.testing.assert_allclose(lesions[0].centroid_lps, box_centroid_lps(volume, box), atol=1e-6)
    assert lesions[0].equivalent_diameter_mm == pytest.approx((6 * 500 * voxel / math.pi) ** (1 / 3))


def test_min_size_in_mm3_and_max_lesions():
    volume, probability = probability_volume()
    voxel = 0.8 * 0.9 * 2.5
    lesions, label_map = from_probability(probability, volume, 0.5, min_volume_mm3=8 * voxel + 0.01,
                                          measure_surfaces=False)
    assert [lesion.voxel_count for lesion in lesions] == [500, 24]
    assert set(np.unique(label_map)) == {0, 1, 2}
    lesions, label_map = from_probability(probability, volume, 0.5, max_lesions=1, measure_surfaces=False)
    assert len(lesions) == 1 and set(np.unique(label_map)) == {0, 1}


def test_threshold_is_inclusive_and_empty_result():
    volume, probability = probability_volume()
    assert len(from_probability(probability, volume, 0.7, measure_surfaces=False)[0]) == 2
    lesions, label_map = from_probability(probability, volume, 0.99, measure_surfaces=False)
    assert lesions == [] and not label_map.any()


def test_outline_threshold_extends_confident_lesions_and_drops_the_others():
    """Hysteresis: regions reaching the threshold are outlined at the lower outline threshold."""
    volume, probability = probability_volume()
    peak_only, _ = from_probability(probability, volume, 0.92, measure_surfaces=False)
    assert [lesion.voxel_count for lesion in peak_only] == [1]
    lesions, label_map = from_probability(probability, volume, 0.92, measure_surfaces=False, outline_threshold=0.5)
    assert [lesion.voxel_count for lesion in lesions] == [500]  # the 0.7 and 0.6 boxes never reach 0.92
    assert lesions[0].confidence_max == pytest.approx(0.95) and int((label_map == 1).sum()) == 500
    voxel = 0.8 * 0.9 * 2.5
    assert from_probability(probability, volume, 0.92, min_volume_mm3=501 * voxel, measure_surfaces=False,
                            outline_threshold=0.5)[0] == []  # the size filter applies to the outlined region


def test_an_outline_threshold_above_the_threshold_is_the_threshold():
    volume, probability = probability_volume()
    plain = from_probability(probability, volume, 0.7, measure_surfaces=False)
    above = from_probability(probability, volume, 0.7, measure_surfaces=False, outline_threshold=0.9)
    assert plain[0] == above[0] and np.array_equal(plain[1], above[1])


def test_diagonal_neighbours_join_26_connectivity():
    volume = make_volume(lesions=())
    probability = np.zeros(volume.array.shape, np.float32)
    probability[5, 5, 5] = probability[6, 6, 6] = 0.9
    assert len(from_probability(probability, volume, 0.5, measure_surfaces=False)[0]) == 1


def test_longest_axial_diameter_axis_aligned():
    """A 1×4×5 (k, j, i) slab at spacing (0.5, 2, 3): diagonal (4·0.5, 3·2) = (2, 6) mm → √40."""
    volume = Volume(np.zeros((3, 6, 7), np.float32), (0.5, 2.0, 3.0), (0, 0, 0), np.eye(3))
    crop = np.ones((1, 4, 5), bool)
    assert longest_axial_diameter(crop, (1, 1, 1), volume) == pytest.approx(math.sqrt(40.0))


def test_longest_axial_diameter_uses_the_plane_closest_to_axial():
    """For a sagittal acquisition (k along L-R), the axial plane is spanned by the i (P) and k (L) axes."""
    direction = np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]])  # i→P, j→S, k→L in LPS
    volume = Volume(np.zeros((5, 5, 5), np.float32), (1.0, 1.0, 2.0), (0, 0, 0), direction)
    crop = np.zeros((3, 2, 4), bool)  # [k, j, i]
    crop[:, 0, :] = True  # 3 k × 4 i in one j (superior) slice: (2·2 mm, 3·1 mm) → 5 mm
    assert longest_axial_diameter(crop, (0, 0, 0), volume) == pytest.approx(5.0)


def test_surface_measures_present_for_a_ball():
    volume = make_volume(shape_kji=(20, 40, 40), spacing=(0.8, 0.8, 1.0), lesions=())
    k, j, i = np.indices(volume.array.shape)
    ball = ((i - 20) * 0.8) ** 2 + ((j - 20) * 0.8) ** 2 + ((k - 10) * 1.0) ** 2 <= 6.0**2
    lesions, _ = from_probability(ball.astype(np.float32), volume, 0.5)
    (lesion,) = lesions
    assert lesion.surface_area_mm2 == pytest.approx(4 * math.pi * 36, rel=0.15)
    assert 0.8 < lesion.sphericity <= 1.05
