"""Command lines for the option tests, and what argparse says when it refuses one."""

from __future__ import annotations

import pytest

from LesionDetectLib import cli

TRAIN = ["train", "dataset.json", "-o", "model-dir"]
EVALUATE = ["evaluate", "--pred", "pred", "--ref", "ref"]
DETECT = ["detect", "scan.nii.gz", "-o", "out"]


def usage_error(argv: list[str], capsys) -> str:
    """argparse's message for ``argv``, which must be refused as bad usage (exit 2) before anything runs."""
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2, err
    assert err.startswith("usage: lesiondetect") and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("lesiondetect ") and ": error: " in lines[-1], err
    return lines[-1]
