"""Finding LesionDetectLib and the Python that runs it in a separate process (``PythonSlicer``)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import sys
from typing import Protocol

from .errors import LibraryMissingError

LIBRARY = "LesionDetectLib"
MODULE_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The folder of LesionDetect.py (and of Resources/)."""


class ModuleFinder(Protocol):
    """Tells whether a Python module is installed without importing it (`importlib.util.find_spec`)."""

    def __call__(self, name: str) -> importlib.machinery.ModuleSpec | None: ...


def addSourceTreeToPath() -> None:
    """Let a source checkout (module loaded from ``<checkout>/LesionDetect``) import ``<checkout>/LesionDetectLib``."""
    checkout = os.path.dirname(MODULE_FOLDER)
    if importlib.util.find_spec(LIBRARY) is None and os.path.isfile(os.path.join(checkout, LIBRARY, "__init__.py")):
        sys.path.append(checkout)


def libraryFolder() -> str:
    """The folder of the LesionDetectLib package."""
    spec = importlib.util.find_spec(LIBRARY)
    if spec is None or not spec.submodule_search_locations:
        raise LibraryMissingError(f"The {LIBRARY} package is missing from this installation; reinstall LesionDetect.")
    return list(spec.submodule_search_locations)[0]


def pythonExecutable(override: str | None = None) -> str:
    """``PythonSlicer``: Slicer's Python launcher, on PATH inside Slicer (as `slicer.util` finds it)."""
    executable = override or shutil.which("PythonSlicer")
    if not executable:
        raise LibraryMissingError("PythonSlicer was not found next to Slicer; the installation may be incomplete.")
    return executable


def processEnvironment() -> dict[str, str]:
    """Slicer's environment plus the folder holding LesionDetectLib (an extension's folder is not on PythonSlicer's
    default path), with UTF-8, unbuffered output."""
    environment = dict(os.environ)
    paths = [os.path.dirname(libraryFolder()), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    environment["PYTHONIOENCODING"] = "utf-8"
    environment["PYTHONUNBUFFERED"] = "1"
    return environment
