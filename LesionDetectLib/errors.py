"""Errors with one clear message each and a distinct process exit code."""

from __future__ import annotations


class LesionDetectError(Exception):
    """Base class: a problem the user can act on; the CLI prints the message, never a traceback."""

    exit_code = 1


class InputImageError(LesionDetectError):
    """The input is not a usable 3-D image (unreadable, 2-D/4-D, empty, constant, non-finite, bad spacing)."""

    exit_code = 3


class ModelBundleError(LesionDetectError):
    """A model bundle is missing, malformed, has a wrong checksum or names an unknown network."""

    exit_code = 4


class OutputError(LesionDetectError):
    """Outputs cannot be written (unwritable folder, full disk)."""

    exit_code = 5


class ModelsFolderError(LesionDetectError):
    """The user models folder ($LESIONDETECT_MODELS or ~/.lesiondetect/models) cannot be read or written."""

    exit_code = 5


class DatasetError(LesionDetectError):
    """A training or evaluation dataset has problems (all of them are listed in the message)."""

    exit_code = 6


class ModalityMismatchError(LesionDetectError):
    """The model was made for another modality than the input (CT vs MR)."""

    exit_code = 7


class ComparisonError(LesionDetectError):
    """Two scans cannot be compared: their alignment failed or their results were made with different settings."""

    exit_code = 8


class CancelledError(LesionDetectError):
    """The run was cancelled (Ctrl-C, SIGTERM, the Slicer Cancel button)."""

    exit_code = 130
