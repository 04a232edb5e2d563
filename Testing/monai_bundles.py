"""Test helpers: real MONAI Model Zoo configs (../shared/monai-bundles) packaged as bundles with random weights
of exactly the network each config describes, and small volumes to run them on."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from LesionDetectLib.volume import Volume

ZOO = Path(__file__).resolve().parents[2] / "shared" / "monai-bundles"
ZOO_BUNDLES = ("spleen_ct_segmentation", "brats_mri_segmentation", "wholeBody_ct_segmentation",
               "lung_nodule_ct_detection")
needs_zoo = pytest.mark.skipif(not ZOO.is_dir(), reason=f"real MONAI bundle configs not present ({ZOO})")

NETWORK = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [4, 8],
           "strides": [2]}
INFERER = {"_target_": "SlidingWindowInferer", "roi_size": [16, 16, 16], "sw_batch_size": 2, "overlap": 0.25}


def config(**changes) -> dict:
    base = {
        "imports": ["$import os"], "bundle_root": ".", "image_key": "image",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": NETWORK, "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "@image_key"},
            {"_target_": "ScaleIntensityRanged", "keys": "@image_key", "a_min": -100, "a_max": 200, "b_min": 0,
             "b_max": 1, "clip": True}]},
        "inferer": INFERER,
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "$@bundle_root + '/eval'"}]},
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in glob.glob('*')]"},
    }
    return {**base, **changes}


def zoo_configs(name: str) -> tuple[dict, dict]:
    folder = ZOO / name / "configs"
    return json.loads((folder / "inference.json").read_text()), json.loads((folder / "metadata.json").read_text())


def random_state(pipeline: dict, seed: int = 0) -> dict:
    """A state dict of random weights for the network a parsed pipeline describes."""
    import torch

    from LesionDetectLib.networks import build_network

    torch.manual_seed(seed)
    network = build_network(pipeline["network"]["name"], pipeline["network"]["kwargs"])
    return {key: value.detach().clone() for key, value in network.state_dict().items()}


def write_bundle(folder: Path, inference: dict, metadata: dict, state=None, weights: bytes | None = None) -> Path:
    """A MONAI bundle folder: configs/inference.json, configs/metadata.json and models/model.pt."""
    import torch

    from LesionDetectLib.monai_bundle.config import parse_inference

    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    (folder / "configs" / "inference.json").write_text(json.dumps(inference))
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata))
    if weights is None:
        state = random_state(parse_inference(inference)) if state is None else state
        torch.save(state, folder / "models" / "model.pt")
    else:
        (folder / "models" / "model.pt").write_bytes(weights)
    return folder


def zoo_bundle(tmp: Path, name: str, as_zip: bool = False, metadata_changes: dict | None = None,
               state: dict | None = None) -> Path:
    """A real zoo config as a bundle folder (or zip) named ``name`` in ``tmp`` (random weights unless ``state``)."""
    inference, metadata = zoo_configs(name)
    folder = write_bundle(tmp / name, inference, {**metadata, **(metadata_changes or {})}, state)
    if not as_zip:
        return folder
    archive = tmp / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, f"{name}/{path.relative_to(folder)}")
    shutil.rmtree(folder)
    return archive


def ras_volume(shape_xyz, spacing, origin=(10.0, -20.0, 5.0), seed: int = 0, low: float = -1000, high: float = 400,
               name: str = "ct", modality: str | None = "CT") -> Volume:
    """A RAS-aligned volume (LPS direction diag(-1, -1, 1)) of random smooth intensities."""
    rng = np.random.default_rng(seed)
    x, y, z = shape_xyz
    array = rng.uniform(low, high, size=(z, y, x)).astype(np.float32)
    return Volume(array, tuple(float(s) for s in spacing), tuple(float(o) for o in origin),
                  np.diag([-1.0, -1.0, 1.0]), name=name, modality=modality)
