"""Shared fixtures: oblique, anisotropic synthetic volumes with known lesions, and tiny model bundles."""

from __future__ import annotations

import errno
import os
import struct
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

os.environ.setdefault("OMP_NUM_THREADS", "2")

from LesionDetectLib.volume import Volume  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is absent (../shared/data beside the checkout)"
)


def oblique_direction() -> np.ndarray:
    """A rotation of 30° about an oblique axis, with the j axis flipped: far from identity, still orthonormal."""
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    angle = np.deg2rad(30.0)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    return rotation @ np.diag([1.0, -1.0, 1.0]) @ np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]])


def make_volume(
    shape_kji=(24, 40, 36),
    spacing=(0.8, 0.9, 2.5),
    origin=(12.5, -40.25, 88.0),
    direction: np.ndarray | None = None,
    lesions: tuple[tuple[slice, slice, slice], ...] = ((slice(8, 14), slice(10, 18), slice(6, 14)),),
    background: float = 0.0,
    lesion_value: float = 100.0,
    seed: int | None = 0,
    name: str = "synthetic",
) -> Volume:
    """A volume with bright boxes (``[k, j, i]`` slices) on a dim, slightly noisy background."""
    rng = np.random.default_rng(seed)
    array = np.full(shape_kji, background, dtype=np.float32)
    if seed is not None:
        array += rng.uniform(0, 5, size=shape_kji).astype(np.float32)
    for box in lesions:
        array[box] = lesion_value
    return Volume(array, tuple(spacing), tuple(origin), oblique_direction() if direction is None else direction, name)


def box_centroid_lps(volume: Volume, box: tuple[slice, slice, slice]) -> np.ndarray:
    """Physical (LPS) centroid of a ``[k, j, i]`` box of voxels."""
    k, j, i = ((s.start + s.stop - 1) / 2.0 for s in box)
    return volume.ijk_to_lps()[:3] @ np.array([i, j, k, 1.0])


def threshold_bundle_spec(modality: str = "CT", spacing=(1.0, 1.0, 1.0), window=(0.0, 100.0)) -> dict:
    """A deterministic model: probability = sigmoid(40·(x − 0.5)) on the windowed intensity."""
    kwargs = {"in_channels": 1, "out_channels": 1, "level": 0.5, "scale": 40.0}
    intensity = {"kind": "ct", "window": list(window)} if modality == "CT" else {"kind": "mr", "percentiles": [0.5, 99.5]}
    return {
        "name": f"test-threshold-{modality.lower()}", "version": "0.0.1", "description": "test threshold model",
        "modality": modality, "intended_use": "tests", "input_channels": [modality],
        "network": {"name": "IntensityThreshold", "kwargs": kwargs}, "spacing": list(spacing),
        "intensity": intensity, "patch_size": [32, 32, 32], "overlap": 0.25, "batch_size": 2,
        "labels": {"0": "background", "1": "lesion"}, "threshold": 0.5, "min_lesion_mm3": 0.0,
    }


def write_threshold_bundle(folder: Path, **spec_overrides) -> Path:
    from LesionDetectLib.bundles import save_bundle
    from LesionDetectLib.networks import build_network

    spec = {**threshold_bundle_spec(), **spec_overrides}
    network = build_network("IntensityThreshold", spec["network"]["kwargs"])
    return save_bundle(folder, spec, network.state_dict())


@pytest.fixture
def threshold_bundle(tmp_path) -> Path:
    """A CT threshold bundle folder on disk."""
    return write_threshold_bundle(tmp_path / "bundle")


@pytest.fixture
def isolated_models(tmp_path, monkeypatch) -> Path:
    """An empty user model folder, so tests never see the developer's ~/.lesiondetect."""
    folder = tmp_path / "user-models"
    monkeypatch.setenv("LESIONDETECT_MODELS", str(folder))
    return folder


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (training tests: `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def result():
    """The writer tests' detection result: two lesions on an oblique, mirrored grid (writer_inputs.make_result)."""
    from writer_inputs import make_result

    return make_result()


@pytest.fixture
def written(tmp_path, result):
    """(paths, result): ``result`` written to ``tmp_path / "out"`` with every optional output."""
    return result.write(tmp_path / "out", save_probability=True, surface_format="vtp"), result


@pytest.fixture
def in_a_scratch_folder(tmp_path, monkeypatch):
    """The commands name relative paths: should one run after all, it writes here, not into the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset.json of 6 synthetic training cases, 2 of them for validation (training_cases.write_dataset)."""
    from training_cases import write_dataset

    return write_dataset(tmp_path_factory.mktemp("dataset"), count=6, validation=2)


def write_series(folder, array, spacing=(0.7, 0.7, 2.0), origin=(-100.0, -80.0, 40.0),
                 uid="1.2.826.0.1.3680043.2.1125.1", extra_tags: dict | None = None):
    """Write ``array`` [k, j, i] int16 as one axial CT series (one file per slice), with ``extra_tags``."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(array.shape[0]):
        image = sitk.GetImageFromArray(array[k : k + 1])
        image.SetSpacing(spacing)
        position = (origin[0], origin[1], origin[2] + k * spacing[2])
        tags = {
            "0008|0060": "CT", "0020|000e": uid, "0020|000d": uid + ".9", "0008|0018": f"{uid}.{k + 1}",
            "0020|0032": "\\".join(f"{v:.4f}" for v in position), "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0013": str(k + 1), "0028|0030": f"{spacing[1]}\\{spacing[0]}", "0018|0050": str(spacing[2]),
            "0010|0010": "Doe^Jane", "0010|0020": "PATIENT-ID-42", **(extra_tags or {}),
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(image)
    return folder


# NIfTI-1 header fields (byte offset, struct format), for tests that edit headers
NIFTI1_FIELDS = {
    "sizeof_hdr": (0, "i"), "dim": (40, "8h"), "datatype": (70, "h"), "bitpix": (72, "h"), "pixdim": (76, "8f"),
    "vox_offset": (108, "f"), "scl_slope": (112, "f"), "scl_inter": (116, "f"), "qform_code": (252, "h"),
    "sform_code": (254, "h"), "quatern": (256, "3f"), "qoffset": (268, "3f"), "srow_x": (280, "4f"),
    "srow_y": (296, "4f"), "srow_z": (312, "4f"), "magic": (344, "4s"),
}


def edit_nifti_header(data: bytes, field: str, value, index: int | None = None, order: str = "<") -> bytes:
    """``data`` (an uncompressed NIfTI-1 file) with one header field (or one element of it) replaced."""
    offset, fmt = NIFTI1_FIELDS[field]
    size = struct.calcsize(order + fmt)
    values = list(struct.unpack(order + fmt, data[offset : offset + size]))
    if index is None:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
    else:
        values[index] = value
    return data[:offset] + struct.pack(order + fmt, *values) + data[offset + size :]


@contextmanager
def fifo_watch(path: Path, patience_s: float = 10.0):
    """Make ``path`` a FIFO that nobody writes; yields a list that gets True if something blocked opening it.

    After ``patience_s`` a helper thread opens the write end (and closes it), which releases a reader blocked in
    ``open()``: a test that hangs on the FIFO then fails on the list instead of hanging forever.
    """
    os.mkfifo(path)
    blocked: list[bool] = []
    done = threading.Event()

    def release() -> None:
        if done.wait(patience_s):
            return
        while not done.is_set():
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                done.wait(0.05)
                continue
            blocked.append(True)
            os.close(descriptor)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield blocked
    finally:
        done.set()
        thread.join(5)


# Property tests: seeded (hypothesis derives the examples from the test's name) and small enough for CI;
# LESIONDETECT_FUZZ_SCALE=20 runs 20 times the examples, unseeded (repeat one with --hypothesis-seed=N).
FUZZ_SCALE = float(os.environ.get("LESIONDETECT_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int, deadline_s: float | None = 10.0):
    from datetime import timedelta

    from hypothesis import HealthCheck, settings

    return settings(max_examples=max(1, round(examples * FUZZ_SCALE)), derandomize="LESIONDETECT_FUZZ_SCALE" not in os.environ,
                    deadline=None if deadline_s is None else timedelta(seconds=deadline_s), database=None,
                    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                            HealthCheck.data_too_large, HealthCheck.filter_too_much])


def rewrite_slice(path: Path, tags: dict[str, str] | None = None, spacing=None) -> None:
    """Write one DICOM slice file again with other ``tags`` (or pixel ``spacing``), keeping its UIDs."""
    image = sitk.ReadImage(str(path))
    for key, value in (tags or {}).items():
        image.SetMetaData(key, value)
    if spacing is not None:
        image.SetSpacing(spacing)  # the writer stores the image's spacing as Pixel Spacing
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    writer.Execute(image)


@pytest.fixture
def unlistable(monkeypatch):
    """``unlistable(folder)`` makes listing ``folder`` fail with EACCES (as root, no permission bit can do it)."""
    real_scandir, real_iterdir = os.scandir, Path.iterdir
    locked: set[Path] = set()

    def refuse(path) -> None:
        if Path(path) in locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "scandir", lambda path=".": refuse(path) or real_scandir(path))
    monkeypatch.setattr(Path, "iterdir", lambda self: refuse(self) or real_iterdir(self))
    return locked.add
