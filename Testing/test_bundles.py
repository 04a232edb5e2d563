"""`bundles`: checksums, safe loading of the weights, search paths, import (what model.json may hold:
test_model_spec.py; reading a folder or zip: test_bundle_files.py)."""

from __future__ import annotations

import io
import json
import pickle

import pytest
import torch
from conftest import write_threshold_bundle

from LesionDetectLib.bundle_files import sha256_of
from LesionDetectLib.bundles import default_model_for, import_model, list_models, load_model, open_bundle
from LesionDetectLib.errors import ModelBundleError
from LesionDetectLib.model_spec import FORMAT_VERSION


def rewrite_spec(folder, **changes):
    spec = json.loads((folder / "model.json").read_text())
    spec.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del spec[key]
    (folder / "model.json").write_text(json.dumps(spec))


def test_saved_bundle_verifies_and_builds(threshold_bundle):
    model = open_bundle(threshold_bundle)
    assert model.spec.format_version == FORMAT_VERSION
    assert model.spec.weights["sha256"] == sha256_of((threshold_bundle / "weights.pt").read_bytes())
    network = model.network("cpu")
    assert not network.training


def test_wrong_checksum_is_refused(threshold_bundle):
    (threshold_bundle / "weights.pt").write_bytes((threshold_bundle / "weights.pt").read_bytes() + b"x")
    with pytest.raises(ModelBundleError, match="checksum mismatch"):
        open_bundle(threshold_bundle)


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_payload_with_matching_checksum_is_not_executed(threshold_bundle, capsys):
    buffer = io.BytesIO()
    torch.save({"conv.weight": Payload()}, buffer)
    weights = buffer.getvalue()
    (threshold_bundle / "weights.pt").write_bytes(weights)
    rewrite_spec(threshold_bundle, weights={"file": "weights.pt", "sha256": sha256_of(weights)})
    model = open_bundle(threshold_bundle)
    with pytest.raises(ModelBundleError, match="not a plain tensor file"):
        model.network("cpu")
    assert "pwned" not in capsys.readouterr().out


def test_raw_pickle_is_refused(threshold_bundle):
    weights = pickle.dumps({"a": 1})
    (threshold_bundle / "weights.pt").write_bytes(weights)
    rewrite_spec(threshold_bundle, weights={"file": "weights.pt", "sha256": sha256_of(weights)})
    with pytest.raises(ModelBundleError):
        open_bundle(threshold_bundle).network("cpu")


def test_unknown_network_is_refused(threshold_bundle):
    rewrite_spec(threshold_bundle, network={"name": "os.system", "kwargs": {}})
    with pytest.raises(ModelBundleError, match="unknown network"):
        open_bundle(threshold_bundle).network("cpu")


def test_corrupt_json(threshold_bundle):
    (threshold_bundle / "model.json").write_text("{not json")
    with pytest.raises(ModelBundleError, match="not valid JSON"):
        open_bundle(threshold_bundle)


def test_import_list_and_load_by_name(threshold_bundle, isolated_models):
    target = import_model(threshold_bundle)
    assert target == isolated_models / "test-threshold-ct"
    names = {entry.name: entry for entry in list_models()}
    assert names["test-threshold-ct"].source == "user"
    assert load_model("test-threshold-ct").location == target
    assert default_model_for("CT") == "ct-tumours"  # an imported model never displaces the shipped default


def test_no_ct_model_message(isolated_models, monkeypatch):
    monkeypatch.setattr("LesionDetectLib.bundles.PACKAGE_MODELS", isolated_models / "none")
    with pytest.raises(ModelBundleError, match="no CT model ships .* import one with 'lesiondetect models import"):
        default_model_for("CT")


def test_the_shipped_default_wins_over_other_models_of_its_modality(tmp_path, isolated_models, monkeypatch):
    monkeypatch.setattr("LesionDetectLib.bundles.PACKAGE_MODELS", isolated_models / "none")
    import_model(write_threshold_bundle(tmp_path / "a", modality="MR", name="aaa-first-by-name"))
    assert default_model_for("MR") == "aaa-first-by-name"
    import_model(write_threshold_bundle(tmp_path / "b", modality="MR", name="brain-mri-lesions"))
    assert default_model_for("MR") == "brain-mri-lesions"


def test_unknown_name(isolated_models):
    with pytest.raises(ModelBundleError, match="no model named"):
        load_model("does-not-exist")


def test_weights_that_do_not_fit_the_network(tmp_path):
    folder = write_threshold_bundle(tmp_path / "b")
    rewrite_spec(folder, network={"name": "IntensityThreshold", "kwargs": {"in_channels": 2, "out_channels": 1}})
    with pytest.raises(ModelBundleError, match="do not fit"):
        open_bundle(folder).network("cpu")
