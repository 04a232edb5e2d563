"""Model bundles: a folder or ``.zip`` holding ``model.json`` (self-description) and ``weights.pt``.

Light to import (no torch) so that listing models works in Slicer's main process. Weights are read only
after their sha256 matches ``model.json``, and only with ``torch.load(weights_only=True)``. A bundle is data,
never code: the network is a name from an allow-list with JSON keyword arguments, nothing is downloaded
(``pretrained`` is refused), files are read only when they are regular files inside the bundle and within a
size limit (also inside a ``.zip``, before decompressing), and the bundle's name is a plain folder name.
Every number in ``model.json`` must be finite (Python's json reads NaN and Infinity) and every setting within
a sane range, and `import_model` installs only what `load_model` would accept: the network is built and the
weights loaded into it before anything is copied.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import stat
import zipfile
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import LesionDetectError, ModelBundleError, ModelsFolderError, OutputError
from .input_checks import REQUIREMENT_CHECKS

FORMAT_VERSION = 1
DEFAULT_MODELS = {"MR": "brain-mri-lesions", "CT": "ct-tumours"}  # chosen for an input of that modality
SPEC_FILE, WEIGHTS_FILE = "model.json", "weights.pt"
MODALITIES = ("CT", "MR")
INTENSITY_KINDS = ("ct", "mr", "bundle")  # bundle: the steps of an imported MONAI bundle's `pipeline`
PACKAGE_MODELS = Path(__file__).parent / "models"
MODELS_ENV = "LESIONDETECT_MODELS"
MAX_SPEC_BYTES, MAX_WEIGHTS_BYTES = 2**20, 2**31  # 1 MiB of JSON, 2 GiB of weights
MAX_PATCH = 512  # voxels per patch side (a patch is held many times over in memory)
MAX_BATCH = 1024  # sliding-window batch
MAX_WINDOW_VOXELS = 2**26  # patch voxels × batch: 256³ × 4 or 128³ × 32; a network's activations scale with it
MAX_OVERLAP = 0.9  # 0.9 already runs 1000 times the windows of no overlap
SPACING_RANGE_MM = (0.01, 100.0)
MAX_LESION_MM3 = 1e9  # a cubic metre
MAX_HU = 1e5  # CT window bounds
MAX_TEXT = 10_000  # characters of a name, version or description
SAFE_NAME = re.compile(r"(?!\.)[\w .+-]{1,128}(?<![. ])")  # one plain folder name: no '/', '\\', '..', control characters


@dataclass(frozen=True)
class ModelSpec:
    """The contents of ``model.json``."""

    format_version: int
    name: str
    version: str
    description: str
    modality: str
    intended_use: str
    input_channels: list[str]
    network: dict[str, Any]
    spacing: list[float]
    intensity: dict[str, Any]
    patch_size: list[int]
    overlap: float
    batch_size: int
    labels: dict[str, str]
    threshold: float
    min_lesion_mm3: float
    weights: dict[str, str]
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    input_requirements: list[str] = field(default_factory=list)  # names in input_checks.REQUIREMENT_CHECKS
    outline_threshold: float | None = None  # how far a lesion extends (≤ threshold); None: the threshold
    flip_axes: list[int] = field(default_factory=list)  # test-time mirroring along these model-grid axes (x, y, z)
    pipeline: dict[str, Any] = field(default_factory=dict)  # an imported MONAI bundle's steps (monai_bundle/)

    @classmethod
    def from_dict(cls, data: Any, source: str = "model.json") -> ModelSpec:
        """Validate ``data`` field by field; every problem is reported in one `ModelBundleError`."""
        if not isinstance(data, dict):
            raise ModelBundleError(f"{source}: must hold a JSON object")
        known = {f.name for f in fields(cls)}
        optional = {"provenance", "metrics", "input_requirements", "outline_threshold", "flip_axes", "pipeline"}
        problems = [f"missing field {name!r}" for name in sorted(known - optional - data.keys())]
        problems += [f"unknown field {name[:64]!r}" for name in sorted(data.keys() - known)]
        problems += [f"{where} is {value} (every number must be finite)" for where, value in non_finite_numbers(data)]
        if not problems:
            problems = _value_problems(data)
        if problems:
            more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise ModelBundleError(f"{source}: invalid model bundle: " + "; ".join(problems[:5]) + more)
        return cls(**data)

    @property
    def needed_channels(self) -> list[str]:
        """The input channels `detect` needs: the first ``in_channels`` of ``input_channels`` (a shipped model may
        list a channel its network does not take, e.g. ``"T1 (MS cases only)"``)."""
        kwargs = self.network.get("kwargs", {})
        count = kwargs.get("in_channels", kwargs.get("backbone", {}).get("kwargs", {}).get("n_input_channels"))
        return list(self.input_channels[:count] if isinstance(count, int) and count > 0 else self.input_channels)

    def to_dict(self) -> dict[str, Any]:
        """The ``model.json`` content (an unset outline threshold and no flips are left out, as in the file)."""
        data = asdict(self)
        if data["outline_threshold"] is None:
            del data["outline_threshold"]
        for optional in ("flip_axes", "pipeline"):
            if not data[optional]:
                del data[optional]
        return data


def non_finite_numbers(value: Any, where: str = "") -> list[tuple[str, float]]:
    """(field path, value) of every NaN or infinite number in a JSON document, e.g. ('spacing[1]', nan)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(where or "the document", value)]
    if isinstance(value, dict):
        return [found for key, item in value.items()
                for found in non_finite_numbers(item, f"{where}.{_key(key)}" if where else _key(key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in non_finite_numbers(item, f"{where}[{index}]")]
    return []


def _key(key: str) -> str:
    """A JSON key as a message shows it: plain names as they are, others quoted (newlines and all escaped)."""
    return key if re.fullmatch(r"[\w.+-]{1,64}", key) else repr(key[:64])


def _value_problems(data: dict[str, Any]) -> list[str]:
    low, high = SPACING_RANGE_MM
    checks = [
        (_is_int(data["format_version"]) and data["format_version"] == FORMAT_VERSION,
         f"format_version must be {FORMAT_VERSION}"),
        (isinstance(data["name"], str) and SAFE_NAME.fullmatch(data["name"]) is not None,
         "name must be a plain folder name (letters, digits, space, '.', '_', '+', '-'; not starting with '.')"),
        *[(isinstance(data[key], str) and len(data[key]) <= MAX_TEXT, f"{key} must be text (at most {MAX_TEXT} characters)")
          for key in ("version", "description", "intended_use")],
        (data["modality"] in MODALITIES, f"modality must be one of {MODALITIES}"),
        (_is_list(data["input_channels"], str) and len(data["input_channels"]) >= 1, "input_channels: list of names"),
        (isinstance(data["network"], dict) and isinstance(data["network"].get("name"), str)
         and isinstance(data["network"].get("kwargs", {}), dict), "network must be {name, kwargs}"),
        (not isinstance(data["network"], dict) or not isinstance(data["network"].get("kwargs", {}), dict)
         or data["network"].get("kwargs", {}).get("pretrained", False) is False,
         "network.kwargs.pretrained must be false: a bundle carries its own weights and nothing is downloaded"),
        (_is_list(data["spacing"], (int, float), 3) and all(low <= s <= high for s in data["spacing"]),
         f"spacing: 3 numbers from {low} to {high} mm"),
        (isinstance(data["intensity"], dict) and data["intensity"].get("kind") in INTENSITY_KINDS,
         f"intensity.kind must be one of {INTENSITY_KINDS}"),
        (_intensity_ok(data["intensity"]),
         f"intensity: window [low, high] within ±{MAX_HU:g} HU (ct) or percentiles [low, high] within 0–100 (mr), "
         "low < high"),
        (_is_list(data["patch_size"], int, 3) and min(data["patch_size"], default=0) > 0
         and max(data["patch_size"]) <= MAX_PATCH, f"patch_size: 3 integers from 1 to {MAX_PATCH}"),
        (_is_number(data["overlap"]) and 0 <= data["overlap"] <= MAX_OVERLAP, f"overlap must be in [0, {MAX_OVERLAP}]"),
        (_is_int(data["batch_size"]) and 1 <= data["batch_size"] <= MAX_BATCH, f"batch_size must be 1 to {MAX_BATCH}"),
        (_window_ok(data["patch_size"], data["batch_size"]),
         f"patch_size × batch_size must be at most {MAX_WINDOW_VOXELS} voxels (one sliding-window batch)"),
        (_is_number(data["threshold"]) and 0 < data["threshold"] < 1, "threshold must be in (0, 1)"),
        (_is_number(data["min_lesion_mm3"]) and 0 <= data["min_lesion_mm3"] <= MAX_LESION_MM3,
         f"min_lesion_mm3 must be in [0, {MAX_LESION_MM3:g}]"),
        (_outline_ok(data.get("outline_threshold"), data["threshold"]), "outline_threshold must be in (0, threshold]"),
        (_is_list(data.get("flip_axes", []), int) and len(set(data.get("flip_axes", []))) == len(data.get("flip_axes", []))
         and set(data.get("flip_axes", [])) <= {0, 1, 2}, "flip_axes: distinct axes among 0, 1, 2"),
        (_is_list(data.get("input_requirements", []), str)
         and set(data.get("input_requirements", [])) <= set(REQUIREMENT_CHECKS),
         f"input_requirements: a list of {sorted(REQUIREMENT_CHECKS)}"),
        (isinstance(data["labels"], dict), "labels must be an object"),
        (isinstance(data.get("pipeline", {}), dict) and (data.get("pipeline", {}).get("format") == "monai-bundle")
         == (isinstance(data["intensity"], dict) and data["intensity"].get("kind") == "bundle"),
         "pipeline (an imported MONAI bundle's, format monai-bundle) goes with intensity.kind 'bundle', and only then"),
        *[(isinstance(data.get(key, {}), dict), f"{key} must be an object") for key in ("provenance", "metrics")],
        (isinstance(data["weights"], dict) and data["weights"].get("file") == WEIGHTS_FILE
         and isinstance(data["weights"].get("sha256"), str) and len(data["weights"]["sha256"]) == 64,
         f"weights must be {{file: {WEIGHTS_FILE}, sha256: 64 hex digits}}"),
    ]
    return [message for ok, message in checks if not ok]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _window_ok(patch: Any, batch: Any) -> bool:
    """Patch voxels × batch within `MAX_WINDOW_VOXELS` (bad values are reported by their own checks)."""
    if not (_is_list(patch, int, 3) and _is_int(batch)):
        return True
    return math.prod(patch) * batch <= MAX_WINDOW_VOXELS


def _outline_ok(outline: Any, threshold: Any) -> bool:
    """No outline threshold, or one in (0, threshold] (a bad threshold is reported by its own check)."""
    if outline is None or not isinstance(threshold, (int, float)):
        return True
    return _is_number(outline) and 0 < outline <= threshold


def _intensity_ok(intensity: Any) -> bool:
    """The normalisation's numbers: a CT window, or MR percentiles (optional, default 0.5 and 99.5)."""
    if not isinstance(intensity, dict) or intensity.get("kind") == "bundle":
        return True  # reported by the kind check; a bundle's intensity steps are in its pipeline
    if intensity.get("kind") == "ct":
        pair, low_bound, high_bound = intensity.get("window"), -MAX_HU, MAX_HU
    else:
        pair, low_bound, high_bound = intensity.get("percentiles", [0.5, 99.5]), 0.0, 100.0
    return _is_list(pair, (int, float), 2) and low_bound <= pair[0] < pair[1] <= high_bound


def _is_list(value: Any, kind, length: int | None = None) -> bool:
    return (
        isinstance(value, list)
        and (length is None or len(value) == length)
        and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
    )


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


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bundle_files(path: Path) -> tuple[bytes, bytes]:
    """(model.json bytes, weights.pt bytes) from a folder or a zip, refusing unsafe files and zip entries."""
    if path.is_dir():
        return _read_member(path, SPEC_FILE, MAX_SPEC_BYTES), _read_member(path, WEIGHTS_FILE, MAX_WEIGHTS_BYTES)
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                prefix = _zip_prefix(archive, path)
                return (_read_zip_member(archive, prefix + SPEC_FILE, MAX_SPEC_BYTES, path),
                        _read_zip_member(archive, prefix + WEIGHTS_FILE, MAX_WEIGHTS_BYTES, path))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as error:
            raise ModelBundleError(f"{path}: corrupt or unsupported zip ({error})") from None
    raise ModelBundleError(f"{path}: not a model bundle (a folder or .zip with {SPEC_FILE} and {WEIGHTS_FILE})")


def _read_member(folder: Path, name: str, limit: int) -> bytes:
    """A regular file of the bundle folder, not a link leading out of it, at most ``limit`` bytes."""
    member = folder / name
    try:
        if not member.resolve().is_relative_to(folder.resolve()):  # RuntimeError: a loop of links
            raise ModelBundleError(f"{member}: a link to {member.resolve()}, outside the bundle; copy the file instead")
        info = member.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            raise ModelBundleError(f"{member}: not a regular file")
        if info.st_size > limit:
            raise ModelBundleError(f"{member}: {info.st_size} bytes, more than the {limit} bytes allowed")
        with member.open("rb") as stream:
            return stream.read(limit + 1)[:limit]
    except OSError as error:
        raise ModelBundleError(f"{folder}: not a model bundle ({error.strerror}: {name})") from None
    except RuntimeError:
        raise ModelBundleError(f"{folder}: not a model bundle ({name} is a loop of symbolic links)") from None


def _read_zip_member(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """A zip member, refused by its declared size before any byte is decompressed, and read with a bound."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelBundleError(f"{path}: zip lacks {name!r}") from None
    if info.file_size > limit:
        raise ModelBundleError(f"{path}: {name} would decompress to {info.file_size} bytes, more than {limit} allowed")
    with archive.open(info) as stream:
        return stream.read(limit + 1)[:limit]


def safe_zip_names(archive: zipfile.ZipFile, path: Path) -> list[str]:
    """The zip's entry names; absolute, drive-letter, backslash, '..' and duplicate entries are refused."""
    names = archive.namelist()
    unsafe = [n for n in names if n.startswith("/") or ".." in Path(n).parts or "\\" in n or n[1:2] == ":"]
    if unsafe:
        raise ModelBundleError(f"{path}: unsafe paths in zip: {unsafe[:5]}")
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ModelBundleError(f"{path}: zip holds duplicate entries: {duplicates[:5]}")
    return names


def _zip_prefix(archive: zipfile.ZipFile, path: Path) -> str:
    """'' when model.json is at the zip's root, 'folder/' when the zip holds one bundle folder.

    Refuses absolute, drive-letter, backslash and '..' entries and duplicate names (which tools resolve differently).
    """
    names = safe_zip_names(archive, path)
    specs = [n for n in names if Path(n).name == SPEC_FILE]
    if len(specs) != 1 or len(Path(specs[0]).parts) > 2:
        raise ModelBundleError(f"{path}: zip must hold exactly one {SPEC_FILE} at its root or in one folder")
    return specs[0][: -len(SPEC_FILE)]


def read_spec(path: Path) -> ModelSpec:
    """Only the validated spec of a bundle (no weights read beyond the file): light, for listings."""
    spec_bytes = _read_member(path, SPEC_FILE, MAX_SPEC_BYTES) if path.is_dir() else _read_bundle_files(path)[0]
    return _parse_spec(spec_bytes, path)


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
        spec_bytes, weights = _read_bundle_files(path)
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
