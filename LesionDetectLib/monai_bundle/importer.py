"""Import a MONAI bundle (folder or ``.zip`` with ``configs/metadata.json``, ``configs/inference.json`` or
``.yaml``, ``models/model.pt``) as an installed LesionDetect model: ``model.json`` written from the configs.

The files are read with the same guards as LesionDetect's own bundles (regular files inside the bundle, size
limits before decompressing, no unsafe zip entries). ``model.pt`` is read only with ``weights_only=True``;
the weights are re-saved as ``weights.pt`` with their sha256, and `bundles.import_model` installs the result
only after the network was built and the weights loaded into it; nothing is left behind on failure.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

from .. import bundle_files, model_spec
from ..errors import ModelBundleError
from .config import parse_inference
from .expressions import BundleConfigError
from .metadata import model_card

METADATA, MODEL_WEIGHTS = "configs/metadata.json", "models/model.pt"
INFERENCE_FILES = ("configs/inference.json", "configs/inference.yaml", "configs/inference.yml")
MAX_CONFIG_BYTES = bundle_files.MAX_SPEC_BYTES


def is_monai_bundle(path: str | Path) -> bool:
    """Whether ``path`` looks like a MONAI bundle (has ``configs/metadata.json``) rather than a LesionDetect one."""
    path = Path(path).expanduser()
    if path.is_dir():
        return (path / METADATA).exists()
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(METADATA) for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, ValueError):
        return False


def read_bundle(path: Path) -> dict[str, bytes]:
    """The metadata, inference config and weights of a bundle folder or zip, by their bundle path."""
    if path.is_dir():
        inference = next((name for name in INFERENCE_FILES if (path / name).exists()), INFERENCE_FILES[0])
        return {name: bundle_files.read_member(path, name, limit) for name, limit in
                ((METADATA, MAX_CONFIG_BYTES), (inference, MAX_CONFIG_BYTES), (MODEL_WEIGHTS, bundle_files.MAX_WEIGHTS_BYTES))}
    try:
        with zipfile.ZipFile(path) as archive:
            names = bundle_files.safe_zip_names(archive, path)
            metadata = [name for name in names if name.endswith(METADATA) and len(Path(name).parts) <= 3]
            if len(metadata) != 1:
                raise ModelBundleError(f"{path}: zip must hold exactly one {METADATA} at its root or in one folder")
            prefix = metadata[0][: -len(METADATA)]
            inference = next((prefix + name for name in INFERENCE_FILES if prefix + name in names),
                             prefix + INFERENCE_FILES[0])
            return {name[len(prefix):]: bundle_files.read_zip_member(archive, name, limit, path) for name, limit in
                    ((metadata[0], MAX_CONFIG_BYTES), (inference, MAX_CONFIG_BYTES),
                     (prefix + MODEL_WEIGHTS, bundle_files.MAX_WEIGHTS_BYTES))}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as error:
        raise ModelBundleError(f"{path}: corrupt or unsupported zip ({error})") from None


def _parse_document(name: str, data: bytes, path: Path) -> dict[str, Any]:
    """A config file as data: JSON, or YAML with the safe loader (no tags that build objects)."""
    try:
        text = data.decode("utf-8")
        if name.endswith(".json"):
            value = json.loads(text)
        else:
            import yaml

            value = yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ModelBundleError(f"{path}: {name} is not valid ({str(error).splitlines()[0][:200]})") from None
    except Exception as error:  # yaml's errors (YAMLError and its subclasses)
        raise ModelBundleError(f"{path}: {name} is not valid YAML ({type(error).__name__})") from None
    if not isinstance(value, dict):
        raise ModelBundleError(f"{path}: {name} must hold a mapping")
    return value


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``config`` with literal settings replaced (``--set whether_raw_luna16=true``, ``--set a#b=3``)."""
    import copy

    config = copy.deepcopy(config)
    for path, value in overrides.items():
        *parents, last = path.split("#")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node:
            raise BundleConfigError(f"--set {path}: no such key in the inference config")
        node[last] = value
    return config


def state_dict_of(weights: bytes, path: Path) -> dict:
    """The tensors of ``model.pt``: a state dict, or a checkpoint's ``model`` entry; code is never unpickled."""
    import torch

    try:
        loaded = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as error:  # torch's restricted unpickler raises assorted errors for code and corrupt files
        first = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise ModelBundleError(f"{path}: {MODEL_WEIGHTS} is not a plain tensor file (weights_only refused it: "
                               f"{first})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]
    if not (isinstance(loaded, dict) and loaded and all(isinstance(v, torch.Tensor) for v in loaded.values())):
        raise ModelBundleError(f"{path}: {MODEL_WEIGHTS} holds no state dict of tensors")
    return loaded


def default_name(path: Path, metadata: dict[str, Any]) -> str:
    """The bundle's folder or zip name when it is a plain name, else its metadata name made one."""
    stem = path.name[:-4] if path.name.endswith(".zip") else path.name
    if model_spec.SAFE_NAME.fullmatch(stem):
        return stem
    slug = re.sub(r"[^\w.+-]+", "-", str(metadata.get("name", ""))).strip("-.")[:128]
    if not slug:
        raise ModelBundleError(f"{path}: no usable model name; pass --name")
    return slug


def import_monai_bundle(path: str | Path, lesion_labels: list[int] | None = None, name: str | None = None,
                        overrides: dict[str, Any] | None = None) -> Path:
    """Import the MONAI bundle at ``path`` into the user models folder; returns the installed folder.

    ``lesion_labels``: the output labels (softmax classes, or sigmoid channels) that are lesions, when the
    bundle's metadata does not say; ``overrides``: top-level literal config settings replaced before parsing.
    """
    from ..bundle_files import sha256_of
    from ..bundles import import_model, save_bundle

    path = Path(path).expanduser()
    if not path.exists():
        raise ModelBundleError(f"{path}: no such MONAI bundle")
    files = read_bundle(path)
    documents = {name: _parse_document(name, data, path) for name, data in files.items() if name != MODEL_WEIGHTS}
    metadata = documents.pop(METADATA)
    (inference_name, inference), = documents.items()
    try:
        pipeline = parse_inference(apply_overrides(inference, overrides or {}))
    except BundleConfigError as error:
        raise BundleConfigError(f"{path}: {inference_name}: {error}") from None
    spec = model_card(metadata, pipeline, lesion_labels, str(path))
    spec["name"] = name or default_name(path, metadata)
    spec["provenance"]["monai_bundle"]["model_pt_sha256"] = sha256_of(files[MODEL_WEIGHTS])
    spec["provenance"]["monai_bundle"]["overrides"] = overrides or {}
    check_network_arguments(pipeline["network"])
    state = state_dict_of(files[MODEL_WEIGHTS], path)
    with tempfile.TemporaryDirectory(prefix="lesiondetect-monai-") as staging:
        save_bundle(Path(staging) / "bundle", spec, state)
        return import_model(Path(staging) / "bundle")


def check_network_arguments(network: dict[str, Any]) -> None:
    """Refuse arguments that the installed MONAI's network no longer takes, naming them (and the version)."""
    import inspect

    import monai

    from ..networks import network_class

    if network["name"] == "RetinaNet":
        return  # its arguments are LesionDetect's recipe, checked where the detector is built
    parameters = inspect.signature(network_class(network["name"])).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(network["kwargs"]) - set(parameters))
    if unknown:
        raise ModelBundleError(f"network_def: {network['name']} in the installed MONAI {monai.__version__} does not "
                               f"take argument(s) {', '.join(map(repr, unknown))}")
