"""`bundle_files`: a bundle's two files read from a folder or a zip (hostile files: test_hostile_bundles.py)."""

from __future__ import annotations

import json
import zipfile

import pytest

from LesionDetectLib.bundle_files import read_bundle_files
from LesionDetectLib.errors import ModelBundleError


def test_zip_bundle_loads(threshold_bundle, tmp_path):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name in ("model.json", "weights.pt"):
            out.write(threshold_bundle / name, f"test-model/{name}")
    spec_bytes, weights = read_bundle_files(archive)
    assert json.loads(spec_bytes)["name"] == "test-threshold-ct"
    assert weights == (threshold_bundle / "weights.pt").read_bytes()


def test_zip_path_traversal_is_refused(threshold_bundle, tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(threshold_bundle / "model.json", "model.json")
        out.write(threshold_bundle / "weights.pt", "weights.pt")
        out.writestr("../../outside.txt", "x")
    with pytest.raises(ModelBundleError, match="unsafe paths"):
        read_bundle_files(archive)
