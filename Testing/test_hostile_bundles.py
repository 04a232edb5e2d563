"""Hostile model bundles (beyond test_bundles.py): nothing outside the bundle is read, nothing is executed or
downloaded, nothing unbounded is decompressed, and every refusal is one `ModelBundleError`.

On network arguments: a bundle's ``network.kwargs`` are JSON, passed as data to a class from the allow-list in
`networks.py`. MONAI accepts layer names as strings (``"act": "prelu"`` or ``["prelu", {...}]``); those are
looked up in MONAI's own layer registry (`LayerFactory` → `look_up_option`), never imported or evaluated, so a
dotted path such as ``"torch.nn.Identity"`` or ``"os.system"`` is simply an unknown option. That is accepted
as safe and tested below. The one argument that would reach out is ``pretrained`` (FlexibleUNet downloads
backbone weights): `model.json` must leave it false.
"""

from __future__ import annotations

import ast
import errno
import json
import math
import os
import re
import signal
import socket
import struct
import zipfile
from pathlib import Path

import pytest
from conftest import fuzz_settings, threshold_bundle_spec, write_threshold_bundle
from hypothesis import given
from hypothesis import strategies as st

from LesionDetectLib import bundle_files
from LesionDetectLib.bundle_files import sha256_of
from LesionDetectLib.bundles import import_model, open_bundle, read_spec
from LesionDetectLib.errors import LesionDetectError, ModelBundleError

LIBRARY = Path(__file__).resolve().parents[1] / "LesionDetectLib"


def rewrite_spec(folder: Path, **changes) -> None:
    spec = json.loads((folder / "model.json").read_text())
    spec.update(changes)
    (folder / "model.json").write_text(json.dumps(spec))


def zip_bundle(folder: Path, archive: Path, extra: list[tuple[str, bytes]] = (), prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for name in ("model.json", "weights.pt"):
            out.write(folder / name, prefix + name)
        for name, data in extra:
            out.writestr(name, data)
    return archive


@pytest.fixture
def within_seconds():
    """Fail (instead of hanging) when the test body blocks for more than 20 s."""

    def expire(signum, frame):
        raise TimeoutError("blocked: no answer within 20 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a name or open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    for name in ("create_connection", "getaddrinfo", "gethostbyname"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


# ------------------------------------------------------------------------------------- files of a folder


@pytest.mark.parametrize("file", ["../x", "/etc/passwd", "sub/weights.pt", "weights.pt/../../x", "..\\weights.pt"])
def test_weights_entry_naming_another_file_is_refused(threshold_bundle, file):
    spec = json.loads((threshold_bundle / "model.json").read_text())
    rewrite_spec(threshold_bundle, weights={**spec["weights"], "file": file})
    with pytest.raises(ModelBundleError, match="weights must be"):
        open_bundle(threshold_bundle)


@pytest.mark.parametrize("name", ["weights.pt", "model.json"])
def test_symlink_leading_out_of_the_bundle_is_refused_even_with_a_matching_checksum(threshold_bundle, tmp_path, name):
    outside = tmp_path / f"outside-{name}"
    outside.write_bytes((threshold_bundle / name).read_bytes())  # same content: the checksum would match
    (threshold_bundle / name).unlink()
    (threshold_bundle / name).symlink_to(outside)
    with pytest.raises(ModelBundleError, match="outside the bundle"):
        open_bundle(threshold_bundle)


def test_symlink_inside_the_bundle_is_fine(threshold_bundle):
    (threshold_bundle / "weights.pt").rename(threshold_bundle / "weights-v1.pt")
    (threshold_bundle / "weights.pt").symlink_to("weights-v1.pt")
    assert open_bundle(threshold_bundle).network("cpu") is not None


def test_links_to_devices_and_fifos_are_refused_without_blocking(threshold_bundle, within_seconds):
    (threshold_bundle / "weights.pt").unlink()
    (threshold_bundle / "weights.pt").symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(ModelBundleError, match="outside the bundle"):
        open_bundle(threshold_bundle)
    (threshold_bundle / "weights.pt").unlink()
    os.mkfifo(threshold_bundle / "weights.pt")  # opening it would wait for a writer forever
    with pytest.raises(ModelBundleError, match="not a regular file"):
        open_bundle(threshold_bundle)


def test_huge_files_are_refused_by_size_before_reading(threshold_bundle, within_seconds):
    with (threshold_bundle / "weights.pt").open("r+b") as weights:  # sparse: 2 GiB + 1 byte, no disk used
        weights.truncate(bundle_files.MAX_WEIGHTS_BYTES + 1)
    with pytest.raises(ModelBundleError, match=r"more than the \d+ bytes allowed"):
        open_bundle(threshold_bundle)
    (threshold_bundle / "model.json").write_text(" " * (bundle_files.MAX_SPEC_BYTES + 1) + "{}")
    with pytest.raises(ModelBundleError, match="more than"):
        read_spec(threshold_bundle)


def test_deeply_nested_json_is_an_error_not_a_crash(threshold_bundle):
    (threshold_bundle / "model.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelBundleError, match="not valid JSON"):
        open_bundle(threshold_bundle)


# ------------------------------------------------------------------------------------------------- zips


def test_zip_bomb_member_is_refused_by_its_declared_size_before_decompressing(threshold_bundle, tmp_path, monkeypatch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(threshold_bundle / "model.json", "model.json")
        out.writestr("weights.pt", bytes(64 * 2**20))  # 64 MiB of zeros, about 64 KiB compressed
    assert archive.stat().st_size < 2**20
    monkeypatch.setattr(bundle_files, "MAX_WEIGHTS_BYTES", 2**20)
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: (
        opened.append(getattr(name, "filename", name)), real_open(self, name, *a, **k))[1])
    with pytest.raises(ModelBundleError, match=r"weights.pt would decompress to 67108864 bytes"):
        open_bundle(archive)
    assert "weights.pt" not in opened


def _central_header(data: bytes, name: bytes) -> int:
    """Offset of the central-directory header of the member ``name``."""
    position = data.find(b"PK\x01\x02")
    while position >= 0:
        length = struct.unpack("<H", data[position + 28 : position + 30])[0]
        if data[position + 46 : position + 46 + length] == name:
            return position
        position = data.find(b"PK\x01\x02", position + 4)
    raise AssertionError(f"{name!r} not in the central directory")


def test_zip_member_larger_than_it_declares_is_refused(threshold_bundle, tmp_path):
    """A doctored size field: reading stops at the declared size and the member's CRC check fails."""
    archive = zip_bundle(threshold_bundle, tmp_path / "liar.zip")
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zipped:
        info = zipped.getinfo("weights.pt")
    for offset in (info.header_offset + 22, _central_header(data, b"weights.pt") + 24):  # uncompressed size fields
        assert struct.unpack("<I", data[offset : offset + 4])[0] == info.file_size
        data[offset : offset + 4] = struct.pack("<I", 100)
    archive.write_bytes(bytes(data))
    with pytest.raises(ModelBundleError, match="corrupt or unsupported zip"):
        open_bundle(archive)


@pytest.mark.parametrize("entry", ["/model.json", "/etc/evil", "C:/evil.txt", "c:evil", "..\\evil", "a/../../evil"])
def test_zip_with_absolute_drive_or_parent_paths_is_refused(threshold_bundle, tmp_path, entry):
    archive = zip_bundle(threshold_bundle, tmp_path / "evil.zip", [(entry, b"x")])
    with pytest.raises(ModelBundleError, match="unsafe paths in zip"):
        open_bundle(archive)


@pytest.mark.parametrize("duplicate", ["weights.pt", "model.json", "notes.txt"])
def test_zip_with_duplicate_entries_is_refused(threshold_bundle, tmp_path, duplicate):
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = zip_bundle(threshold_bundle, tmp_path / "dup.zip", [("notes.txt", b"x"), (duplicate, b"other")])
    with pytest.raises(ModelBundleError, match="duplicate entries"):
        open_bundle(archive)


@fuzz_settings(60, deadline_s=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_damaged_zip_bundles_load_or_are_refused_in_one_error(tmp_path_factory, flips, cut):
    root = tmp_path_factory.mktemp("zip")
    archive = zip_bundle(write_threshold_bundle(root / "bundle"), root / "model.zip", prefix="m/")
    data = bytearray(archive.read_bytes())
    for position, value in flips:
        data[position % len(data)] = value
    archive.write_bytes(bytes(data[: None if cut is None else cut % len(data)]))
    try:
        open_bundle(archive).network("cpu")
    except ModelBundleError as error:
        assert "\n" not in str(error)


# ------------------------------------------------------------------------------------ model.json content


@pytest.mark.parametrize("name", ["..", ".", "../../evil", "a/b", "a\\b", ".hidden", "", " ", "x\x00y", "tab\tname",
                                  "trailing.", "x" * 129])
def test_bundle_names_that_are_not_a_plain_folder_name_are_refused(threshold_bundle, isolated_models, name):
    rewrite_spec(threshold_bundle, name=name)
    with pytest.raises(ModelBundleError, match="plain folder name"):
        import_model(threshold_bundle)  # '..' would otherwise replace the models folder's parent
    assert not isolated_models.exists() or list(isolated_models.iterdir()) == []
    assert threshold_bundle.parent.is_dir()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("intensity", {"kind": "ct", "window": "abc"}, "intensity"),
    ("intensity", {"kind": "ct", "window": [100, 0]}, "intensity"),
    ("intensity", {"kind": "mr", "percentiles": [-5, 200]}, "intensity"),
    ("patch_size", [100000, 32, 32], "patch_size"),
    ("spacing", [float("nan"), 1.0, 1.0], "spacing"),
])
def test_values_that_would_fail_or_explode_later_are_refused_up_front(threshold_bundle, field, value, message):
    rewrite_spec(threshold_bundle, **{field: value})
    with pytest.raises(ModelBundleError, match=message):
        open_bundle(threshold_bundle)


def test_pretrained_networks_are_refused_before_anything_is_built(threshold_bundle, no_network):
    network = {"name": "FlexibleUNet", "kwargs": {"in_channels": 1, "out_channels": 1, "backbone": "efficientnet-b0",
                                                  "pretrained": True}}
    rewrite_spec(threshold_bundle, network=network)
    with pytest.raises(ModelBundleError, match="pretrained must be false"):
        open_bundle(threshold_bundle)


@pytest.mark.parametrize("kwargs", [
    {"act": {"__class__": "os.system"}},
    {"act": ["os.system", {"command": "touch /tmp/pwned"}]},
    {"act": "torch.nn.Identity"},
    {"norm": ["instance", {"__class__": "subprocess.Popen"}]},
    {"dropout": {"__reduce__": "eval"}},
    {"spatial_dims": 7},
    {"features": "abc"},
])
def test_network_arguments_cannot_smuggle_objects(threshold_bundle, kwargs, no_network, tmp_path):
    rewrite_spec(threshold_bundle, network={"name": "BasicUNet", "kwargs": {"spatial_dims": 3, **kwargs}})
    model = open_bundle(threshold_bundle)
    with pytest.raises(ModelBundleError, match="BasicUNet") as caught:
        model.network("cpu")
    assert "\n" not in str(caught.value)
    assert not Path("/tmp/pwned").exists()


def test_layer_names_are_looked_up_in_monais_registry_only(threshold_bundle):
    rewrite_spec(threshold_bundle, network={"name": "BasicUNet", "kwargs": {"spatial_dims": 3, "act": "torch.nn.Identity"}})
    with pytest.raises(ModelBundleError, match="Unsupported option 'TORCH.NN.IDENTITY'"):
        open_bundle(threshold_bundle).network("cpu")
    from LesionDetectLib.networks import build_network

    network = build_network("BasicUNet", {"spatial_dims": 3, "features": [4, 4, 4, 4, 4, 4],
                                          "act": ["prelu", {"num_parameters": 1}]})  # a registry name: accepted
    assert any(type(module).__name__ == "PReLU" for module in network.modules())


@pytest.mark.parametrize("kwargs", [{"in_channels": 0}, {"in_channels": -1}, {"level": "x"}])
def test_arguments_that_crash_a_network_constructor_are_one_error(threshold_bundle, kwargs):
    rewrite_spec(threshold_bundle, network={"name": "IntensityThreshold", "kwargs": kwargs})
    with pytest.raises(ModelBundleError, match="IntensityThreshold"):
        open_bundle(threshold_bundle).network("cpu")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 600) | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -1e308, 1e-300, 10**30, 2**63, 0.95, 1024, 1025, 512, 513, "NaN", ""])
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def spec_paths(value, path=()) -> list[tuple]:
    """Every field of a model.json, nested ones included: ('spacing', 1), ('network', 'kwargs', 'level'), …"""
    paths = [path] if path else []
    if isinstance(value, dict):
        paths += [p for key, item in value.items() for p in spec_paths(item, (*path, key))]
    elif isinstance(value, list):
        paths += [p for index, item in enumerate(value) for p in spec_paths(item, (*path, index))]
    return paths


SPEC_PATHS = spec_paths({**threshold_bundle_spec(), "weights": {"file": "", "sha256": ""}, "format_version": 1,
                         "provenance": {"dataset": ""}, "metrics": {"dice": 0.5}}) + [("surprise",),
                                                                                       ("network", "kwargs", "bogus")]


def _edit(spec: dict, path: tuple, value, delete: bool) -> None:
    parent = spec
    for key in path[:-1]:
        parent = parent.setdefault(key, {}) if isinstance(parent, dict) else parent[key]  # optional fields: add
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    elif isinstance(parent, list) and delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


def _leaves(value) -> list:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def assert_within_the_bundle_limits(spec) -> None:
    """An oracle written apart from bundles.py: what an accepted model.json must satisfy."""
    numbers = [v for v in _leaves(spec.to_dict()) if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers), spec
    assert all(0.01 <= s <= 100 for s in spec.spacing) and len(spec.spacing) == 3
    assert len(spec.patch_size) == 3 and all(type(p) is int and 1 <= p <= 512 for p in spec.patch_size)
    assert type(spec.batch_size) is int and 1 <= spec.batch_size <= 1024
    assert spec.patch_size[0] * spec.patch_size[1] * spec.patch_size[2] * spec.batch_size <= 2**26
    assert 0 <= spec.overlap <= 0.9 and 0 < spec.threshold < 1 and 0 <= spec.min_lesion_mm3 <= 1e9
    bounds = spec.intensity.get("window", spec.intensity.get("percentiles", [0.5, 99.5]))
    assert len(bounds) == 2 and bounds[0] < bounds[1] and all(abs(b) <= 1e5 for b in bounds)
    assert all(isinstance(text, str) for text in (spec.name, spec.version, spec.description, spec.intended_use))


@fuzz_settings(150, deadline_s=None)
@given(path=st.sampled_from(SPEC_PATHS), value=json_values, delete=st.booleans(), data=st.data())
def test_every_model_json_field_is_checked_and_what_passes_works(tmp_path_factory, path, value, delete, data,
                                                                  no_network, monkeypatch):
    """Any field of model.json, NaN and Infinity included: refused in one line (exit 4), or a bundle whose numbers
    are finite and in range, that `import_model` installs exactly when its network builds and its weights load,
    and whose detection on a small volume finishes with a result or one error."""
    from conftest import make_volume

    from LesionDetectLib.detect import detect

    root = tmp_path_factory.mktemp("spec")
    monkeypatch.setenv("LESIONDETECT_MODELS", str(root / "installed"))
    folder = write_threshold_bundle(root / "bundle")
    spec = json.loads((folder / "model.json").read_text())
    _edit(spec, path, value, delete)
    (folder / "model.json").write_text(json.dumps(spec))
    try:
        model = open_bundle(folder)
    except ModelBundleError as error:
        assert "\n" not in str(error) and len(str(error)) < 1000, str(error)
        return
    assert_within_the_bundle_limits(model.spec)
    try:
        model.network("cpu")
    except ModelBundleError as error:
        assert "\n" not in str(error)
        with pytest.raises(ModelBundleError):
            import_model(folder)
        assert not (root / "installed").exists() or list((root / "installed").iterdir()) == []
        return
    assert (import_model(folder) / "weights.pt").read_bytes() == (folder / "weights.pt").read_bytes()
    volume = make_volume(shape_kji=(10, 12, 12), spacing=(1.0, 1.0, 1.0), background=-1000.0)
    previous = signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("detect took > 30 s")))
    signal.alarm(30)
    try:
        result = detect(volume, model, device="cpu", force_modality=True)
        assert result.label_map.shape == volume.array.shape
    except LesionDetectError as error:
        assert "\n" not in str(error)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------- the source itself

FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib", "yaml",
                     "socket", "urllib", "http", "requests", "urllib3", "ftplib", "smtplib", "telnetlib"}
FORBIDDEN_ATTRIBUTES = {("os", "system"), ("os", "popen"), ("torch", "hub"), ("pickle", "load"), ("pickle", "loads"),
                        ("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"), ("yaml", "Loader")}
YAML_ALLOWED = {"monai_bundle/importer.py"}  # a MONAI bundle's inference.yaml, read with yaml.safe_load only
DYNAMIC_IMPORTS_ALLOWED = {"cli/__init__.py"}  # imports its own sub-command modules by fixed names


def library_sources():
    return sorted(LIBRARY.rglob("*.py"))


def _call_name(node: ast.Call) -> str:
    return ast.unparse(node.func)


def _problems(path: Path, root: Path = LIBRARY) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(root).as_posix()
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            problems += [f"{where}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES
                         and not (n == "yaml" and where in YAML_ALLOWED)]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_ATTRIBUTES:
                problems.append(f"{where}:{node.lineno} uses {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call):
            name = _call_name(node)
            keywords = {k.arg: k.value for k in node.keywords}
            literal = {k: v.value for k, v in keywords.items() if isinstance(v, ast.Constant)}
            if name in FORBIDDEN_CALLS:
                problems.append(f"{where}:{node.lineno} calls {name}()")
            if name in ("torch.load", "load") and literal.get("weights_only") is not True:
                problems.append(f"{where}:{node.lineno} calls {name}() without weights_only=True")
            if name.split(".")[-1] == "load" and literal.get("allow_pickle") is True:
                problems.append(f"{where}:{node.lineno} loads with allow_pickle=True")
            if literal.get("shell") is True:
                problems.append(f"{where}:{node.lineno} runs a shell")
            if "load_state_dict_from_url" in name or "download" in name.lower():
                problems.append(f"{where}:{node.lineno} downloads ({name})")
            if name.endswith("import_module") and where not in DYNAMIC_IMPORTS_ALLOWED:
                problems.append(f"{where}:{node.lineno} imports a module by a computed name")
    return problems


def test_library_source_has_no_eval_pickle_unsafe_load_or_network_use():
    sources = library_sources()
    assert len(sources) > 30 and LIBRARY / "bundles.py" in sources
    problems = [problem for path in sources for problem in _problems(path)]
    assert problems == []
    text = "\n".join(path.read_text(encoding="utf-8") for path in sources)
    assert not re.search(r"weights_only\s*=\s*False", text)
    assert re.search(r"torch\.load\([^)]*weights_only=True", text)  # the one place weights are read


def test_the_source_check_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nimport torch\nx = eval('1')\ntorch.load(f)\ntorch.load(f, weights_only=False)\n"
                   "import numpy as np\nnp.load(f, allow_pickle=True)\nimport os\nos.system('ls')\n")
    found = _problems(bad, root=tmp_path)
    assert len(found) == 6, found


def test_weights_are_read_only_after_the_checksum_matches(threshold_bundle, monkeypatch):
    """The order in open_bundle: checksum first; torch never sees bytes whose sha256 differs from model.json."""
    import torch

    loaded = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loaded.append(k) or {})
    weights = (threshold_bundle / "weights.pt").read_bytes()
    (threshold_bundle / "weights.pt").write_bytes(weights[:-1] + bytes([weights[-1] ^ 1]))
    with pytest.raises(ModelBundleError, match="checksum mismatch"):
        open_bundle(threshold_bundle).network("cpu")
    assert loaded == []
    (threshold_bundle / "weights.pt").write_bytes(weights)
    assert sha256_of(weights) == json.loads((threshold_bundle / "model.json").read_text())["weights"]["sha256"]
    with pytest.raises(ModelBundleError):  # the patched torch.load returns no tensors
        open_bundle(threshold_bundle).network("cpu")
    assert loaded == [{"map_location": "cpu", "weights_only": True}]


# ------------------------------------------------------------------------------ issue 20, items 6-10


def write_raw_spec(folder: Path, text: str) -> None:
    (folder / "model.json").write_text(text)


@pytest.mark.parametrize(("edit", "field"), [
    (lambda spec: spec["spacing"].__setitem__(1, "NaN"), "spacing"),
    (lambda spec: spec["spacing"].__setitem__(0, "Infinity"), "spacing"),
    (lambda spec: spec["intensity"]["window"].__setitem__(1, "Infinity"), "intensity"),
    (lambda spec: spec["intensity"]["window"].__setitem__(0, "-Infinity"), "intensity"),
    (lambda spec: spec.__setitem__("min_lesion_mm3", "Infinity"), "min_lesion_mm3"),
    (lambda spec: spec.__setitem__("overlap", "NaN"), "overlap"),
    (lambda spec: spec["network"]["kwargs"].__setitem__("level", "NaN"), "network.kwargs.level"),
    (lambda spec: spec["network"]["kwargs"].__setitem__("scale", "Infinity"), "network.kwargs.scale"),
    (lambda spec: spec.__setitem__("metrics", {"dice": "NaN"}), "metrics.dice"),
])
def test_nan_and_infinity_are_refused_naming_the_field(threshold_bundle, edit, field):
    """Item 6: Python's json reads NaN and Infinity; every number of a bundle must be finite."""
    spec = json.loads((threshold_bundle / "model.json").read_text())
    edit(spec)
    text = json.dumps(spec).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity").replace('"-Infinity"',
                                                                                             "-Infinity")
    write_raw_spec(threshold_bundle, text)
    with pytest.raises(ModelBundleError, match=re.escape(field)) as caught:
        open_bundle(threshold_bundle)
    assert caught.value.exit_code == 4 and "\n" not in str(caught.value)


@pytest.mark.parametrize(("field", "value"), [
    ("spacing", [1e-9, 1.0, 1.0]), ("spacing", [1e6, 1.0, 1.0]), ("spacing", [1e308, 1.0, 1.0]),
    ("min_lesion_mm3", 1e300), ("batch_size", 10**6), ("batch_size", 10**30), ("batch_size", True),
    ("patch_size", [512, 512, 512]), ("overlap", 0.99), ("intensity", {"kind": "ct", "window": [-1e300, 1e300]}),
    ("version", {"major": 1}), ("description", ["a", "list"]), ("format_version", True),
])
def test_absurd_values_are_refused_at_validation(threshold_bundle, field, value):
    """Items 6 and 10: in range, not only finite (a 512³ patch with batch 10⁶ took 4.4 GB on a 16×20×20 input)."""
    rewrite_spec(threshold_bundle, **{field: value})
    with pytest.raises(ModelBundleError, match=field):
        open_bundle(threshold_bundle)


def test_memory_estimate_includes_the_bundles_patch_and_batch(tmp_path, monkeypatch):
    """Item 10: a small input with a large patch × batch is refused with an estimate, before inference."""
    from conftest import make_volume

    from LesionDetectLib import infer, resources
    from LesionDetectLib.detect import detect

    bundle = write_threshold_bundle(tmp_path / "big", patch_size=[256, 256, 256], batch_size=4)
    monkeypatch.delenv(resources.SKIP_ENV, raising=False)
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 4 * 2**30)

    def forbidden(*args, **kwargs):
        raise AssertionError("inference started")

    monkeypatch.setattr(infer, "probabilities_with_fallback", forbidden)
    volume = make_volume(shape_kji=(16, 20, 20), spacing=(1.0, 1.0, 1.0), background=-1000.0)
    with pytest.raises(LesionDetectError, match=r"needs about \d+\.\d GiB of memory") as caught:
        detect(volume, open_bundle(bundle), device="cpu")
    assert "patch" in str(caught.value)
    small = resources.estimate_detect_bytes((16, 20, 20), (16, 20, 20), (32, 32, 32), 2)
    assert resources.estimate_detect_bytes((16, 20, 20), (16, 20, 20), (256, 256, 256), 4) > 100 * small


def test_symlink_loop_in_a_bundle_is_a_bundle_error(threshold_bundle, isolated_models):
    """Item 7: pathlib raises RuntimeError (not OSError) on a loop of links."""
    (threshold_bundle / "weights.pt").unlink()
    (threshold_bundle / "weights.pt").symlink_to("loop.pt")
    (threshold_bundle / "loop.pt").symlink_to("weights.pt")
    with pytest.raises(ModelBundleError) as caught:
        open_bundle(threshold_bundle)
    assert caught.value.exit_code == 4 and "weights.pt" in str(caught.value)
    with pytest.raises(ModelBundleError):
        import_model(threshold_bundle)
    (threshold_bundle / "model.json").rename(threshold_bundle / "spec.json")
    (threshold_bundle / "model.json").symlink_to("model.json")
    with pytest.raises(ModelBundleError):
        read_spec(threshold_bundle)


def _torch_bytes(value) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/lesiondetect-pwned",))


@pytest.mark.parametrize("change", [
    "unknown network", "bad arguments", "pickle with code", "empty weights", "junk weights", "wrong shape",
    "not a state dict",
])
def test_import_refuses_what_loading_would_refuse_and_installs_nothing(threshold_bundle, isolated_models, change):
    """Item 8: import runs the same validation as loading (network, arguments, weights_only state dict)."""
    import pickle

    import torch

    spec = json.loads((threshold_bundle / "model.json").read_text())
    weights = None
    if change == "unknown network":
        spec["network"] = {"name": "os.system", "kwargs": {}}
    elif change == "bad arguments":
        spec["network"]["kwargs"]["in_channels"] = -3
    elif change == "pickle with code":
        weights = pickle.dumps(_Payload())
    elif change == "empty weights":
        weights = b""
    elif change == "junk weights":
        weights = os.urandom(4096)
    elif change == "wrong shape":
        weights = _torch_bytes({"conv.weight": torch.zeros(2, 1, 1, 1, 1), "conv.bias": torch.zeros(2)})
    else:
        weights = _torch_bytes([torch.zeros(3)])
    if weights is not None:
        (threshold_bundle / "weights.pt").write_bytes(weights)
        spec["weights"]["sha256"] = sha256_of(weights)
    (threshold_bundle / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelBundleError) as caught:
        import_model(threshold_bundle)
    assert caught.value.exit_code == 4 and "\n" not in str(caught.value)
    assert not isolated_models.exists() or list(isolated_models.iterdir()) == []
    assert not Path("/tmp/lesiondetect-pwned").exists()


@pytest.mark.parametrize("problem", ["a file", "read-only", "no space"])
def test_unusable_models_folder_is_a_clear_exit_5(threshold_bundle, tmp_path, monkeypatch, capsys, problem):
    """Item 9: an unwritable or invalid LESIONDETECT_MODELS gives one line and exit 5, and leaves nothing."""
    from LesionDetectLib import cli

    folder = tmp_path / "models"
    if problem == "a file":
        folder.write_text("not a folder")
    else:
        folder.mkdir()
        failure = errno.EROFS if problem == "read-only" else errno.ENOSPC
        real_write_bytes = Path.write_bytes

        def failing_write(self, data):
            if folder in self.parents:
                raise OSError(failure, os.strerror(failure), str(self))
            return real_write_bytes(self, data)

        monkeypatch.setattr(Path, "write_bytes", failing_write)
    monkeypatch.setenv("LESIONDETECT_MODELS", str(folder))
    code = cli.main(["models", "import", str(threshold_bundle)])
    err = capsys.readouterr().err
    assert code == 5, err
    assert err.count("\n") == 1 and err.startswith("lesiondetect: error: ") and str(folder) in err, err
    if folder.is_dir():
        assert list(folder.iterdir()) == []


def test_models_folder_that_cannot_be_listed_is_a_clear_exit_5(tmp_path, monkeypatch, unlistable, capsys):
    from LesionDetectLib import cli

    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("LESIONDETECT_MODELS", str(folder))
    unlistable(folder)
    code = cli.main(["models", "list"])
    err = capsys.readouterr().err
    assert code == 5 and err == f"lesiondetect: error: models folder {folder} cannot be read: Permission denied\n"
