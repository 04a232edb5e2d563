"""Privacy and determinism: no network, no patient identifiers in outputs or logs, private temporary files that
are always removed, and byte-identical results for the same input, model and settings.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import make_volume, write_series, write_threshold_bundle

from LesionDetectLib import cli, writers
from LesionDetectLib.bundles import import_model, list_models, load_model
from LesionDetectLib.detect import detect
from LesionDetectLib.errors import OutputError
from LesionDetectLib.io import read_volume
from LesionDetectLib.writers import atomic

PHI = {  # DICOM tag → a value that must never leave the input
    "0010|0010": "Doe^Jane",  # Patient's Name
    "0010|0020": "PATIENT-ID-42",  # Patient ID
    "0010|0030": "19700101",  # Patient's Birth Date
    "0010|1000": "OTHER-ID-77",  # Other Patient IDs
    "0010|1040": "1 Main Street",  # Patient's Address
    "0008|0090": "Smith^John",  # Referring Physician's Name
    "0008|0050": "ACC-123456",  # Accession Number
    "0008|0080": "St Elsewhere Hospital",  # Institution Name
}
NEEDLES = [b"Doe", b"Jane", b"PATIENT-ID-42", b"19700101", b"1970-01-01", b"OTHER-ID-77", b"Main Street", b"Smith",
           b"ACC-123456", b"Elsewhere"]
DETERMINISTIC = (".lesions.csv", ".lesions.json", ".mrk.json", ".probability.nrrd")
DICOM_SEG = ".seg.dcm"
"""The one output that carries patient identifiers: a DICOM Segmentation must, for an archive to file it."""
REQUIRED_IN_DICOM_SEG = [b"Doe", b"Jane", b"PATIENT-ID-42", b"19700101", b"Smith", b"ACC-123456"]
"""Patient's name, ID and birth date, referring physician, accession number (Patient and General Study modules)."""
WRITES_DICOM_SEG = importlib.util.find_spec("highdicom") is not None


def write_identified_series(folder: Path, array: np.ndarray) -> Path:
    """An axial CT series carrying patient-identifying tags."""
    frame_of_reference = {"0020|0052": "1.2.826.0.1.3680043.2.1125.7.5"}  # a DICOM SEG references it
    return write_series(folder, array, uid="1.2.826.0.1.3680043.2.1125.7", extra_tags={**PHI, **frame_of_reference})


def identified_ct() -> np.ndarray:
    array = np.full((8, 40, 48), -1000, np.int16)
    array[:, 6:34, 6:42] = 30  # body
    array[3:6, 12:20, 14:24] = 80  # a bright lesion
    array[2:4, 25:29, 30:35] = 75  # and a second one
    return array


def found_in(data: bytes) -> list[bytes]:
    return [needle for needle in NEEDLES if needle.lower() in data.lower()]


def readable_bytes(path: Path) -> bytes:
    """The file's bytes, with a NRRD's gzip-compressed voxel data also inflated (so a hidden string shows)."""
    data = path.read_bytes()
    if path.name.endswith(".nrrd") and b"\n\n" in data:
        header, _, payload = data.partition(b"\n\n")
        if b"encoding: gzip" in header:
            data += gzip.decompress(payload)
    return data


def lesiondetect(*args, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "LesionDetectLib", *map(str, args)], capture_output=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same DICOM series, model and settings, run twice through the command line (jsonl, then the bar)."""
    root = tmp_path_factory.mktemp("privacy")
    series = write_identified_series(root / "series", identified_ct())
    bundle = write_threshold_bundle(root / "bundle")
    runs = []
    for run, progress in enumerate(("jsonl", "bar")):
        temp = root / f"tmp{run}"
        temp.mkdir()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "LESIONDETECT_MODELS": str(root / "models"), "TMPDIR": str(temp)}
        out = root / f"out{run}"
        done = lesiondetect("detect", series, "-o", out, "--model", bundle, "--progress", progress, "--device", "cpu",
                            "--save-probability", "--save-surfaces", "stl", *["--dicom-seg"] * WRITES_DICOM_SEG,
                            env=env)
        assert done.returncode == 0, done.stderr.decode()
        runs.append((done, out, temp))
    return series, runs


def test_the_input_really_carries_the_identifiers(two_runs):
    series, _ = two_runs
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(sorted(series.iterdir())[0]))
    reader.ReadImageInformation()
    assert reader.GetMetaData("0010|0010").strip() == "Doe^Jane"
    assert reader.GetMetaData("0010|0030").strip() == "19700101"
    assert found_in(b"".join(p.read_bytes() for p in series.iterdir()))


def test_no_identifier_in_any_output_file_or_log(two_runs):
    _, runs = two_runs
    for done, out, _ in runs:
        files = [p for p in out.rglob("*") if p.is_file() and not p.name.endswith(DICOM_SEG)]
        assert len(files) >= 6  # seg, points, csv, json, probability, at least one surface
        for path in files:
            assert found_in(readable_bytes(path)) == [], path
        assert found_in(done.stdout) == [] and found_in(done.stderr) == []
    assert b"lesion" in runs[1][0].stdout  # the lesion table was printed, and checked


@pytest.mark.skipif(not WRITES_DICOM_SEG, reason="the DICOM SEG writer needs highdicom")
def test_the_dicom_seg_carries_only_the_identifiers_dicom_requires(two_runs):
    _, runs = two_runs
    for _, out, _ in runs:
        assert found_in((out / f"series{DICOM_SEG}").read_bytes()) == REQUIRED_IN_DICOM_SEG


def test_no_temporary_file_is_left_in_the_output_or_the_temp_folder(two_runs):
    _, runs = two_runs
    for _, out, temp in runs:
        assert [p for p in out.rglob("*") if p.name.startswith(".")] == []
        assert list(temp.iterdir()) == []


def test_same_input_model_and_settings_give_byte_identical_results(two_runs):
    _, runs = two_runs
    (_, first, _), (_, second, _) = runs
    assert json.loads((first / "series.lesions.json").read_text())["lesions"], "no lesion found: a vacuous test"
    for suffix in DETERMINISTIC:
        assert (first / f"series{suffix}").read_bytes() == (second / f"series{suffix}").read_bytes(), suffix
    surfaces = sorted(p.name for p in (first / "series.surfaces").iterdir())
    assert surfaces and surfaces == sorted(p.name for p in (second / "series.surfaces").iterdir())
    for name in surfaces:
        assert (first / "series.surfaces" / name).read_bytes() == (second / "series.surfaces" / name).read_bytes()


def test_segmentation_differs_only_by_pynrrds_timestamp_comment(two_runs):
    """pynrrd writes '# on <date>(GMT).' into every header; everything else of the .seg.nrrd is identical."""
    _, runs = two_runs
    first, second = (out / "series.seg.nrrd" for _, out, _ in runs)

    def without_timestamp(path: Path) -> bytes:
        header, _, data = path.read_bytes().partition(b"\n\n")
        lines = [line for line in header.split(b"\n") if not line.startswith(b"# on ")]
        return b"\n".join(lines) + b"\n\n" + data

    assert without_timestamp(first) == without_timestamp(second)


# ------------------------------------------------------------------------------------------------ network


class NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        raise AssertionError("a socket was opened")


@pytest.fixture
def no_network(monkeypatch):
    import monai.networks.nets  # noqa: F401  (imported before sockets go: MONAI subclasses nothing from socket)
    import torch  # noqa: F401

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", NoSocket)
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "create_server"):
        monkeypatch.setattr(socket, name, refuse)


def test_detection_end_to_end_opens_no_socket(tmp_path, no_network, isolated_models, capsys):
    array = identified_ct()
    series = write_identified_series(tmp_path / "series", array)
    bundle = write_threshold_bundle(tmp_path / "bundle")
    nifti = tmp_path / "case.nii.gz"
    sitk.WriteImage(make_volume(background=-1000.0).to_sitk(), str(nifti))
    import_model(bundle)
    assert [entry.name for entry in list_models() if entry.source == "user"] == ["test-threshold-ct"]
    model = load_model("test-threshold-ct")
    for source in (series, nifti):
        result = detect(read_volume(source), model, device="cpu")
        result.write(tmp_path / "out", save_probability=True, surface_format="vtp")
    previous = signal.getsignal(signal.SIGTERM)  # cli.main installs its own handler
    try:
        assert cli.main(["detect", str(series), str(nifti), "-o", str(tmp_path / "cli"), "--model", "test-threshold-ct",
                         "--progress", "jsonl", "--device", "cpu"]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert found_in(capsys.readouterr().out.encode()) == []


# ------------------------------------------------------------------------------------- temporary files


@pytest.fixture
def open_umask():
    """A permissive umask (0o000): temporary files must still be private."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_temporary_outputs_are_private_while_written_and_removed(tmp_path, monkeypatch, open_umask):
    volume = make_volume(background=-1000.0)
    result = detect(volume, load_model(write_threshold_bundle(tmp_path / "bundle")), device="cpu")
    seen: dict[str, int] = {}
    for name in ("write_segmentation", "write_points", "write_table_csv", "write_table_json", "write_probability",
                 "write_surfaces"):
        real = getattr(writers, name)

        def spy(path, *args, real=real, **kwargs):
            path = Path(path)
            assert path.name.startswith("."), path  # a hidden temporary name, not the final one
            seen[path.name] = stat.S_IMODE(path.stat().st_mode)
            return real(path, *args, **kwargs)

        monkeypatch.setattr(writers, name, spy)
    out = tmp_path / "out"
    paths = result.write(out, save_probability=True, surface_format="stl")
    folders = {name: mode for name, mode in seen.items() if name.startswith(".synthetic.surfaces.")}
    files = {name: mode for name, mode in seen.items() if name not in folders}
    assert len(files) == 5 and set(files.values()) == {0o600}, seen
    assert len(folders) == 1 and set(folders.values()) == {0o700}, seen
    assert [p for p in out.rglob("*") if p.name.startswith(".")] == []
    assert stat.S_IMODE(paths["points"].stat().st_mode) == 0o666  # published with the (open) umask
    assert stat.S_IMODE(paths["surfaces"].stat().st_mode) == 0o777


@pytest.mark.parametrize("failure", [OutputError("disk full"), KeyboardInterrupt(), ValueError("bug")])
def test_temporary_outputs_are_removed_after_a_failure(tmp_path, monkeypatch, failure):
    volume = make_volume(background=-1000.0)
    result = detect(volume, load_model(write_threshold_bundle(tmp_path / "bundle")), device="cpu")
    real = writers.write_surfaces

    def half_then_fail(path, *args, **kwargs):
        real(path, *args, **kwargs)  # the temporary folder now holds meshes
        assert any(Path(path).iterdir())
        raise failure

    monkeypatch.setattr(writers, "write_surfaces", half_then_fail)
    out = tmp_path / "out"
    with pytest.raises(type(failure)):
        result.write(out, save_probability=True, surface_format="stl")
    assert list(out.iterdir()) == []


def test_writability_probe_is_private_and_removed(tmp_path, monkeypatch, open_umask):
    modes = []
    real = atomic.tempfile.mkstemp

    def spy(*args, **kwargs):
        descriptor, name = real(*args, **kwargs)
        modes.append(stat.S_IMODE(os.stat(name).st_mode))
        return descriptor, name

    monkeypatch.setattr(atomic.tempfile, "mkstemp", spy)
    atomic.check_writable(tmp_path / "out")
    assert modes == [0o600] and list((tmp_path / "out").iterdir()) == []
