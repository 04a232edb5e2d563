"""The `lesiondetect train` command: its options, checked before anything runs."""

from __future__ import annotations

import pytest
from cli_usage import TRAIN, usage_error

pytestmark = pytest.mark.usefixtures("in_a_scratch_folder")


def test_fold_needs_folds_and_a_fold_in_range(capsys):
    assert "--folds" in usage_error([*TRAIN, "--fold", "1"], capsys)
    assert "--fold" in usage_error([*TRAIN, "--folds", "3", "--fold", "3"], capsys)
    assert "--fold" in usage_error([*TRAIN, "--folds", "3", "--fold", "-1"], capsys)
