"""The module's logic tests (`LesionDetectModuleLib.logicTests` and `.compareTests`, also run by the module's
self-test inside Slicer), here on real MRML from slicer-core."""

from __future__ import annotations

import importlib
import os

import pytest

pytest_plugins = ("real_slicer",)  # the `slicer` fixture


def logicTestNames() -> list[str]:
    """Listed here, because collecting them from the module would need slicer at collection time."""
    return [
        "test_segments_points_and_table_overlay_the_input",
        "test_rerun_replaces_only_that_volumes_results_and_leaves_no_orphans",
        "test_lesion_free_scan_gives_empty_results_that_replace_earlier_ones",
        "test_cancel_leaves_the_scene_and_earlier_results_as_they_were",
        "test_damaged_or_inconsistent_results_change_nothing",
        "test_unusable_inputs_are_refused_before_anything_runs",
        "test_a_crash_is_reported_with_the_end_of_its_traceback",
        "test_review_hides_rejected_lesions_and_survives_saving_and_reloading_the_scene",
        "test_next_and_previous_step_by_confidence_and_centre_the_views",
        "test_export_of_the_reviewed_set_carries_status_comment_origin_and_reloads",
        "test_a_failed_export_writes_nothing",
        "test_a_missed_lesion_is_added_at_a_point_and_nothing_on_normal_tissue",
        "test_an_edited_segment_is_measured_again",
    ]


def compareTestNames() -> list[str]:
    return [
        "test_new_lesion_found_and_the_prior_shown_aligned_under_its_transform",
        "test_refused_or_damaged_comparison_changes_nothing",
    ]


@pytest.mark.parametrize("name", logicTestNames())
def test_logic(slicer, name):
    runCase(slicer, importlib.import_module("LesionDetectModuleLib.logicTests").LesionDetectLogicTest(name))


@pytest.mark.parametrize("name", compareTestNames())
def test_compare_with_prior(slicer, name):
    runCase(slicer, importlib.import_module("LesionDetectModuleLib.compareTests").CompareWithPriorTest(name))


def runCase(slicer, case) -> None:
    result = case.defaultTestResult()
    case.run(result)
    problems = [text for _, text in result.failures + result.errors]
    assert not problems, "\n".join(problems)
    assert os.listdir(slicer.app.temporaryPath) == []


def test_every_logic_test_is_run_here(slicer):
    import unittest

    logicTests = importlib.import_module("LesionDetectModuleLib.logicTests")
    compareTests = importlib.import_module("LesionDetectModuleLib.compareTests")
    assert sorted(logicTestNames()) == sorted(unittest.defaultTestLoader.getTestCaseNames(
        logicTests.LesionDetectLogicTest))
    assert sorted(compareTestNames()) == sorted(unittest.defaultTestLoader.getTestCaseNames(
        compareTests.CompareWithPriorTest))
