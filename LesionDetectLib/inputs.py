"""Expanding what the user names on the command line into cases: files, folders, DICOM series, list files."""

from __future__ import annotations

import os
from pathlib import Path

from .dicom_folders import dicom_series
from .errors import InputImageError
from .io import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".list")


def _folder_images(folder: Path) -> list[Path] | None:
    """The entries of ``folder`` named like images (hidden ones, such as our own temporary outputs, are not
    inputs); a FIFO or device so named is kept, to be refused on its own. None when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return sorted(folder / entry.name for entry in entries if not entry.name.startswith(".")
                          and entry.name.lower().endswith(IMAGE_SUFFIXES) and not _is_folder(entry))
    except OSError:
        return None


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_dicom_folder(folder: Path) -> bool:
    """A folder holding a DICOM series (a folder that cannot be scanned safely is not: it fails on its own)."""
    try:
        return bool(dicom_series(folder))
    except InputImageError:
        return False


def _kind(path: Path) -> str:
    """'list', 'folder' or 'other' (a file, or a path that fails later with its own error)."""
    try:
        if path.is_dir():
            return "folder"
        return "list" if path.suffix.lower() in LIST_SUFFIXES and path.is_file() else "other"
    except OSError:
        return "other"


def _list_file_lines(path: Path) -> list[str]:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise InputImageError(f"{path}: not a readable list of inputs ({getattr(error, 'strerror', None) or error})") from None
    names = [line for line in lines if line and not line.startswith("#")]
    if not names:
        raise InputImageError(f"{path}: the list of inputs is empty")
    return names


def expand_inputs(names: list[str]) -> list[Path]:
    """Each name is an image file, a DICOM series folder, a folder of image files, or a list file of paths.

    Unknown, missing or unreadable paths are kept, so that each fails with its own clear error later.
    """
    return _expand(names, frozenset())


def _expand(names: list[str], lists: frozenset[Path]) -> list[Path]:
    """`expand_inputs`, with the list files already being read (a list naming itself is an error, not a loop)."""
    cases: list[Path] = []
    for name in names:
        path = _user_path(name)
        kind = _kind(path)
        if kind == "list":
            resolved = _resolved(path)
            if resolved in lists:
                raise InputImageError(f"{path}: list file includes itself")
            cases += _expand(_list_file_lines(path), lists | {resolved})
        elif kind == "folder" and not _is_dicom_folder(path):
            cases += _folder_images(path) or [path]
        else:
            cases.append(path)
    return cases


def _user_path(name: str) -> Path:
    """``name`` with ``~`` expanded (kept as given when there is no such home folder)."""
    try:
        return Path(name).expanduser()
    except RuntimeError:
        return Path(name)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: it cannot be read, which its reading will say
        raise InputImageError(f"{path}: cannot be read (a loop of symbolic links)") from None


def shard(cases: list[Path], rank: int, world_size: int) -> list[Path]:
    """This rank's share of the cases (round robin), for runs under torchrun."""
    return cases[rank::world_size]
