"""The installed models: finding, opening, listing, importing and saving model bundles.

A bundle is a folder or ``.zip`` holding ``model.json`` (a `ModelSpec`) and ``weights.pt``. Light to import (no
torch) so that listing models works in Slicer's main process. Weights are read only after their sha256 matches
``model.json``, and only with ``torch.load(weights_only=True)``; a bundle is data, never code
(`bundle_files` reads it without trusting it, `model_spec` validates what it says). `import_model` installs only
what `load_model` would accept: the network is built and the weights loaded into it before anything is copied.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .bundle_files import read_bundle_files, read_spec_bytes, sha256_of
from .errors import LesionDetectError, ModelBundleError, ModelsFolderError, OutputError
from .model_spec import FORMAT_VERSION, SPEC_FILE, WEIGHTS_FILE, ModelSpec

DEFAULT_MODELS = {"MR": "brain-mri-lesions", "CT": "ct-tumours"}  # chosen for an input of that modality
PACKAGE_MODELS = Path(__file__).parent / "models"
MODELS_ENV = "LESIONDETECT_MODELS"


@dataclass(eq=False)
class Model:
    """A verified bundle: its spec, where it came from, and its weights (a state dict, loaded on demand)."""

    spec: ModelSpec
    location: Path
    source: str
    weights_bytes: bytes = field(repr=False, default=b"")

    @property
    def name(self) -> str:
        return self.spec.name

    def network(self, device: str = "cpu"):
        """Build the network, load the verified weights (``weights_only=True``), move to ``device``, eval mode."""
        import torch

        from .networks import build_network

        name = self.spec.network["name"]
        try:
            network = build_network(name, dict(self.spec.network.get("kwargs", {})))
        except ModelBundleError as error:  # MONAI's messages may span lines: the user gets one
            raise ModelBundleError(" ".join(str(error).split())[:500]) from None
        except LesionDetectError:  # a cancellation (SIGTERM) that arrived meanwhile
            raise
        except Exception as error:  # MONAI raises assorted errors for arguments that make no network
            message = (str(error).splitlines() or [""])[0][:300]
            raise ModelBundleError(f"{self.location}: network {name} cannot be built from its arguments: "
                                   f"{type(error).__name__}: {message}") from None
        try:
            state = torch.load(io.BytesIO(self.weights_bytes), map_location="cpu", weights_only=True)
            network.load_state_dict(state, strict=True)
        except LesionDetectError:
            raise
        except (RuntimeError, KeyError, ValueError, TypeError, EOFError) as error:
            message = (str(error).splitlines() or [type(error).__name__])[0][:300]
            raise ModelBundleError(f"{self.location}: weights do not fit network {self.spec.network['name']}: {message}") from None
        except Exception as error:  # torch's unpickler raises assorted errors for hostile or corrupt files
            raise ModelBundleError(f"{self.location}: weights.pt is not a plain tensor file ({type(error).__name__})") from None
        return network.to(device).eval()


def read_spec(path: Path) -> ModelSpec:
    """Only the validated spec of a bundle (no weights read beyond the file): light, for listings."""
    return _parse_spec(read_spec_bytes(path), path)


def _parse_spec(spec_bytes: bytes, path: Path) -> ModelSpec:
    try:
        data = json.loads(spec_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelBundleError(f"{path}: {SPEC_FILE} is not valid JSON ({str(error)[:200]})") from None
    return ModelSpec.from_dict(data, source=str(path / SPEC_FILE) if path.is_dir() else f"{path}:{SPEC_FILE}")


def open_bundle(path: str | Path, source: str = "path") -> Model:
    """Validate a bundle at ``path`` and check its weights' sha256; raise `ModelBundleError` otherwise."""
    path = _user_path(path)
    try:
        if not path.exists():
            raise ModelBundleError(f"{path}: no such model bundle")
        spec_bytes, weights = read_bundle_files(path)
    except OSError as error:  # a folder that cannot be searched
        raise ModelBundleError(f"{path}: cannot be read ({error.strerror or error})") from None
    spec = _parse_spec(spec_bytes, path)
    actual = sha256_of(weights)
    if actual != spec.weights["sha256"]:
        raise ModelBundleError(
            f"{path}: weights.pt checksum mismatch (model.json says {spec.weights['sha256'][:12]}…, file is {actual[:12]}…)"
        )
    return Model(spec=spec, location=path, source=source, weights_bytes=weights)


def _user_path(path: str | Path) -> Path:
    """``path`` with ``~`` expanded (kept as given when there is no such home folder)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def user_models_folder() -> Path:
    """``$LESIONDETECT_MODELS`` or ``~/.lesiondetect/models`` (`ModelsFolderError` when neither can be known)."""
    try:
        return Path(os.environ.get(MODELS_ENV) or Path.home() / ".lesiondetect" / "models").expanduser()
    except RuntimeError:  # no home folder
        raise ModelsFolderError(f"no home folder to keep models in; set {MODELS_ENV} to a folder") from None


def _bundle_folders(folder: Path) -> list[Path]:
    """The entries of a models folder ([] when it does not exist); `ModelsFolderError` when it cannot be listed."""
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as error:
        raise ModelsFolderError(f"models folder {folder} cannot be read: {error.strerror or error}") from None


def _holds_spec(candidate: Path) -> bool:
    try:
        return (candidate / SPEC_FILE).is_file()
    except OSError:  # a bundle folder that cannot be searched is not listed
        return False


@dataclass(frozen=True)
class ModelEntry:
    """A model found by `list_models` (spec read and validated, weights not loaded)."""

    name: str
    version: str
    modality: str
    description: str
    threshold: float
    path: Path
    source: str
    input_channels: tuple[str, ...] = ("",)  # the channel names `detect` needs, in the network's order
    task: str = "segmentation"  # or "detection" (an imported box detector)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "input_channels": list(self.input_channels)}


def list_models() -> list[ModelEntry]:
    """Models in the package and the user folder (user models shadow packaged ones of the same name)."""
    found: dict[str, ModelEntry] = {}
    try:
        user = user_models_folder()
    except ModelsFolderError:  # no home folder and no $LESIONDETECT_MODELS: only the packaged models
        user = None
    for source, folder in (("package", PACKAGE_MODELS), ("user", user)):
        for candidate in _bundle_folders(folder) if folder is not None else []:
            if not _holds_spec(candidate):
                continue
            try:
                spec = read_spec(candidate)
            except ModelBundleError:
                continue
            found[spec.name] = ModelEntry(
                spec.name, spec.version, spec.modality, spec.description, spec.threshold, candidate, source,
                tuple(spec.needed_channels), spec.pipeline.get("task", "segmentation"),
            )
    return sorted(found.values(), key=lambda entry: entry.name)


def load_model(name_or_path: str | Path) -> Model:
    """A model by name (package or user folder) or by path to a bundle folder or zip."""
    text = str(name_or_path)
    entries = {entry.name: entry for entry in list_models()}
    if text in entries:
        return open_bundle(entries[text].path, source=entries[text].source)
    if _user_path(text).exists() or os.sep in text or text.endswith(".zip"):
        return open_bundle(text)
    names = ", ".join(entries) or "none installed"
    raise ModelBundleError(f"no model named {text!r} (available: {names}); give a bundle path or import one")


def default_model_for(modality: str | None) -> str:
    """The name of the model to use for a modality: the shipped default (`DEFAULT_MODELS`) when installed,
    else the first installed model of that modality."""
    matching = [entry.name for entry in list_models() if modality is None or entry.modality == modality]
    if DEFAULT_MODELS.get(modality) in matching:
        return DEFAULT_MODELS[modality]
    if matching:
        return matching[0]
    if modality == "CT":
        raise ModelBundleError(
            "no CT model ships with this version of LesionDetect and none is installed; import one with "
            "'lesiondetect models import PATH' (or pass --model PATH)"
        )
    raise ModelBundleError(f"no {modality or ''} model is installed; pass --model NAME|PATH")


def import_model(path: str | Path) -> Path:
    """Validate a bundle as `load_model` does, network and weights included, and copy it into the user model
    folder as ``<name>/`` (replacing an earlier one whole); return the new folder. Nothing is left on failure."""
    from .writers.atomic import staged_outputs

    model = open_bundle(path)
    model.network("cpu")  # an allowed network built from its arguments, the weights loaded into it
    folder = user_models_folder()
    target = folder / model.spec.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with staged_outputs(folder) as staging:
            temporary = staging.directory(target)
            (temporary / SPEC_FILE).write_text(json.dumps(model.spec.to_dict(), indent=2, sort_keys=True) + "\n")
            (temporary / WEIGHTS_FILE).write_bytes(model.weights_bytes)
    except OutputError as error:
        raise ModelsFolderError(f"cannot import into the models folder {folder}: {error}") from None
    except OSError as error:
        raise ModelsFolderError(f"cannot import into the models folder {folder}: {error.strerror or error}") from None
    return target


def save_bundle(folder: str | Path, spec: dict[str, Any], state_dict: dict) -> Path:
    """Write ``weights.pt`` and a ``model.json`` whose sha256 matches it; returns the folder."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu().contiguous() for key, value in state_dict.items()}, buffer)
    weights = buffer.getvalue()
    spec = {**spec, "format_version": FORMAT_VERSION, "weights": {"file": WEIGHTS_FILE, "sha256": sha256_of(weights)}}
    ModelSpec.from_dict(spec, source=str(folder / SPEC_FILE))
    from .writers.atomic import atomic_output

    with atomic_output(folder / WEIGHTS_FILE) as temporary:
        temporary.write_bytes(weights)
    with atomic_output(folder / SPEC_FILE) as temporary:
        temporary.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    return folder
