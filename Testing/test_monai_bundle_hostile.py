"""Hostile MONAI bundles are refused and leave nothing installed: code in model.pt, zip traversal, zip bombs,
links out of the bundle, code in the config."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch
from monai_bundles import config, write_bundle

from LesionDetectLib.errors import ModelBundleError
from LesionDetectLib.monai_bundle.importer import import_monai_bundle

METADATA = {"name": "Tiny", "version": "1.0", "intended_use": "tests", "authors": "tests", "lesion_labels": [1],
            "network_data_format": {"inputs": {"image": {"modality": "CT", "channel_def": {"0": "image"}}},
                                    "outputs": {"pred": {"channel_def": {"0": "background", "1": "lesion"}}}}}


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-model-pt",))


@pytest.fixture(autouse=True)
def models_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONDETECT_MODELS", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)


def nothing_installed(tmp_path) -> bool:
    return not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_a_tiny_bundle_imports(tmp_path):
    installed = import_monai_bundle(write_bundle(tmp_path / "tiny", config(), METADATA))
    assert (installed / "weights.pt").is_file() and installed.name == "tiny"


def test_code_in_model_pt_is_never_run(tmp_path):
    import io

    buffer = io.BytesIO()
    torch.save({"weight": Payload()}, buffer, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    bundle = write_bundle(tmp_path / "evil", config(), METADATA, weights=buffer.getvalue())
    with pytest.raises(ModelBundleError, match="not a plain tensor file"):
        import_monai_bundle(bundle)
    assert not (tmp_path / "pwned-by-model-pt").exists() and nothing_installed(tmp_path)


def test_code_in_the_config_is_refused_naming_the_key(tmp_path):
    evil = config(network_def={"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                               "channels": "$__import__('os').system('touch pwned') and [4, 8]", "strides": [2]})
    bundle = write_bundle(tmp_path / "evil", config(), METADATA)
    (bundle / "configs" / "inference.json").write_text(__import__("json").dumps(evil))
    with pytest.raises(ModelBundleError, match=r"network_def#channels: expression .* is not supported"):
        import_monai_bundle(bundle)
    assert not (tmp_path / "pwned").exists() and nothing_installed(tmp_path)


def test_zip_traversal_and_bombs_are_refused(tmp_path):
    bundle = write_bundle(tmp_path / "tiny", config(), METADATA)
    traversal = tmp_path / "traversal.zip"
    with zipfile.ZipFile(traversal, "w") as archive:
        for path in bundle.rglob("*"):
            if path.is_file():
                archive.write(path, f"tiny/{path.relative_to(bundle)}")
        archive.writestr("../outside.txt", "x")
    with pytest.raises(ModelBundleError, match="unsafe paths"):
        import_monai_bundle(traversal)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(bundle / "configs" / "metadata.json", "configs/metadata.json")
        archive.writestr("configs/inference.json", b" " * (2**20 + 10))  # compresses to almost nothing
        archive.write(bundle / "models" / "model.pt", "models/model.pt")
    with pytest.raises(ModelBundleError, match="would decompress to"):
        import_monai_bundle(bomb)
    assert nothing_installed(tmp_path)


def test_links_out_of_the_bundle_are_refused(tmp_path):
    bundle = write_bundle(tmp_path / "tiny", config(), METADATA)
    outside = tmp_path / "secret.pt"
    (bundle / "models" / "model.pt").rename(outside)
    (bundle / "models" / "model.pt").symlink_to(outside)
    with pytest.raises(ModelBundleError, match="outside the bundle"):
        import_monai_bundle(bundle)
    assert nothing_installed(tmp_path)


def test_arguments_the_installed_monai_no_longer_takes_are_named(tmp_path):
    swin = config(network_def={"_target_": "SwinUNETR", "img_size": [96, 96, 96], "in_channels": 1,
                               "out_channels": 2, "feature_size": 12})
    bundle = write_bundle(tmp_path / "swin", swin, METADATA, state={"weight": torch.zeros(1)})
    with pytest.raises(ModelBundleError, match=r"SwinUNETR in the installed MONAI .* does not take argument\(s\) "
                                               r"'img_size'"):
        import_monai_bundle(bundle)
    assert nothing_installed(tmp_path)
