"""`evaluation.reference`: the lesion rules (merge distance, minimum volume, hit distance) and the reference
lesions of a mask, checked against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_cases import GLIOMA, MS, brute_force_lesions, random_case, rotation, volume

from LesionDetectLib.evaluation import reference_lesions, resolve_rule


def test_blobs_4mm_apart_merge_under_glioma_not_ms_with_anisotropic_spacing():
    mask = volume((12, 10, 40), spacing=(0.5, 0.5, 2.0), origin=(3.0, -7.0, 11.0), direction=rotation(30))
    mask.array[2:4, 3:7, 3:9] = 1  # k = 2, 3
    mask.array[5:7, 3:7, 3:9] = 1  # k = 5, 6: nearest voxel centres 2 slices * 2 mm = 4 mm apart
    assert len(reference_lesions(mask, GLIOMA).lesions) == 1
    assert len(reference_lesions(mask, MS).lesions) == 2
    # 8 mm apart along k (k = 3 -> 7) stays apart, while the same gap in voxels along i (0.5 mm) merges
    far = volume((12, 10, 40), spacing=(0.5, 0.5, 2.0))
    far.array[2:4, 3:7, 3:9] = 1
    far.array[7:9, 3:7, 3:9] = 1
    assert len(reference_lesions(far, GLIOMA).lesions) == 2
    along_i = volume((12, 10, 40), spacing=(0.5, 0.5, 2.0))
    along_i.array[2:8, 3:7, 3:9] = 1
    along_i.array[2:8, 3:7, 13:19] = 1  # gap of 4 steps * 0.5 mm = 2 mm
    assert len(reference_lesions(along_i, GLIOMA).lesions) == 1
    assert len(reference_lesions(along_i, MS).lesions) == 2


def test_merged_lesion_keeps_only_mask_voxels():
    mask = volume((10, 10, 30))
    mask.array[4:7, 4:7, 3:6] = 1
    mask.array[4:7, 4:7, 9:12] = 1  # 4 mm gap
    (lesion,) = reference_lesions(mask, GLIOMA).lesions
    assert lesion.voxel_count == 54 and lesion.volume_mm3 == pytest.approx(54.0)
    assert lesion.centroid_lps == pytest.approx((7.0, 5.0, 5.0))


def test_small_lesion_ignored_under_glioma_counted_under_ms():
    mask = volume((10, 10, 10), spacing=(1.0, 1.0, 2.0))
    mask.array[2:4, 2:4, 2:7] = 1  # 20 voxels * 2 mm³ = 40 mm³
    (glioma,) = reference_lesions(mask, GLIOMA).lesions
    (ms,) = reference_lesions(mask, MS).lesions
    assert glioma.volume_mm3 == pytest.approx(40.0)
    assert glioma.ignored and not ms.ignored


def test_rule_overrides_and_description():
    rule = resolve_rule("glioma", merge_mm=0, hit_mm=5)
    assert (rule.merge_distance_mm, rule.min_volume_mm3, rule.hit_distance_mm) == (0.0, 50.0, 5.0)
    assert "modified" in rule.name and "5 mm" in rule.describe()
    assert resolve_rule("ct-tumour") == resolve_rule("ct-tumour", merge_mm=6.0)


def test_unknown_rule_and_negative_distances_are_refused():
    with pytest.raises(ValueError):
        resolve_rule("unknown")
    with pytest.raises(ValueError):
        resolve_rule("ms", hit_mm=-1)


@pytest.mark.parametrize("rule_name", ["ms", "glioma"])
def test_lesions_agree_with_scipy(rule_name):
    rule = resolve_rule(rule_name)
    rng = np.random.default_rng(7)
    for _ in range(5):  # sparse enough for several lesions under glioma's 6 mm merging
        mask, _ = random_case(rng, (0.7, 1.3, 2.0), rotation(20), shape=(12, 30, 40), density=0.0015)
        ours = reference_lesions(mask, rule)
        theirs = brute_force_lesions(mask, rule)
        assert len(theirs) >= 3
        label_map = ours.label_map.array
        our_sets = {frozenset(map(tuple, np.argwhere(label_map == lesion.id))) for lesion in ours.lesions}
        assert our_sets == {frozenset(map(tuple, kji)) for kji in theirs}
        for lesion in ours.lesions:
            assert lesion.volume_mm3 == pytest.approx(lesion.voxel_count * 0.7 * 1.3 * 2.0)
            assert lesion.ignored == (lesion.volume_mm3 < rule.min_volume_mm3)
