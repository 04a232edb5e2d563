"""Faults in the middle of a run and resource limits: the output folder holds the complete previous outputs or
none (never a temporary file), and problems that can be known early are reported before the long computation.

- SIGTERM / SIGINT to a running ``python -m LesionDetectLib detect`` during inference → exit 130, one line.
  SIGTERM becomes a KeyboardInterrupt, so a library's ``except Exception`` cannot swallow it (tested below);
  a signal that a library turns into another error, a second one during the cleanup, one while the outcome is
  printed or while the process exits → still exit 130 and one line (`cancellation.py`, `cli.run_command`).
- A cancellation or crash while outputs are being written or published → previous outputs intact.
- An unwritable or read-only output folder, or too little free disk space → exit 5 before the model is read.
- A volume too large for the memory available → refused with an estimate before inference.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import make_volume, write_threshold_bundle

from LesionDetectLib import batch, cli, infer, resources, writers
from LesionDetectLib.batch import DetectOptions, run_cases
from LesionDetectLib.bundles import open_bundle
from LesionDetectLib.detect import detect
from LesionDetectLib.errors import CancelledError, InputImageError, LesionDetectError, OutputError
from LesionDetectLib.io import read_volume
from LesionDetectLib.writers import atomic

OUTPUTS = (".seg.nrrd", ".mrk.json", ".lesions.csv", ".lesions.json")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".")]


def outputs_of(stem: str) -> set[str]:
    return {f"{stem}{suffix}" for suffix in OUTPUTS}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A threshold bundle, a small CT and a large oblique CT whose inference with overlap 0.9 takes many seconds."""
    root = tmp_path_factory.mktemp("faults")
    bundle = write_threshold_bundle(root / "bundle")
    small = root / "small.nii.gz"
    sitk.WriteImage(make_volume(background=-1000.0, lesion_value=100.0).to_sitk(), str(small))
    large = root / "large.nii.gz"
    box = (slice(20, 40), slice(20, 40), slice(20, 40))
    volume = make_volume(shape_kji=(80, 80, 80), spacing=(1.0, 1.0, 1.0), background=-1000.0, lesions=(box,))
    sitk.WriteImage(volume.to_sitk(), str(large))
    return namedtuple("Workspace", "root bundle small large")(root, bundle, small, large)


@pytest.fixture
def restore_sigterm():
    """Put pytest's SIGTERM handler back afterwards (`cli.main` restores the handlers it found itself; this also
    covers a test that fails half-way)."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def run_main(*args) -> int:
    return cli.main([str(a) for a in args])


def child_env(root: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "LESIONDETECT_MODELS": str(root / "no-models")}


@pytest.fixture(autouse=True)
def memory_checked(monkeypatch):
    monkeypatch.delenv(resources.SKIP_ENV, raising=False)


# --------------------------------------------------------------------------------------------- cancellation


@pytest.fixture(scope="module")
def previous_outputs(workspace):
    """A complete earlier run of the large case (default settings), to be protected by later cancelled runs."""
    out = workspace.root / "previous"
    done = subprocess.run([sys.executable, "-m", "LesionDetectLib", "detect", workspace.large, "-o", out, "--model",
                           workspace.bundle, "--progress", "none", "--quiet", "--device", "cpu"],
                          capture_output=True, text=True, env=child_env(workspace.root), timeout=300)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == outputs_of("large")
    return out


@pytest.mark.parametrize(("signum", "message", "previous"), [
    (signal.SIGTERM, "cancelled by signal SIGTERM", True),
    (signal.SIGINT, "cancelled (interrupted)", True),
    (signal.SIGTERM, "cancelled by signal SIGTERM", False),
])
def test_signal_during_inference_exits_130_and_keeps_previous_outputs_or_none(
        workspace, previous_outputs, tmp_path, signum, message, previous):
    out = tmp_path / "out"
    if previous:
        shutil.copytree(previous_outputs, out)
    before = snapshot(out) if previous else {}
    command = [sys.executable, "-m", "LesionDetectLib", "detect", workspace.large, "-o", out, "--model",
               workspace.bundle, "--progress", "jsonl", "--device", "cpu", "--overlap", "0.9", "--threshold", "0.3",
               "--save-probability"]  # other settings: its outputs would differ from the previous ones
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=child_env(workspace.root),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even if we ignore it
    try:
        deadline = time.monotonic() + 240
        for line in process.stdout:  # the first inference line from inside the sliding window
            event = json.loads(line)
            if event["stage"] == "inference" and event["fraction"] > 0.15:
                break
            assert time.monotonic() < deadline, "no inference within 240 s"
        time.sleep(0.3)
        assert process.poll() is None, "inference ended before the signal: use a larger volume"
        process.send_signal(signum)
        sent = time.monotonic()
        rest, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert time.monotonic() - sent < 30
    assert stderr == f"lesiondetect: error: {message}\n"
    last = json.loads(rest.splitlines()[-1])
    assert last == {"stage": "error", "fraction": 1.0, "message": message, "exit_code": 130}
    assert snapshot(out) == before
    assert hidden(out) == []


def test_sigterm_is_not_swallowed_by_a_library_catching_exception(workspace, tmp_path, monkeypatch, capsys,
                                                                  restore_sigterm):
    """Deterministic form of the race: SIGTERM arrives while a library runs `try: ... except Exception: ...`."""
    real_detect = batch.detect

    def detect_in_a_careless_library(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except Exception:  # as in monai.utils.module.optional_import
            pass
        return real_detect(*args, **kwargs)

    monkeypatch.setattr(batch, "detect", detect_in_a_careless_library)
    out = tmp_path / "out"
    code = run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "none", "--quiet")
    assert code == 130 and list(out.iterdir()) == [], capsys.readouterr().err


@pytest.mark.parametrize("interruption", [CancelledError("cancelled by signal SIGTERM"), KeyboardInterrupt()])
def test_cancellation_while_publishing_restores_the_previous_outputs(workspace, tmp_path, monkeypatch, interruption):
    """The signal lands between two renames of the commit: everything is rolled back to the previous run."""
    out = tmp_path / "out"
    model = open_bundle(workspace.bundle)
    volume = read_volume(workspace.small)
    detect(volume, model).write(out, save_probability=True, surface_format="stl")
    before = snapshot(out)
    result = detect(volume, model, threshold=0.2)
    real_replace, calls = os.replace, []

    def replace(source, destination):
        calls.append(destination)
        if len(calls) == 3:
            raise interruption
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(type(interruption)):
        result.write(out, save_probability=True, surface_format="stl")
    monkeypatch.undo()
    assert len(calls) >= 3 and snapshot(out) == before and hidden(out) == []


def test_sigterm_while_writing_through_the_command(workspace, tmp_path, monkeypatch, capsys, restore_sigterm):
    """SIGTERM arrives while the lesion table is being written: exit 130, the previous outputs stay whole."""
    out = tmp_path / "out"
    assert run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "none",
                    "--quiet", "--save-surfaces", "vtp") == 0
    before = snapshot(out)
    real_write = writers.write_table_json

    def write_and_get_killed(path, *args, **kwargs):
        real_write(path, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler `cli.main` installed raises at the next bytecode
        time.sleep(5)
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(writers, "write_table_json", write_and_get_killed)
    capsys.readouterr()
    code = run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "jsonl",
                    "--threshold", "0.2", "--save-probability")
    captured = capsys.readouterr()
    assert code == 130
    assert captured.err == "lesiondetect: error: cancelled by signal SIGTERM\n"
    assert json.loads(captured.out.splitlines()[-1])["exit_code"] == 130
    assert snapshot(out) == before and hidden(out) == []


def test_crash_while_writing_through_the_command_leaves_no_outputs(workspace, tmp_path, monkeypatch, capsys,
                                                                   restore_sigterm):
    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(writers, "write_points", out_of_memory)
    out = tmp_path / "out"
    assert run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "none") == 1
    assert capsys.readouterr().err == "lesiondetect: error: out of memory; try a smaller --batch-size, or --device cpu\n"
    assert list(out.iterdir()) == []

    def bug(*args, **kwargs):
        raise RuntimeError("a bug in a writer")

    monkeypatch.setattr(writers, "write_points", bug)
    with pytest.raises(RuntimeError, match="a bug in a writer"):  # not a user error: it propagates
        run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "none")
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------- fail fast on the output side


@pytest.fixture
def nothing_long(monkeypatch):
    """Reading the image, loading the model or detecting fails the test: the error had to come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the long computation started")

    for name in ("read_volume", "load_model", "detect"):
        monkeypatch.setattr(batch, name, forbidden)


def test_unwritable_output_folder_fails_before_reading_the_image_or_the_model(workspace, tmp_path, nothing_long):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    progress = []
    with pytest.raises(OutputError, match="not writable") as caught:
        run_cases([workspace.small], blocker / "out", DetectOptions(model=str(workspace.bundle)),
                  lambda *event: progress.append(event))
    assert caught.value.exit_code == 5 and progress == []


def test_read_only_output_folder_is_exit_5_before_the_model(workspace, tmp_path, monkeypatch, capsys,
                                                             restore_sigterm, nothing_long):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    code = run_main("detect", workspace.small, "-o", tmp_path / "out", "--model", tmp_path / "no-such-bundle",
                    "--progress", "none")
    err = capsys.readouterr().err
    assert code == 5, err  # not 4: the missing bundle was never looked at
    assert err == f"lesiondetect: error: output folder {tmp_path / 'out'} is not writable: Read-only file system\n"


DiskUsage = namedtuple("DiskUsage", "total used free")


def fake_disk(free: int):
    return lambda path: DiskUsage(total=10 * 2**30, used=10 * 2**30 - free, free=free)


def test_too_little_free_disk_space_fails_before_the_model(workspace, tmp_path, monkeypatch, capsys,
                                                           restore_sigterm):
    monkeypatch.setattr(shutil, "disk_usage", fake_disk(64 * 2**10))

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(batch, "load_model", forbidden)
    monkeypatch.setattr(batch, "detect", forbidden)
    out = tmp_path / "out"
    code = run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "none",
                    "--save-probability")
    err = capsys.readouterr().err
    assert code == 5
    assert err.startswith(f"lesiondetect: error: not enough free disk space in {out}: the outputs need about ")
    assert err.endswith(" MiB, 0.1 MiB is free\n") and err.count("\n") == 1
    assert list(out.iterdir()) == []


def test_disk_space_check_passes_when_enough_is_free_or_when_unknown(workspace, tmp_path, monkeypatch):
    volume = read_volume(workspace.small)
    needed = resources.estimate_output_bytes(volume.array.size, save_probability=True)
    monkeypatch.setattr(shutil, "disk_usage", fake_disk(needed))
    summary = run_cases([workspace.small], tmp_path / "a", DetectOptions(model=str(workspace.bundle),
                                                                          save_probability=True), lambda *e: None)
    assert list(summary.written) == [workspace.small]

    def unknown(path):
        raise OSError(errno.ENOSYS, "not supported")

    monkeypatch.setattr(shutil, "disk_usage", unknown)
    atomic.check_free_space(tmp_path, 10**15)  # unknown free space: no check


def test_output_size_estimate_is_below_what_a_real_scan_writes(tmp_path):
    """On the shipped brain MR with the shipped model the outputs take more than the estimate."""
    from LesionDetectLib.samples import SAMPLES, sample_path

    volume = read_volume(sample_path(SAMPLES["ms-flair"].image))
    paths = detect(volume, "flair-hyperintensity-baseline").write(tmp_path, save_probability=True)
    written = sum(path.stat().st_size for path in paths.values())
    estimate = resources.estimate_output_bytes(volume.array.size, save_probability=True)
    assert resources.OUTPUT_FIXED_BYTES < estimate <= written


# ------------------------------------------------------------------------------------------------ memory


def test_volume_too_large_for_memory_is_refused_with_an_estimate_before_inference(workspace, monkeypatch):
    volume = read_volume(workspace.small)
    voxels = volume.array.size
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 10 * voxels)  # enough to read, not to detect

    def forbidden(*args, **kwargs):
        raise AssertionError("inference started")

    monkeypatch.setattr(infer, "probabilities_with_fallback", forbidden)
    with pytest.raises(LesionDetectError, match=r"needs about \d+\.\d GiB of memory but \d+\.\d GiB is available"):
        detect(read_volume(workspace.small), open_bundle(workspace.bundle))


def test_command_refuses_too_large_volume_with_exit_1_and_no_outputs(workspace, tmp_path, monkeypatch, capsys,
                                                                       restore_sigterm):
    voxels = read_volume(workspace.small).array.size
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 10 * voxels)  # enough to read, not to detect
    out = tmp_path / "out"
    code = run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "none")
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "GiB of memory" in err and "close other programs" in err
    assert list(out.iterdir()) == []


def test_image_whose_reading_would_not_fit_is_refused_before_any_voxel_is_read(workspace, tmp_path, monkeypatch,
                                                                                capsys, restore_sigterm):
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 1000)
    code = run_main("detect", workspace.small, "-o", tmp_path / "out", "--model", workspace.bundle,
                    "--progress", "none")
    err = capsys.readouterr().err
    assert code == 3 and "reading this image needs about" in err and err.count("\n") == 1


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_header_declaring_a_gigantic_image_is_refused_at_once(tmp_path, suffix, monkeypatch):
    monkeypatch.delenv(resources.SKIP_ENV, raising=False)
    image = sitk.GetImageFromArray(np.arange(120, dtype=np.int16).reshape(4, 5, 6))
    path = tmp_path / f"giant{suffix}"
    sitk.WriteImage(image, str(path), useCompression=True)
    data = path.read_bytes()
    size_field = b"sizes: 6 5 4" if suffix == ".nrrd" else b"DimSize = 6 5 4"
    path.write_bytes(data.replace(size_field, size_field.replace(b"6 5 4", b"60000 50000 40000")))
    started = time.monotonic()
    with pytest.raises(InputImageError, match=r"reading this image needs about \d+"):
        read_volume(path)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("shape", "spacing", "message"), [
    ((2, 2, 200), (100.0, 100.0, 100.0), "more than any body"),  # a 20 m bar of voxels
    ((2, 40, 40), (0.001, 50.0, 3.0), "implausible"),  # two oblique slices spread over metres
])
def test_implausibly_spread_volumes_are_refused_quickly(workspace, shape, spacing, message):
    volume = make_volume(shape_kji=shape, spacing=spacing, lesions=())
    started = time.monotonic()
    with pytest.raises(InputImageError, match=message):
        detect(volume, open_bundle(workspace.bundle), force_modality=True)
    assert time.monotonic() - started < 10


# --------------------------------------------------------------- cancellation at any moment (issue 20, 13-15)


def test_sigterm_turned_into_another_error_by_a_library_is_still_a_cancellation(workspace, tmp_path, monkeypatch,
                                                                                capsys, restore_sigterm):
    """Item 13: VTK's lazy import turns the KeyboardInterrupt raised inside it into 'ImportError: Failed to load
    vtkFiltersCore'. Whatever a library makes of it, a signal means exit 130 and one line."""
    def vtk_like_import(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            raise ImportError("Failed to load vtkFiltersCore") from None
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(writers, "write_surfaces", vtk_like_import)
    out = tmp_path / "out"
    code = run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "none",
                    "--quiet", "--save-surfaces", "stl")
    assert code == 130
    assert capsys.readouterr().err == "lesiondetect: error: cancelled by signal SIGTERM\n"
    assert list(out.iterdir()) == []


def test_second_sigterm_during_cleanup_lets_the_cleanup_finish(workspace, tmp_path, monkeypatch, capsys,
                                                               restore_sigterm):
    """Item 14: the first SIGTERM cancels; one arriving while the temporary outputs are removed must neither raise
    (a KeyboardInterrupt traceback) nor leave a temporary file."""
    real_write, real_remove = writers.write_table_json, atomic._remove

    def write_and_get_killed(path, *args, **kwargs):
        real_write(path, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM was not handled")

    def remove_and_get_killed_again(path):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handler runs here, in the middle of the cleanup
        real_remove(path)

    monkeypatch.setattr(writers, "write_table_json", write_and_get_killed)
    monkeypatch.setattr(atomic, "_remove", remove_and_get_killed_again)
    out = tmp_path / "out"
    code = run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "none",
                    "--quiet", "--save-probability")
    assert code == 130
    assert capsys.readouterr().err == "lesiondetect: error: cancelled by signal SIGTERM\n"
    assert list(out.iterdir()) == []


def test_signal_while_an_error_is_reported_is_still_one_line(workspace, tmp_path, monkeypatch, capsys,
                                                             restore_sigterm):
    """A signal after the work, while the outcome is printed: no traceback, one line, exit 130."""
    real_report = cli.report_error

    def report_and_get_killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        real_report(*args, **kwargs)

    monkeypatch.setattr(cli, "report_error", report_and_get_killed)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    code = run_main("detect", broken, "-o", tmp_path / "out", "--model", workspace.bundle, "--progress", "none")
    err = capsys.readouterr().err
    assert code == 130 and err.count("\n") == 1 and "Traceback" not in err, err


def test_main_restores_the_signal_handlers_it_found(restore_sigterm):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert run_main("models", "list") == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == previous


SLOW_EXIT = """
import atexit, sys, time
atexit.register(time.sleep, 3)  # a slow interpreter exit: the moment the signal arrives
print("finished", flush=True)
from LesionDetectLib.cli import run_command
run_command()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_in_the_last_moments_is_exit_130_not_death_by_signal(workspace, signum):
    """Item 15: a signal while the process exits gave -15 or -2 (Python restores the default handlers at exit)."""
    command = [sys.executable, "-c", SLOW_EXIT, "models", "list"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=child_env(workspace.root))
    try:
        output = process.stdout.readline()
        assert output == "finished\n"
        process.stdout.readline()  # the first model listed: the command has done its work
        time.sleep(0.5)
        assert process.poll() is None
        process.send_signal(signum)
        rest, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("lesiondetect: error: cancelled") and "Traceback" not in stderr


def test_signal_during_an_import_is_raised_once_the_import_is_done(workspace, tmp_path, monkeypatch, capsys,
                                                                    restore_sigterm):
    """A KeyboardInterrupt raised inside VTK's lazy import crashed the process (SIGSEGV, found by
    test_fuzz_options.py): a signal that arrives while a module is imported waits for the import to finish."""
    import importlib

    (tmp_path / "slow_extension.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(0.3)\nCOMPLETE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_extension", raising=False)
    imported = []

    def write_surfaces_importing_a_slow_module(*args, **kwargs):
        module = importlib.import_module("slow_extension")
        imported.append(time.monotonic())
        assert module.COMPLETE
        time.sleep(5)
        raise AssertionError("the signal was not raised after the import")

    monkeypatch.setattr(writers, "write_surfaces", write_surfaces_importing_a_slow_module)
    out = tmp_path / "out"
    code = run_main("detect", workspace.small, "-o", out, "--model", workspace.bundle, "--progress", "none",
                    "--quiet", "--save-surfaces", "stl")
    assert code == 130 and len(imported) == 1 and time.monotonic() - imported[0] < 4
    assert capsys.readouterr().err == "lesiondetect: error: cancelled by signal SIGTERM\n"
    assert list(out.iterdir()) == []
