"""The fixture for the Slicer module's tests: real MRML from the ``slicer-core`` wheel and Slicer's own scripted-module
Python from ``../shared/slicer-python``, with the module logics Slicer runs (the Data module's logic, which removes
a removed node's display and storage nodes, among them) and the Qt/application stand-in of `slicer_app_standin`.

Skips, with the reason, where slicer-core is not installed (its wheels are CPython 3.11-3.13, manylinux x86-64
only) or ``../shared/slicer-python`` is absent.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import stat
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLICER_PYTHON = REPO.parent / "shared" / "slicer-python"
MODULE_FOLDER = REPO / "LesionDetect"


def _requireSlicer() -> None:
    if importlib.util.find_spec("slicer_core") is None:
        pytest.skip("slicer-core is not installed: `pip install .[test]` installs it where a wheel exists "
                    "(CPython 3.11-3.13 on manylinux x86-64)")
    if not (SLICER_PYTHON / "slicer" / "ScriptedLoadableModule.py").is_file():
        pytest.skip(f"Slicer's scripted-module Python is not in {SLICER_PYTHON} (../shared beside the checkout)")


@pytest.fixture
def slicer(tmp_path, monkeypatch):
    """``slicer`` with a fresh application and scene; ``PythonSlicer`` on PATH runs this Python."""
    _requireSlicer()
    import slicer_app_standin

    for folder in (str(MODULE_FOLDER), str(SLICER_PYTHON), slicer_app_standin.INJECTION_FOLDER):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    temporary = tmp_path / "slicer-temp"
    temporary.mkdir()
    launcher = tmp_path / "bin" / "PythonSlicer"
    launcher.parent.mkdir()
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{launcher.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return slicer_app_standin.install(str(temporary))


@pytest.fixture
def lesionDetect(slicer):
    """The module file, imported as Slicer imports it, and loaded into ``slicer.modules`` as Slicer's module
    manager does (its panel is made when first asked for)."""
    module = importlib.import_module("LesionDetect")
    slicer.app.loadModule(str(MODULE_FOLDER / "LesionDetect.py"), module.LesionDetect, module.LesionDetectWidget)
    yield module
    slicer.app.unloadModules()


def waitUntilIdle(slicer, logic, timeout=30.0):
    """Let the event loop run (the runner's QTimer polls the process) until the run has ended."""
    deadline = time.monotonic() + timeout
    while logic.isRunning:
        assert time.monotonic() < deadline, "the detection did not finish"
        slicer.app.processEvents()
        time.sleep(0.01)
